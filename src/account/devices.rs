//! Trusted devices: a new device asks to join and shows a short code over its public
//! keys; a trusted device approves the request whose keys give the same code, grants it
//! the account key and the category keys, and signs the new device list. Recovery (with
//! the recovery key) takes the approving device's place. Also the setup both share: a
//! device home that exists before it belongs to an account.

use super::*;
use crate::crypto::Suite;
use crate::format::manifest::{
    Approval, FEATURES, JOIN_SIGN_DOMAIN, JoinRequest, RecoveryEntry, RecoveryKind,
};
use crate::keys::join::{self, JoinCode};
use crate::keys::recovery::RecoveryKey;
use zeroize::Zeroizing;

/// A device home being set up to join or recover an account.
pub struct NewDevice {
    pub home: Home,
    config: Config,
    device_key: SecretKey,
    identity: Arc<DeviceIdentity>,
    store: Arc<dyn Store>,
    /// The code of the join request this run made (shown to the person).
    code: Option<JoinCode>,
}

pub struct NewDeviceOptions {
    pub store_url: String,
    pub device_name: String,
    pub kdf: KdfParams,
    /// The device is given the account's key service (and logs in to it). Without it, an
    /// account whose manifest says it uses one is refused before anything is written.
    pub with_key_service: bool,
}

fn bundle_ctx() -> Context {
    Context::new(ObjKind::Keyring, 0, 0, 1)
}

impl NewDevice {
    /// Creates the device's secrets in `home`, or takes up those of an unfinished join.
    pub fn prepare(
        home: Home,
        passcode: &Passcode,
        opts: NewDeviceOptions,
    ) -> Result<NewDevice, AccountError> {
        if home.exists() {
            return Err(HomeError::Exists(home.root.clone()).into());
        }
        if passcode.expose().is_empty() {
            return Err(KeyError::EmptyPasscode.into());
        }
        keys::floor::check_own(opts.kdf)?;
        if let Some(config) = home.load_join()? {
            if config.store != opts.store_url {
                return Err(AccountError::BadManifest(format!(
                    "an unfinished join of {} is in this home; finish it or remove {}",
                    config.store,
                    home.join_path().display()
                )));
            }
            let store = open_store(&home, &config.store)?;
            check_key_service(&store.get(names::MANIFEST)?, opts.with_key_service)?;
            let device_key = device_key_of(&home, &config, passcode)?;
            let identity =
                local::load_identity(&home, &device_key)?.ok_or_else(|| HomeError::Damaged {
                    path: home.identity_path(),
                    why: "missing".into(),
                })?;
            return Ok(NewDevice {
                home,
                config,
                device_key,
                identity: Arc::new(identity),
                store,
                code: None,
            });
        }
        if opts.store_url == EMBEDDED_STORE {
            return Err(AccountError::BadManifest(
                "give the account's store URL (for example file:///path/to/store)".into(),
            ));
        }
        let store = store::open_url(&opts.store_url)?;
        let manifest = store.get(names::MANIFEST).map_err(|e| match e {
            StoreError::NotFound(_) => AccountError::BadManifest(format!(
                "the store at {} holds no account",
                opts.store_url
            )),
            e => e.into(),
        })?;
        check_key_service(&manifest, opts.with_key_service)?;
        home.create_dirs()?;
        let (device_key, salt) = local::new_device_key(&home, passcode, opts.kdf)?;
        let identity = DeviceIdentity::generate()?;
        local::save_identity(&home, &device_key, &identity)?;
        let config = Config {
            version: 1,
            store: opts.store_url,
            device_name: opts.device_name,
            kdf_salt: hex::encode(salt),
            kdf: opts.kdf,
            account_id: None,
            server: None,
        };
        home.save_config_to(&home.join_path(), &config)?;
        Ok(NewDevice {
            home,
            config,
            device_key,
            identity: Arc::new(identity),
            store,
            code: None,
        })
    }

    /// Logs this device in to the account's key service and remembers it (the token is
    /// sealed under this device's key), before it asks anything of the account: a join
    /// approved late, or a recovery, then never depends on a TOTP code that has expired or
    /// been overtaken by a later login meanwhile.
    pub fn log_in(
        &self,
        server: &crate::home::ServerConfig,
        password: &Passcode,
        totp: Option<&str>,
    ) -> Result<crate::keyservice::client::Session, AccountError> {
        super::remote::log_in(
            &self.home,
            &self.device_key,
            server,
            self.config.kdf,
            password,
            totp,
        )
    }

    /// Puts a join request in the store, MAC'd under a fresh code; returns the code, for
    /// the person to type on a trusted device.
    pub fn request_join(&mut self) -> Result<Zeroizing<String>, AccountError> {
        let me = self.identity.public();
        let code = JoinCode::generate()?;
        let part = JoinRequest::signed_part(&self.config.device_name, &me.sign, &me.kx, FEATURES);
        let req = JoinRequest {
            name: self.config.device_name.clone(),
            sign: me.sign,
            kx: me.kx,
            features: FEATURES,
            tag: join::mac(&code.key(), crate::crypto::domains::MAC_JOIN_REQUEST, &part),
            sig: self.identity.sign(JOIN_SIGN_DOMAIN, &part),
        };
        // A stale approval of an earlier run (another code) must not be taken for this one.
        let _ = self.store.delete(&names::join_approval(&me.sign));
        self.store
            .put(&names::join_request(&me.sign), &req.encode())?;
        let shown = code.grouped();
        self.code = Some(code);
        Ok(shown)
    }

    /// Completes the join once a trusted device has approved it: `Ok(Err(self))` while
    /// it has not been approved yet. The approval must carry a MAC under this run's code
    /// over the manifest it names, which must be signed by the approving device and list
    /// this one: a manifest the server made up is refused.
    pub fn try_finish_join(self) -> Result<Result<Unlocked, NewDevice>, AccountError> {
        let me = self.identity.public();
        let Some(code) = &self.code else {
            return Err(AccountError::BadCode("no join request was made".into()));
        };
        let approval = match self.store.get(&names::join_approval(&me.sign)) {
            Ok(o) => o,
            Err(StoreError::NotFound(_)) => return Ok(Err(self)),
            Err(e) => return Err(e.into()),
        };
        let forged = || {
            AccountError::BadManifest(
                "the approval in the store was not made by a device that saw this device's \
                 code (the server may be attacking); nothing was accepted"
                    .into(),
            )
        };
        let approval = Approval::decode(&approval).map_err(|_| forged())?;
        let obj = self.store.get(&names::manifest_version(approval.counter))?;
        let sm = SignedManifest::decode(&obj).map_err(|_| forged())?;
        let body_hash = crypto::hash(&sm.body);
        let want = join::mac(
            &code.key(),
            crate::crypto::domains::MAC_APPROVAL,
            &Approval::mac_input(&me.sign, approval.counter, &body_hash, &approval.approver),
        );
        if !crypto::ct_eq(&want, &approval.mac) || sm.signer != approval.approver {
            return Err(forged());
        }
        let (m, hash, v, ak, keyring) = {
            let (m, hash) = manifest::verify_anchor(&obj, &me.sign)?;
            if m.counter != approval.counter
                || !m.active_devices().any(|d| d.sign == approval.approver)
            {
                return Err(forged());
            }
            let v = m.account_key_version;
            let sealed = self.store.get(&names::account_key_grant(v, &me.sign))?;
            let ak = self
                .identity
                .open_sealed(grant_ctx(v), &sealed)
                .map_err(|_| {
                    KeyError::BadWrappedKey("the account key granted to this device".into())
                })?;
            if m.commitment(0, v) != Some(key_commitment(&ak)) {
                return Err(AccountError::BadManifest(
                    "the granted account key is not the one the manifest commits to".into(),
                ));
            }
            let bundle = self.store.get(&names::key_bundle(&me.sign))?;
            let keyring = open_bundle(&self.identity, &bundle)?;
            for (c, v, k) in keyring.iter() {
                if m.commitment(c, v) != Some(key_commitment(k)) {
                    return Err(AccountError::BadManifest(format!(
                        "category {c} key v{v} handed to this device is not the committed one"
                    )));
                }
            }
            (m, hash, v, ak, keyring)
        };
        let _ = self.store.delete(&names::join_approval(&me.sign));
        let etag = crate::store::etag_of(&obj);
        self.finish(m, hash, &obj, etag, v, ak, keyring).map(Ok)
    }

    /// Writes the device's account state and config: from here on it is a trusted device.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        self,
        m: Manifest,
        hash: [u8; 32],
        obj: &[u8],
        etag: crate::store::Etag,
        akv: u32,
        ak: SecretKey,
        keyring: Keyring,
    ) -> Result<Unlocked, AccountError> {
        let NewDevice {
            home,
            mut config,
            device_key,
            identity,
            store,
            ..
        } = self;
        local::save_account_key(&home, &device_key, akv, &ak)?;
        keyring.save(&home, &device_key)?;
        let seen = Arc::new(SeenHeads::load(
            home.seen_path(),
            keys::device_state_key(&device_key),
            None,
            false,
        )?);
        config.account_id = Some(hex::encode(m.account_id));
        let mut acct = Unlocked::new(home, config, store, device_key, identity, (ak, akv), seen);
        acct.keyring = Mutex::new(keyring);
        acct.manifest = m.clone();
        acct.accept_manifest(m, hash, obj, Some(etag))?;
        acct.home.save_config(&acct.config)?;
        let _ = std::fs::remove_file(acct.home.join_path());
        Ok(acct)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn identity_public(&self) -> DevicePublic {
        self.identity.public()
    }

    /// Turns the device into an account holder of a recovered account whose manifest is
    /// `old` (to be replaced by the caller), with account key `ak` of version `akv`.
    pub(crate) fn into_account(
        self,
        server: crate::home::ServerConfig,
        old: &Manifest,
        akv: u32,
        ak: &SecretKey,
        session: Arc<crate::keyservice::client::Session>,
    ) -> Result<Unlocked, AccountError> {
        let NewDevice {
            home,
            mut config,
            device_key,
            identity,
            store,
            ..
        } = self;
        local::save_account_key(&home, &device_key, akv, ak)?;
        let seen = Arc::new(SeenHeads::load(
            home.seen_path(),
            keys::device_state_key(&device_key),
            None,
            false,
        )?);
        config.account_id = Some(hex::encode(old.account_id));
        config.server = Some(server);
        let mut acct = Unlocked::new(
            home,
            config,
            store,
            device_key,
            identity,
            (ak.duplicate(), akv),
            seen,
        );
        acct.session = Some(session.clone());
        acct.service = Some(Box::new(super::remote::RemoteService(session)));
        acct.manifest = old.clone();
        Ok(acct)
    }

    /// Recovers the account on this new device with the recovery key: opens the account
    /// key sealed to the recovery key's public half, then adds this device to the
    /// account, signed by the recovery key.
    pub fn recover_with_key(self, code: &RecoveryKey) -> Result<Unlocked, AccountError> {
        let own = self.config.kdf;
        self.recover_with(|m| {
            let entry = m
                .recovery
                .iter()
                .find(|r| r.kind == RecoveryKind::RecoveryKey)
                .ok_or_else(|| {
                    AccountError::BadManifest("this account has no recovery key".into())
                })?
                .clone();
            let rid = keys::recovery_identity(code.secret(), &entry.salt, entry_kdf(&entry, own)?)?;
            if rid.public().sign != entry.sign {
                return Err(AccountError::WrongRecoveryKey);
            }
            Ok((entry, rid))
        })
    }

    /// Recovers with a recovery method: `pick` finds the method's entry in the store's
    /// manifest and derives its key pairs (failing if the secret is wrong); the account
    /// key sealed to it is opened and checked, and this device is added to the account,
    /// signed by the method.
    pub(crate) fn recover_with(
        self,
        pick: impl FnOnce(&Manifest) -> Result<(RecoveryEntry, DeviceIdentity), AccountError>,
    ) -> Result<Unlocked, AccountError> {
        let obj = self.store.get(names::MANIFEST)?;
        let (m, hash) = manifest::open_signed(&obj, |t, s| t.is_signer(s), None)?;
        let (entry, rid) = pick(&m)?;
        let v = m.account_key_version;
        let sealed = self.store.get(&names::account_key_grant(v, &entry.sign))?;
        let ak = rid.open_sealed(grant_ctx(v), &sealed).map_err(|_| {
            KeyError::BadWrappedKey(format!("the account key sealed to the {}", entry.label))
        })?;
        if m.commitment(0, v) != Some(key_commitment(&ak)) {
            return Err(AccountError::BadManifest(format!(
                "the account key sealed to the {} is not the committed one",
                entry.label
            )));
        }
        let etag = crate::store::etag_of(&obj);
        let name = self.config.device_name.clone();
        let me = self.identity.public();
        let mut acct = self.finish(m, hash, &obj, etag, v, ak, Keyring::default())?;
        let mut next = acct.manifest.clone();
        next.devices.push(DeviceEntry {
            name: unique_name(&next, &name),
            sign: me.sign,
            kx: me.kx,
            state: DeviceState::Active,
            features: FEATURES,
        });
        acct.publish_manifest_as(next, &rid)?;
        acct.grant_account_key(&me)?;
        Ok(acct)
    }
}

/// Refuses to join or recover without the key service (`with_key_service` false) an
/// account whose manifest (`obj`, the store's newest) says it uses one: the device could
/// never log in to it. Checked before anything is written. The manifest is not trusted
/// yet (only its own signers vouch for it): a store that sets the flag can only make this
/// device refuse; one that serves a manifest without it gets what it got before the flag.
fn check_key_service(obj: &[u8], with_key_service: bool) -> Result<(), AccountError> {
    if with_key_service {
        return Ok(());
    }
    let (m, _) = manifest::open_signed(obj, |t, s| t.is_signer(s), None)?;
    if m.has(FLAG_KEY_SERVICE) {
        return Err(AccountError::KeyServiceNeeded);
    }
    Ok(())
}

/// The Argon2id costs a recovery entry names, checked before anything is derived: the
/// entry comes from a manifest not yet trusted, so it must neither make this device
/// allocate terabytes nor ask for less than the protocol floor and this device's own costs
/// (`own`), which would make what is derived from the secret cheap to guess.
pub(crate) fn entry_kdf(e: &RecoveryEntry, own: KdfParams) -> Result<KdfParams, AccountError> {
    let offered = KdfParams {
        memory_kib: e.kdf_memory_kib,
        time: e.kdf_time,
        lanes: 1,
    };
    Ok(keys::floor::check_untrusted(
        &format!("the {}", e.label),
        offered,
        own,
    )?)
}

fn unique_name(m: &Manifest, want: &str) -> String {
    let taken = |n: &str| m.active_devices().any(|d| d.name == n);
    if !taken(want) {
        return want.to_string();
    }
    (2..)
        .map(|i| format!("{want} ({i})"))
        .find(|n| !taken(n))
        .unwrap_or_default()
}

fn open_bundle(id: &DeviceIdentity, obj: &[u8]) -> Result<Keyring, AccountError> {
    let bad = || KeyError::BadWrappedKey("the key bundle handed to this device".into());
    let mut r = crate::format::codec::Reader::new(obj);
    let head = r.bytes().map_err(|_| bad())?;
    let body = r.bytes().map_err(|_| bad())?;
    let k = id.open_sealed(bundle_ctx(), head).map_err(|_| bad())?;
    let plain = zeroize::Zeroizing::new(
        crypto::open(&k, Suite::XtsBlake3, &bundle_ctx().to_bytes(), body).map_err(|_| bad())?,
    );
    Ok(Keyring::decode(&plain).map_err(|_| bad())?)
}

/// A device's row in `device list`.
pub struct DeviceRow {
    pub name: String,
    pub active: bool,
    pub this_device: bool,
    /// The device's approval code (the short code over its public keys).
    pub code: String,
}

impl Unlocked {
    pub fn devices(&self) -> Vec<DeviceRow> {
        let me = self.identity.public().sign;
        self.manifest
            .devices
            .iter()
            .map(|d| DeviceRow {
                name: d.name.clone(),
                active: d.state == DeviceState::Active,
                this_device: d.sign == me,
                code: hex::encode(&d.sign[..8]),
            })
            .collect()
    }

    /// Join requests waiting in the store whose self-signature holds.
    fn join_requests(&self) -> Result<Vec<JoinRequest>, AccountError> {
        let mut out = Vec::new();
        for name in self.store.list("account/requests/")? {
            let Ok(obj) = self.store.get(&name) else {
                continue;
            };
            let Ok(req) = JoinRequest::decode(&obj) else {
                log::warn!("ignoring malformed join request {name}");
                continue;
            };
            let part = JoinRequest::signed_part(&req.name, &req.sign, &req.kx, req.features);
            let pk = DevicePublic {
                sign: req.sign,
                kx: req.kx,
            };
            if device::verify(&pk, JOIN_SIGN_DOMAIN, &part, &req.sig).is_err() {
                log::warn!("ignoring join request {name}: bad signature");
                continue;
            }
            out.push(req);
        }
        Ok(out)
    }

    /// Approves the waiting device whose public keys give `code`: adds it to the signed
    /// device list and grants it the account key and the category keys. Returns its name.
    pub fn approve_device(&mut self, code: &str) -> Result<String, AccountError> {
        let code = JoinCode::parse(code).map_err(|e| AccountError::BadCode(e.to_string()))?;
        let key = code.key();
        let reqs = self.join_requests()?;
        let found = reqs.into_iter().find(|r| {
            let part = JoinRequest::signed_part(&r.name, &r.sign, &r.kx, r.features);
            crypto::ct_eq(
                &join::mac(&key, crate::crypto::domains::MAC_JOIN_REQUEST, &part),
                &r.tag,
            )
        });
        let Some(req) = found else {
            return Err(AccountError::BadCode(
                "no waiting device shows this code. Check the code on the new device; if it \
                 is right, someone (possibly the server) has replaced its request: do not \
                 approve anything and start `cirrus device add` again"
                    .into(),
            ));
        };
        let pk = DevicePublic {
            sign: req.sign,
            kx: req.kx,
        };
        if self.manifest.devices.iter().any(|d| d.sign == req.sign) {
            return Err(AccountError::BadCode(
                "that device already belongs (or belonged) to the account".into(),
            ));
        }
        // Keys first, then the signed list that makes the device trusted, then the
        // approval that tells the new device which manifest to anchor on.
        self.grant_account_key(&pk)?;
        self.hand_keys_to(&pk)?;
        let mut next = self.manifest.clone();
        let name = unique_name(&next, &req.name);
        next.devices.push(DeviceEntry {
            name: name.clone(),
            sign: req.sign,
            kx: req.kx,
            state: DeviceState::Active,
            features: req.features,
        });
        self.publish_manifest(next)?;
        let me = self.identity.public().sign;
        let counter = self.manifest.counter;
        let body_hash = crypto::hash(&self.manifest.encode());
        let approval = Approval {
            counter,
            approver: me,
            mac: join::mac(
                &key,
                crate::crypto::domains::MAC_APPROVAL,
                &Approval::mac_input(&req.sign, counter, &body_hash, &me),
            ),
        };
        self.store
            .put(&names::join_approval(&req.sign), &approval.encode())?;
        let _ = self.store.delete(&names::join_request(&req.sign));
        Ok(name)
    }

    /// Seals the current key of every category to a device.
    fn hand_keys_to(&self, pk: &DevicePublic) -> Result<(), AccountError> {
        let mut ring = Keyring::default();
        for e in &self.manifest.table.entries {
            match self.category_key(e) {
                Ok(k) => ring.insert(e.id, e.key_version, k),
                Err(err) => log::warn!("category {}: not handed over: {err}", e.name),
            }
            // The previous version too while a rotation away from it is unfinished: the
            // new device must read blobs not yet resealed.
            let prev = e.key_version.saturating_sub(1);
            if prev > 0
                && self.store.size(&names::category_key(e.id, prev)).is_ok()
                && let Ok(k) = self.category_key_version(e, prev)
            {
                ring.insert(e.id, prev, k);
            }
        }
        let k = crypto::random_key()?;
        let head = device::seal_to(pk, bundle_ctx(), &k)
            .map_err(|e| KeyError::BadWrappedKey(format!("sealing the key bundle: {e}")))?;
        let body = crypto::seal(
            &k,
            Suite::XtsBlake3,
            &bundle_ctx().to_bytes(),
            &ring.encode(),
        )?;
        let mut w = crate::format::codec::Writer::new();
        w.bytes(&head).bytes(&body);
        self.store.put(&names::key_bundle(&pk.sign), &w.finish())?;
        Ok(())
    }

    /// Creates a recovery key (revoking any earlier one): the account key is sealed to a
    /// key pair derived from it. With a recovery key, the data recovery service is off.
    pub fn create_recovery_key(&mut self) -> Result<RecoveryKey, AccountError> {
        let code = RecoveryKey::generate()?;
        let mut salt = [0u8; 16];
        crypto::random_bytes(&mut salt)?;
        // Never below the floor a recovering device insists on (older homes may have
        // been made with cheaper costs).
        let kdf = keys::floor::floor_for(self.config.kdf);
        let rid = keys::recovery_identity(code.secret(), &salt, kdf)?;
        let pk = rid.public();
        self.grant_account_key(&pk)?;
        let mut next = self.manifest.clone();
        let old: Vec<RecoveryEntry> = next
            .recovery
            .iter()
            .filter(|r| r.kind == RecoveryKind::RecoveryKey)
            .cloned()
            .collect();
        next.recovery
            .retain(|r| r.kind != RecoveryKind::RecoveryKey);
        next.recovery.push(RecoveryEntry {
            kind: RecoveryKind::RecoveryKey,
            label: "recovery key".into(),
            salt,
            kdf_memory_kib: kdf.memory_kib,
            kdf_time: kdf.time,
            sign: pk.sign,
            kx: pk.kx,
        });
        next.set(crate::format::manifest::FLAG_NO_DATA_RECOVERY, true);
        self.publish_manifest(next)?;
        // The old key can no longer sign (it left the manifest); its grant goes too. A
        // copy of that grant kept by the server, with a leaked old code, would still open
        // the current account key: so a replaced recovery key rotates the account key.
        for r in &old {
            let _ = self
                .store
                .delete(&names::account_key_grant(self.account_key_version, &r.sign));
        }
        if !old.is_empty() {
            self.rotate_account_key()?;
        }
        Ok(code)
    }
}

impl Unlocked {
    /// Replaces the account key with a new version: granted to every active device and
    /// recovery method, committed in the manifest (`edit` may change it further, e.g.
    /// mark a device removed), and every e2e category key object re-wrapped under it.
    pub(crate) fn rotate_account_key_with(
        &mut self,
        edit: impl FnOnce(&mut Manifest),
    ) -> Result<(), AccountError> {
        let v = self
            .account_key_version
            .checked_add(1)
            .ok_or_else(|| AccountError::BadManifest("no account key version left".into()))?;
        let new = crypto::random_key()?;
        let mut next = self.manifest.clone();
        edit(&mut next);
        next.account_key_version = v;
        next.set_commitment(0, v, key_commitment(&new));
        // Keys held under the old account key, unwrapped while it is still in hand.
        let mut e2e = Vec::new();
        for e in next.table.entries.iter().filter(|e| e.class == Class::E2e) {
            for ver in [e.key_version.saturating_sub(1), e.key_version] {
                if ver == 0 || self.store.size(&names::category_key(e.id, ver)).is_err() {
                    continue;
                }
                match self.category_key_version(e, ver) {
                    Ok(k) => e2e.push((e.id, ver, k)),
                    Err(err) => log::warn!("category {} key v{ver}: {err}", e.name),
                }
            }
        }
        let holders: Vec<DevicePublic> = next
            .active_devices()
            .map(|d| DevicePublic {
                sign: d.sign,
                kx: d.kx,
            })
            .chain(next.recovery.iter().map(|r| DevicePublic {
                sign: r.sign,
                kx: r.kx,
            }))
            .collect();
        for h in &holders {
            let sealed = device::seal_to(h, grant_ctx(v), &new)
                .map_err(|e| KeyError::BadWrappedKey(format!("granting the account key: {e}")))?;
            self.store
                .put(&names::account_key_grant(v, &h.sign), &sealed)?;
        }
        self.publish_manifest(next)?;
        local::save_previous_account_key(
            &self.home,
            &self.device_key,
            self.account_key_version,
            &self.account_key,
        )?;
        local::save_account_key(&self.home, &self.device_key, v, &new)?;
        let old_v = self.account_key_version;
        self.prev_account_key = Some(std::mem::replace(&mut self.account_key, new));
        self.account_key_version = v;
        for (id, ver, k) in e2e {
            self.store_category_key(id, ver, Class::E2e, &k)?;
        }
        // Old grants open only the old key; they go, so no copy of it stays in the store.
        for name in self
            .store
            .list(&format!("account/grants/{old_v:08x}/"))
            .unwrap_or_default()
        {
            let _ = self.store.delete(&name);
        }
        Ok(())
    }

    /// `cirrus rotate --account`: a new account key version.
    pub fn rotate_account_key(&mut self) -> Result<(), AccountError> {
        self.rotate_account_key_with(|_| {})
    }

    /// Removes a device from the account: it leaves the signed device list (so its
    /// signatures stop counting) and the account key rotates. Returns the categories
    /// whose keys the caller must rotate next, so the removed device cannot read
    /// anything written afterwards.
    pub fn remove_device(&mut self, name: &str) -> Result<Vec<String>, AccountError> {
        let me = self.identity.public().sign;
        let target = self
            .manifest
            .active_devices()
            .find(|d| d.name == name)
            .cloned()
            .ok_or_else(|| AccountError::BadCode(format!("no trusted device named {name:?}")))?;
        if target.sign == me {
            return Err(AccountError::BadCode(
                "a device cannot remove itself; remove it from another trusted device".into(),
            ));
        }
        self.rotate_account_key_with(|m| {
            for d in &mut m.devices {
                if d.sign == target.sign {
                    d.state = DeviceState::Removed;
                }
            }
        })?;
        let _ = self.store.delete(&names::key_bundle(&target.sign));
        Ok(self
            .manifest
            .table
            .active()
            .map(|e| e.name.clone())
            .collect())
    }
}
