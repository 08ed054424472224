//! The front's typed failures: each one is a page (or a redirect to the sign-in page) with
//! its status. Decided on kind, never on message text.

use crate::keyservice::server::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// No such category, folder or file, or a path that is not one (`..`, bad encoding).
    /// Also what any other account's path gives: the front never says more.
    #[error("not found")]
    NotFound,
    /// An end-to-end encrypted category: the server has no key for it.
    #[error("the category is end-to-end encrypted")]
    Locked,
    /// A category on neither web list.
    #[error("the category is not available on the web")]
    NotOnWeb,
    /// The account's manifest says Advanced Data Protection is on: web access goes off.
    #[error("Advanced Data Protection is on")]
    AdpOn,
    /// No session, or it ended (idle, too old, revoked, web access off).
    #[error("signed out")]
    SignedOut,
    /// An ADP sign-in whose key this server does not hold (another replica made it, or
    /// this one restarted): released keys cannot open here.
    #[error("the sign-in is held by another server")]
    OtherServer,
    /// A form without this session's token, or from another site.
    #[error("the form's token is missing or wrong")]
    Csrf,
    #[error("the request body is too large")]
    TooLarge,
    /// A change the web does not make (an end-to-end category, Recently Deleted); the
    /// message says which, and is shown.
    #[error("{0}")]
    ReadOnly(&'static str),
    /// The account's changes waiting for a device take the server's quota.
    #[error("too much is waiting for your devices")]
    Quota,
    /// Too much at once (the Argon2 pool is full) or out of time.
    #[error("busy")]
    Busy,
    /// The account's store could not be read; the detail goes to the log.
    #[error("the drive cannot be read now: {0}")]
    Unavailable(String),
    /// What the store holds did not verify (signatures, chain, rollback).
    #[error("the drive failed verification: {0}")]
    Integrity(String),
    /// The detail goes to the log, not to the page.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FrontError {
    pub fn status(&self) -> u16 {
        match self {
            FrontError::NotFound => 404,
            FrontError::Locked | FrontError::NotOnWeb | FrontError::AdpOn | FrontError::Csrf => 403,
            FrontError::SignedOut => 401,
            FrontError::TooLarge | FrontError::Quota => 413,
            FrontError::ReadOnly(_) => 403,
            FrontError::Busy | FrontError::Unavailable(_) | FrontError::OtherServer => 503,
            FrontError::Integrity(_) => 502,
            FrontError::Internal(_) => 500,
        }
    }
}

/// The key service's refusal as the front's. Rate limits are handled where they can
/// happen (sign-in), so here they read as busy.
pub(crate) fn from_api(e: ApiError) -> FrontError {
    match e {
        ApiError::Unauthorized(_) | ApiError::SecondFactor(_) | ApiError::ReauthRequired => {
            FrontError::SignedOut
        }
        ApiError::NotFound(_) => FrontError::NotFound,
        // The admin no longer allows the account's store (`--web-store-allow`).
        ApiError::Forbidden(m) => FrontError::Unavailable(m),
        ApiError::RateLimited { .. } | ApiError::Busy { .. } | ApiError::TimedOut => {
            FrontError::Busy
        }
        other => FrontError::Internal(other.to_string()),
    }
}

/// A blocking task that panicked or was cancelled.
pub(crate) fn joined(e: tokio::task::JoinError) -> FrontError {
    FrontError::Internal(format!("request task failed: {e}"))
}
