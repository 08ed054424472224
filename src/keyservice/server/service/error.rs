//! An endpoint's failure as the client sees it: the HTTP status, the stable `code` and
//! the body the HTTP layer sends for each kind of refusal.

use crate::crypto;
use crate::keyservice::api::{self, ErrorBody, code};
use crate::keyservice::server::db::DbError;
use crate::keyservice::server::state::StateError;

/// An endpoint's failure, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    SecondFactor(String),
    /// A sensitive request on a session that is not recently authenticated.
    #[error(
        "this request needs a recently authenticated session: reauthenticate first (the \
         password and, when enrolled, a fresh TOTP code)"
    )]
    ReauthRequired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error(
        "wrong escrow proof; {remaining} more wrong tries destroy the escrow record{}",
        if *remaining == 0 { " (it has now been destroyed)" } else { "" }
    )]
    EscrowWrong { remaining: u32 },
    #[error("the escrow record was destroyed after too many wrong proofs")]
    EscrowDestroyed,
    #[error("too many failed attempts; try again in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    #[error(
        "the password reset is waiting: it can be completed in {ready_in} seconds, by asking \
         again with a new TOTP code; the account's trusted devices have been told and can \
         cancel it"
    )]
    ResetPending { ready_in: u64 },
    #[error(
        "this key service creates accounts only with an invitation: ask its admin for one \
         (`cirrus serve account create`) and pass it with --invite"
    )]
    SignupClosed,
    #[error("the request body is larger than {} bytes", api::MAX_BODY)]
    TooLarge,
    /// Too many password checks at once (the HTTP layer's bounded pool is full).
    #[error("the key service is busy; try again in {retry_after} seconds")]
    Busy { retry_after: u64 },
    /// The request's body did not arrive within the request timeout.
    #[error("the request was not received in time")]
    TimedOut,
    /// The detail goes to the server log, not to the client.
    #[error("internal error in the key service (see its log)")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) | ApiError::SecondFactor(_) | ApiError::ReauthRequired => 401,
            ApiError::Forbidden(_)
            | ApiError::EscrowWrong { .. }
            | ApiError::ResetPending { .. }
            | ApiError::SignupClosed => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::Gone(_) | ApiError::EscrowDestroyed => 410,
            ApiError::TimedOut => 408,
            ApiError::TooLarge => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::Busy { .. } => 503,
        }
    }

    /// The stable code of the error (the `code` of its JSON body, and the `kind` label
    /// of the failure metrics).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => code::BAD_REQUEST,
            ApiError::Unauthorized(_) => code::UNAUTHORIZED,
            ApiError::SecondFactor(_) => code::SECOND_FACTOR,
            ApiError::ReauthRequired => code::REAUTH_REQUIRED,
            ApiError::Forbidden(_) => code::FORBIDDEN,
            ApiError::NotFound(_) => code::NOT_FOUND,
            ApiError::Conflict(_) => code::CONFLICT,
            ApiError::Gone(_) => code::GONE,
            ApiError::EscrowWrong { .. } => code::ESCROW_WRONG,
            ApiError::EscrowDestroyed => code::ESCROW_DESTROYED,
            ApiError::TooLarge => code::TOO_LARGE,
            ApiError::RateLimited { .. } => code::RATE_LIMITED,
            ApiError::ResetPending { .. } => code::RESET_PENDING,
            ApiError::SignupClosed => code::SIGNUP_CLOSED,
            ApiError::Busy { .. } => code::BUSY,
            ApiError::TimedOut => code::TIMED_OUT,
            ApiError::Internal(_) => code::INTERNAL,
        }
    }

    pub(crate) fn body(&self) -> ErrorBody {
        let code = self.code();
        ErrorBody {
            error: self.to_string(),
            code: code.to_string(),
            retry_after: match self {
                ApiError::RateLimited { retry_after } | ApiError::Busy { retry_after } => {
                    Some(*retry_after)
                }
                ApiError::ResetPending { ready_in } => Some(*ready_in),
                _ => None,
            },
            remaining: match self {
                ApiError::EscrowWrong { remaining } => Some(*remaining),
                _ => None,
            },
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Db(d) => d.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            // No connection within the pool's wait: the database is down or saturated,
            // which a retry may get past (503), unlike a failed statement (500).
            DbError::Pool(e) => {
                log::error!("no database connection: {e}");
                ApiError::Busy { retry_after: 2 }
            }
            other => ApiError::Internal(format!("database: {other}")),
        }
    }
}

impl From<crypto::CryptoError> for ApiError {
    fn from(e: crypto::CryptoError) -> Self {
        ApiError::Internal(e.to_string())
    }
}
