//! The wire format of the key service API v1: one request and one response type per
//! endpoint, shared by the server and the client so the two cannot drift apart. Binary
//! fields travel as lowercase hex strings. The reference is docs/FORMAT.md "Key service API".

use crate::keys::KdfParams;
use serde::{Deserialize, Serialize};

/// Every endpoint is `POST /v1/<name>` with a JSON body (possibly `{}`).
pub const PREFIX: &str = "/v1/";

/// Largest request body the server reads: a 64 KiB record in hex is 128 KiB, plus JSON.
pub const MAX_BODY: usize = 192 * 1024;
/// Largest record value and escrow blob.
pub const MAX_VALUE: usize = 64 * 1024;
/// Records per account.
pub const MAX_RECORDS: usize = 256;
/// Longest wrapping context (`ctx`) a client may bind a wrapped key to.
pub const MAX_CTX: usize = 256;

/// The `code` of an error body; the client maps it to a `ClientError` variant.
pub mod code {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const SECOND_FACTOR: &str = "second_factor_required";
    /// A sensitive request on a session that is not recently authenticated: `reauth`.
    pub const REAUTH_REQUIRED: &str = "reauth_required";
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not_found";
    pub const CONFLICT: &str = "conflict";
    pub const GONE: &str = "gone";
    pub const ESCROW_WRONG: &str = "escrow_wrong";
    pub const ESCROW_DESTROYED: &str = "escrow_destroyed";
    pub const TOO_LARGE: &str = "too_large";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const BUSY: &str = "busy";
    pub const TIMED_OUT: &str = "timed_out";
    pub const RESET_PENDING: &str = "reset_pending";
    pub const SIGNUP_CLOSED: &str = "signup_closed";
    pub const INTERNAL: &str = "internal";
}

/// Body of every error response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One plain sentence for the user.
    pub error: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateReq {
    pub account: String,
    pub salt: String,
    pub kdf: KdfParams,
    pub auth: String,
    /// The one-time invitation `cirrus serve account create` printed (needed when the
    /// service runs with `--signup closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SaltReq {
    pub account: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SaltResp {
    pub salt: String,
    pub kdf: KdfParams,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginReq {
    pub account: String,
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default)]
    pub remember_device: bool,
    /// This device's earlier remembered-device token, given with a TOTP code: the new token
    /// replaces it instead of joining it, so a device's logins never push other devices'
    /// tokens out of the account's bounded list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SessionResp {
    pub token: String,
    /// Seconds until the session expires.
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Seconds the session stays recently authenticated (0: it is not, as after a login
    /// through a remembered device).
    #[serde(default)]
    pub recent_for: u64,
}

/// `reauth`: the current password's `auth` and, when TOTP is enrolled, a fresh code.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReauthReq {
    pub auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReauthResp {
    /// Seconds the session now stays recently authenticated.
    pub recent_for: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatus {
    pub totp_enrolled: bool,
    pub drs: bool,
    pub escrow: bool,
    /// An escrow record was destroyed after too many wrong proofs (and none was put since).
    pub escrow_destroyed: bool,
    pub service_version: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FlagsReq {
    pub drs: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordChangeReq {
    pub new_salt: String,
    pub new_kdf: KdfParams,
    pub new_auth: String,
    /// Remember the changing device: the change forgets every remembered device, and
    /// this (recently authenticated) session has just proved every factor.
    #[serde(default)]
    pub remember_device: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordChangeResp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResetReq {
    pub account: String,
    pub totp: String,
    pub new_salt: String,
    pub new_kdf: KdfParams,
    pub new_auth: String,
    /// Remember the resetting device (the TOTP code just proved the second factor).
    #[serde(default)]
    pub remember_device: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TotpEnrollResp {
    pub uri: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TotpConfirmReq {
    pub code: String,
    /// Remember the confirming device: the code just proved the second factor.
    #[serde(default)]
    pub remember_device: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TotpConfirmResp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RevokedResp {
    pub revoked: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WrapReq {
    pub ctx: String,
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WrappedReq {
    pub ctx: String,
    pub wrapped: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WrappedResp {
    pub wrapped: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyResp {
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RetireReq {
    pub below: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub current: u32,
    /// Versions that still exist, ascending (the current one included).
    pub live: Vec<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecordPutReq {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecordNameReq {
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecordValueResp {
    pub value: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecordListResp {
    pub names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EscrowPutReq {
    pub verifier: String,
    pub blob: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EscrowOpenReq {
    pub proof: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EscrowOpenResp {
    pub blob: String,
}

/// What happened to an account that its trusted devices should know of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A data-recovery reset was asked for with a right TOTP code; it takes effect after
    /// the waiting period unless a trusted device cancels it.
    ResetRequested,
    /// A trusted device cancelled the pending reset.
    ResetCancelled,
    /// The reset took effect: the password changed, every session ended and every
    /// remembered device was forgotten.
    ResetCompleted,
    /// Someone signed in to the web front with the web password and a TOTP code.
    WebSignIn,
}

/// One notice, as kept by the server and sent to devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Increases by one per notice of the account: devices remember the last one shown.
    pub id: u64,
    pub kind: NoticeKind,
    /// Unix seconds.
    pub at: u64,
    /// Source address of the request that caused it.
    pub from: String,
    /// For `reset_requested`: when the reset may take effect (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<u64>,
}

/// `notices` and `account/cancel-reset`: authenticated by a remembered-device token
/// alone, so a device learns of a reset without its password.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceReq {
    pub account: String,
    pub device_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NoticesResp {
    pub notices: Vec<Notice>,
    /// When a pending reset may take effect (Unix seconds); none pending: absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reset: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CancelResetResp {
    /// False: there was no pending reset.
    pub cancelled: bool,
}

/// `web/on`: a trusted device turns web access on for its account (FORMAT.md §9d).
#[derive(Serialize, Deserialize)]
pub struct WebOnReq {
    /// The account's store, as the server should open it (`s3://BUCKET/PREFIX?endpoint=..`).
    pub store: String,
    /// The signed manifest object the device trusts now, hex.
    pub manifest: String,
    /// The registering device's signing key (an active device of that manifest), hex.
    pub signer: String,
    /// Its signature over `format::web::registration_message`, hex.
    pub signature: String,
    /// The web password; the server keeps only an Argon2id verifier of it.
    pub password: String,
}

impl Drop for WebOnReq {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WebStatus {
    pub enabled: bool,
    /// The store the web front reads, as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<u64>,
    /// The registering device's name in the manifest it registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Web sessions open now.
    pub sessions: u32,
    /// Turned on under ADP: each web sign-in waits for a trusted device's approval.
    #[serde(default)]
    pub approvals: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebSessionInfo {
    /// Public id: `web revoke ID`.
    pub id: String,
    /// Unix seconds.
    pub started: u64,
    pub last_used: u64,
    pub from: String,
    pub agent: String,
    /// Under ADP: "waiting" for a trusted device's approval, or "approved".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebSessionsResp {
    pub sessions: Vec<WebSessionInfo>,
}

/// `web/revoke`: one session by id, or all (`id` absent).
#[derive(Serialize, Deserialize)]
pub struct WebRevokeReq {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebRevokeResp {
    pub ended: u64,
}

/// A web sign-in under ADP that waits for (or has) a trusted device's approval
/// (`web/approvals`; FORMAT.md §9e).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebApproval {
    pub session: WebSessionInfo,
    /// The X25519 public key the server made for the session, hex.
    pub public_key: String,
    /// The sign-in code's MAC over it (`keys::web::session_key_mac`), hex.
    pub mac: String,
    pub approved: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebApprovalsResp {
    pub approvals: Vec<WebApproval>,
}

/// One category key released to a web session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebReleaseItem {
    pub category: u32,
    pub version: u32,
    /// `keys::web::seal_release` to the session's key, hex.
    pub sealed: String,
}

/// `web/approve`: approves a waiting web sign-in (the first time) and releases the keys
/// listed (none: only the sign-in is approved).
#[derive(Debug, Serialize, Deserialize)]
pub struct WebApproveReq {
    /// The web session's id.
    pub id: String,
    /// The approving device's name, as its manifest lists it (shown in logs).
    pub device: String,
    /// `keys::web::approval_proof` under the sign-in code, hex: the server checks it
    /// against the code it made, so only someone who was given the code approves.
    pub proof: String,
    #[serde(default)]
    pub releases: Vec<WebReleaseItem>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebApproveResp {
    /// When the keys released now are dropped by the server (Unix seconds).
    pub expires: u64,
}
