//! An account on this device: creating it (`init`), unlocking it with the passcode, and
//! reading or changing its category table and category keys in the store.
//! This file has the [`Unlocked`] account, its errors, the store it opens and the signed
//! manifest it follows; creating and unlocking are in `open.rs`, the category keys in
//! `categories.rs`.

pub mod adp;
mod anchor;
pub mod backup;
pub mod data_recovery;
pub mod devices;
mod inspect;
pub mod local;
pub use inspect::{open_for_inspection, open_for_inspection_in};
pub mod manifest;
pub mod methods;
mod migrate;
pub mod notices;
mod recovery_proof;
pub mod remote;

use crate::crypto::{self, SecretKey};
use crate::format::manifest::{
    DeviceEntry, DeviceState, FEATURES, FLAG_KEY_SERVICE, FLAG_SECOND_FACTOR, Manifest,
    SignedManifest,
};
use crate::format::table::{CategoryEntry, CategoryTable, Class, DEFAULT_CATEGORIES};
use crate::format::{Context, ObjKind, names};
use crate::home::{Config, Home, HomeError, SeenHeads};
use crate::keys::device::{self, DeviceIdentity, DevicePublic};
use crate::keys::{self, KdfParams, KeyError, Passcode};
use crate::keyservice::{EmbeddedKeyService, ServiceError, ServiceKeys};
use crate::store::writeback::{Policy, WriteBack, WriteBackOptions};
use crate::store::{self, Store, StoreError};
use crate::volume::CategorySetup;
use local::Keyring;
use manifest::key_commitment;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

mod acks;
mod categories;
mod open;
mod rotate;
mod web;
pub use web::{Released, WebSignIn};
mod witness;
pub use acks::GcAcks;
use open::device_key_of;
pub use open::{InitOptions, init, reanchor, unlock, unlock_read_only};
pub use rotate::{DEFAULT_BATCH, RotateError, RotateOptions, RotateReport};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The record of heads seen cannot answer: the rollback checks fail closed.
    #[error(transparent)]
    Seen(#[from] crate::home::SeenError),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the store at {0} already holds an account (use a fresh store)")]
    StoreInUse(String),
    #[error("the category table in the store is invalid: {0}")]
    BadTable(String),
    #[error(
        "unknown category {0:?} (see `{hint}`)",
        hint = crate::hint::cmd_hint("category list")
    )]
    UnknownCategory(String),
    #[error("category {0:?} already exists")]
    CategoryExists(String),
    #[error("invalid category name {0:?}: {1}")]
    BadCategoryName(String, &'static str),
    #[error("randomness: {0}")]
    Random(#[from] crypto::CryptoError),
    #[error("account manifest: {0}")]
    BadManifest(String),
    #[error(
        "this device is not remembered by the key service, so it cannot read the account's \
         notices: log in once with a TOTP code (`{hint}`)",
        hint = crate::hint::cmd_hint("account login --totp CODE")
    )]
    NotRemembered,
    #[error(
        "this device's trust anchor ({}) is missing or unreadable, so nothing it has \
         accepted before can be checked. If you know why (a restored backup, a damaged \
         disk), run `{hint}` to rebuild it from a manifest this device signed itself; \
         otherwise treat the disk as tampered with and use `cirrus recover` on a clean home",
        .0.display(),
        hint = crate::hint::cmd_hint("device reanchor")
    )]
    AnchorMissing(PathBuf),
    #[error("wrong recovery key (it does not match the one this account has)")]
    WrongRecoveryKey,
    #[error("{0}")]
    BadCode(String),
    #[error("this device was removed from the account; it can no longer read new data")]
    DeviceRemoved,
    /// A data recovery on another device started the account anew without this one,
    /// checked by `data_recovery::recognise`. Counts as [`AccountError::DeviceRemoved`]
    /// does ([`AccountError::removes_this_device`]).
    #[error(
        "this device was removed from the account: a data recovery (`cirrus recover \
         --data-recovery`) on device \"{by}\", {ago} ago, made that device the account's only \
         trusted one. What this device already has stays readable here; to use the account \
         on this computer again, add it as a new device (`cirrus device add` with a new \
         --home) and approve it on \"{by}\""
    )]
    RemovedByDataRecovery { by: String, ago: String },
    #[error(
        "this needs the key service, which this device is not logged in to \
         (pass --password-file with the account password)"
    )]
    NoKeyService,
    /// As [`AccountError::NoKeyService`], after a login that was tried and failed in a way
    /// the device went on after with the keys it holds (a mount, `status`).
    /// Says only what kind of failure: the whole reason is shown once, as a warning.
    #[error("{}", .0.short())]
    NoSession(remote::NoSession),
    /// The key service wants a recently authenticated session for this change, and this
    /// device logged in through its remembered token (or long ago).
    #[error("this change needs a fresh second factor: run it again with --totp CODE")]
    ReauthRequired,
    /// The login needs a TOTP code: a new device, or one whose remembered token was
    /// revoked (a password change forgets every remembered device).
    #[error(
        "{0}. Log this device in again with `cirrus account login --totp CODE` (the current \
         code of your authenticator app), or run this command again with --totp CODE: a \
         password change makes every other device log in this way once"
    )]
    SecondFactorRequired(String),
    /// A device would join or recover, without the key service, an account whose signed
    /// manifest says it uses one: it could never log in, so nothing is done.
    #[error(
        "this account uses a key service (`cirrus serve`): run the command again with \
         --server URL --fingerprint SHA256:... --account NAME, the account password \
         (--password-file FILE) and, when the account has two-factor authentication, \
         --totp CODE. Nothing was changed"
    )]
    KeyServiceNeeded,
    /// A web approval or release this device will not make (no sign-in with that code, a
    /// category never released to the web).
    #[error("{0}")]
    WebRefused(String),
}

impl AccountError {
    /// Whether the account has removed this device (directly, or by a data recovery on
    /// another device): the caller stops publishing. Decided on the variant, so a reworded
    /// message cannot switch it off.
    pub fn removes_this_device(&self) -> bool {
        matches!(
            self,
            AccountError::DeviceRemoved | AccountError::RemovedByDataRecovery { .. }
        )
    }
}

/// An unlocked account: what a mount, fsck or admin command needs.
pub struct Unlocked {
    pub home: Home,
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// The journal and uploader in front of a remote store (None: a local store).
    pub sync: Option<Arc<WriteBack>>,
    device_key: SecretKey,
    account_key: SecretKey,
    account_key_version: u32,
    /// The version before, if this device had it: see `local::save_previous_account_key`.
    prev_account_key: Option<SecretKey>,
    identity: Arc<DeviceIdentity>,
    /// None when this device cannot reach its key service right now (standard keys then
    /// come from the keyring only).
    service: Option<Box<dyn ServiceKeys>>,
    /// A session with the remote key service, once [`Unlocked::connect`] logged in.
    session: Option<Arc<crate::keyservice::client::Session>>,
    /// Why a login tried by [`Unlocked::connect_or_hold`] gave no session: what a
    /// category that needs the key service says when it stays locked.
    no_session: Option<remote::NoSession>,
    keyring: Mutex<Keyring>,
    pub seen: Arc<SeenHeads>,
    manifest: Manifest,
    manifest_etag: Option<crate::store::Etag>,
    /// Ed25519 keys allowed to sign heads, shared with the volumes' head signer.
    signers: Arc<RwLock<manifest::Signers>>,
}

impl Unlocked {
    /// An unlocked account with nothing connected yet: no write-back, key service or
    /// session, no previous account key, an empty keyring and an empty manifest. The
    /// one place the struct is built; callers then set what they have.
    fn new(
        home: Home,
        config: Config,
        store: Arc<dyn Store>,
        device_key: SecretKey,
        identity: Arc<DeviceIdentity>,
        (account_key, account_key_version): (SecretKey, u32),
        seen: Arc<SeenHeads>,
    ) -> Unlocked {
        Unlocked {
            home,
            config,
            store,
            sync: None,
            device_key,
            account_key,
            account_key_version,
            prev_account_key: None,
            identity,
            service: None,
            session: None,
            no_session: None,
            keyring: Mutex::new(Keyring::default()),
            seen,
            manifest: Manifest::empty([0; 16]),
            manifest_etag: None,
            signers: Default::default(),
        }
    }
}

/// The store URL recorded in the config. The default is `embedded`: the local store
/// inside the home, named relative to it so a home can be moved or restored elsewhere.
pub const EMBEDDED_STORE: &str = "embedded";

/// How the account's objects are written to a remote store (`store::writeback`): packs
/// are content-addressed and heads are compare-and-swapped later, so both can wait in the
/// journal; the manifest, keys and grants need the remote's answer at once.
pub fn sync_policy(name: &str) -> Policy {
    if let Some(id) = names::parse_pack(name) {
        Policy::Immutable(Some(id))
    } else if name.starts_with("heads/") {
        Policy::Head
    } else {
        Policy::Through
    }
}

/// The account's store, and its write-back layer when the store is remote.
pub type StoreAndSync = (Arc<dyn Store>, Option<Arc<WriteBack>>);

/// Opens the account's store. A remote (S3) store comes behind the home's journal and
/// disk cache, returned as well so the caller can start, watch and stop its uploader.
pub fn open_store_sync(home: &Home, url: &str) -> Result<StoreAndSync, StoreError> {
    if url == EMBEDDED_STORE {
        Ok((
            Arc::new(store::LocalStore::open(home.default_store_dir())?),
            None,
        ))
    } else if url.starts_with("s3://") {
        let remote = store::open_url(url)?;
        let wb = WriteBack::open(
            remote,
            &home.journal_dir(),
            &home.cache_dir(),
            WriteBackOptions::new(sync_policy),
        )?;
        Ok((wb.clone(), Some(wb)))
    } else {
        Ok((store::open_url(url)?, None))
    }
}

/// Objects and bytes in the home's upload journal (see `store::writeback::queued_in`).
pub fn queued_uploads(home: &Home) -> (u64, u64) {
    crate::store::writeback::queued_in(&home.journal_dir())
}

fn open_store(home: &Home, url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_store_sync(home, url).map(|(s, _)| s)
}

fn grant_ctx(version: u32) -> Context {
    Context::new(ObjKind::AccountKeyGrant, 0, 0, version as u64)
}

impl Unlocked {
    /// Changes this device's passcode (re-seals the device's secrets; nothing in the store
    /// changes).
    pub fn change_passcode(&mut self, new: &Passcode) -> Result<(), AccountError> {
        if new.expose().is_empty() {
            return Err(KeyError::EmptyPasscode.into());
        }
        let secret = self
            .home
            .read_secret_file(&self.home.device_secret_path())?;
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt)?;
        let new_key = keys::device_key(new, &salt, self.config.kdf, &secret)?;
        let keyring = self.keyring.lock().unwrap_or_else(|p| p.into_inner());
        let token = std::fs::read(self.home.server_token_path())
            .ok()
            .and_then(|b| {
                crypto::open(
                    &self.device_key,
                    crypto::Suite::XtsBlake3,
                    &local::token_ctx().to_bytes(),
                    &b,
                )
                .ok()
            })
            .map(zeroize::Zeroizing::new);
        local::change_passcode(
            &self.home,
            &mut self.config,
            salt,
            &new_key,
            local::Resealable {
                account_key: (self.account_key_version, &self.account_key),
                identity: &self.identity,
                keyring: &keyring,
                seen: &self.seen,
                server_token: token.as_deref().map(|v| v.as_slice()),
                previous_account_key: self
                    .prev_account_key
                    .as_ref()
                    .map(|k| (self.account_key_version.saturating_sub(1), k)),
            },
        )?;
        drop(keyring);
        self.device_key = new_key;
        Ok(())
    }

    pub fn table(&self) -> &CategoryTable {
        &self.manifest.table
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Loads the manifest this device trusts and follows the signed chain to the newest
    /// one in the store; picks up a new account key if one was granted to this device.
    fn refresh_manifest(&mut self) -> Result<(), AccountError> {
        let path = self.home.manifest_path();
        self.seen.refresh();
        let (seen_counter, seen_hash) = self.seen.manifest_seen()?;
        let parse = |bytes: &[u8]| -> Option<(Manifest, [u8; 32])> {
            let sm = SignedManifest::decode(bytes).ok()?;
            Some((Manifest::decode(&sm.body).ok()?, crypto::hash(&sm.body)))
        };
        // The sealed `seen` record is this device's trust anchor: it names the manifest
        // this device last accepted, by hash. Without it nothing local is authenticated
        // (device/manifest is a plain copy), so an account home without it fails closed.
        if seen_hash == [0; 32] {
            return Err(AccountError::AnchorMissing(self.home.seen_path()));
        }
        let file = std::fs::read(&path).ok();
        let matches = |m: &Manifest, h: &[u8; 32]| m.counter == seen_counter && *h == seen_hash;
        let (local, trusted, hash) = match file.as_deref().and_then(parse) {
            Some((m, h)) if matches(&m, &h) => (file.unwrap_or_default(), m, h),
            _ => {
                // The file and the sealed record are two writes; a crash between them (or
                // a CLI next to a daemon) can leave them apart. The record decides: the
                // manifest it names is taken from the store's history, by its hash.
                let bytes = self
                    .store
                    .get(&names::manifest_version(seen_counter))
                    .or_else(|_| self.store.get(names::MANIFEST))
                    .map_err(|_| HomeError::Damaged {
                        path: path.clone(),
                        why: "missing or not the manifest this device recorded as seen".into(),
                    })?;
                match parse(&bytes) {
                    Some((m, h)) if matches(&m, &h) => (bytes, m, h),
                    _ => {
                        return Err(HomeError::Damaged {
                            path,
                            why: "does not match the manifest this device recorded as seen".into(),
                        }
                        .into());
                    }
                }
            }
        };
        if self.config.account_id.as_deref() != Some(&hex::encode(trusted.account_id)) {
            return Err(AccountError::BadManifest(
                "the trusted manifest belongs to another account".into(),
            ));
        }
        manifest::check_classes(&trusted)?;
        let (newest, nhash, etag, newest_obj) =
            manifest::fetch_chain(&*self.store, &trusted, &hash, |last, next| {
                self.dropped_by_data_recovery(last, next)
            })?;
        let changed = newest.counter != trusted.counter;
        if let Ok(mut s) = self.signers.write() {
            *s = manifest::signers_of(&trusted);
        }
        self.manifest = trusted;
        // The bytes kept are the very bytes verified, never a second fetch.
        let obj = if changed { newest_obj } else { local };
        self.accept_manifest(newest, nhash, &obj, Some(etag))?;
        let me = self.identity.public().sign;
        if !self.manifest.active_devices().any(|d| d.sign == me) {
            return Err(AccountError::DeviceRemoved);
        }
        if self.manifest.account_key_version != self.account_key_version {
            self.take_account_key_grant()?;
        }
        Ok(())
    }

    /// Opens the account key version the manifest names from its grant to this device.
    fn take_account_key_grant(&mut self) -> Result<(), AccountError> {
        let v = self.manifest.account_key_version;
        let me = self.identity.public();
        let obj = self.store.get(&names::account_key_grant(v, &me.sign))?;
        let key = self.identity.open_sealed(grant_ctx(v), &obj).map_err(|_| {
            KeyError::BadWrappedKey(format!("account key v{v} granted to this device"))
        })?;
        if self.manifest.commitment(0, v) != Some(key_commitment(&key)) {
            return Err(KeyError::BadWrappedKey(format!(
                "account key v{v}: it is not the key the signed manifest commits to"
            ))
            .into());
        }
        local::save_previous_account_key(
            &self.home,
            &self.device_key,
            self.account_key_version,
            &self.account_key,
        )?;
        local::save_account_key(&self.home, &self.device_key, v, &key)?;
        self.prev_account_key = Some(std::mem::replace(&mut self.account_key, key));
        self.account_key_version = v;
        Ok(())
    }

    /// Seals the current account key to a device's X25519 key, in the store.
    pub(crate) fn grant_account_key(&self, to: &DevicePublic) -> Result<(), AccountError> {
        let v = self.account_key_version;
        let sealed = device::seal_to(to, grant_ctx(v), &self.account_key)
            .map_err(|e| KeyError::BadWrappedKey(format!("granting the account key: {e}")))?;
        self.store
            .put(&names::account_key_grant(v, &to.sign), &sealed)?;
        Ok(())
    }

    fn save_keyring(&self) -> Result<(), AccountError> {
        let k = self.keyring.lock().unwrap_or_else(|p| p.into_inner());
        k.save(&self.home, &self.device_key)
    }

    fn service(&self) -> Result<&dyn ServiceKeys, AccountError> {
        match (&self.service, &self.no_session) {
            (Some(s), _) => Ok(s.as_ref()),
            (None, Some(why)) => Err(AccountError::NoSession(why.clone())),
            (None, None) => Err(AccountError::NoKeyService),
        }
    }

    pub fn store_dir(&self) -> Option<PathBuf> {
        if self.config.store == EMBEDDED_STORE {
            return Some(self.home.default_store_dir());
        }
        self.config.store.strip_prefix("file://").map(PathBuf::from)
    }
}
