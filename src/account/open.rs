//! Creating an account on this device (`init`) and opening it with the passcode
//! (`unlock`, `reanchor`): the two ways an [`Unlocked`] comes to be, kept apart from
//! what an unlocked account then does.

use super::*;

pub struct InitOptions {
    pub store_url: Option<String>,
    pub kdf: KdfParams,
    pub device_name: String,
    /// A remote key service (`cirrus serve`); None: the embedded one in the home.
    pub server: Option<remote::ServerInit>,
}

pub(super) fn device_key_of(
    home: &Home,
    config: &Config,
    passcode: &Passcode,
) -> Result<SecretKey, AccountError> {
    let device_secret = home.read_secret_file(&home.device_secret_path())?;
    let salt = hex::decode(&config.kdf_salt).map_err(|_| HomeError::BadConfig {
        path: home.config_path(),
        why: "kdf_salt is not hex".into(),
    })?;
    Ok(keys::device_key(
        passcode,
        &salt,
        config.kdf,
        &device_secret,
    )?)
}

/// Creates a new account in `home` with the default category table. On failure nothing
/// is left half-created.
pub fn init(home: &Home, passcode: &Passcode, opts: InitOptions) -> Result<(), AccountError> {
    if home.exists() {
        return Err(HomeError::Exists(home.root.clone()).into());
    }
    if passcode.expose().is_empty() {
        return Err(KeyError::EmptyPasscode.into());
    }
    keys::floor::check_own(opts.kdf)?;
    let created_root = !home.root.exists();
    let res = init_inner(home, passcode, opts);
    if res.is_err() {
        // Undo what we made; never touch what existed before.
        let _ = std::fs::remove_file(home.config_path());
        let _ = std::fs::remove_dir_all(home.device_dir());
        let _ = std::fs::remove_dir_all(home.keyservice_dir());
        let _ = std::fs::remove_dir_all(home.run_dir());
        if created_root {
            let _ = std::fs::remove_dir_all(&home.root);
        }
    }
    res
}

fn init_inner(home: &Home, passcode: &Passcode, opts: InitOptions) -> Result<(), AccountError> {
    home.create_dirs()?;
    let url = opts
        .store_url
        .clone()
        .unwrap_or_else(|| EMBEDDED_STORE.to_string());
    let store: Arc<dyn Store> = if opts.store_url.is_none() {
        Arc::new(store::LocalStore::create(home.default_store_dir())?)
    } else {
        store::open_url(&url)?
    };
    for name in [names::MANIFEST, names::CATEGORY_TABLE] {
        match store.get(name) {
            Ok(_) => return Err(AccountError::StoreInUse(url)),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (device_key, salt) = local::new_device_key(home, passcode, opts.kdf)?;
    let account_key = crypto::random_key()?;
    local::save_account_key(home, &device_key, 1, &account_key)?;
    let identity = Arc::new(DeviceIdentity::generate()?);
    local::save_identity(home, &device_key, &identity)?;
    let (service, session, server_cfg): (Box<dyn ServiceKeys>, _, _) = match &opts.server {
        None => (
            Box::new(EmbeddedKeyService::create(&home.keyservice_dir())?),
            None,
            None,
        ),
        Some(srv) => {
            let cfg = crate::home::ServerConfig {
                url: srv.url.clone(),
                fingerprint: srv.fingerprint.to_string(),
                account: srv.account.clone(),
            };
            let client = remote::client_for(&cfg, opts.kdf)?;
            client.create_account_invited(
                &srv.account,
                &srv.password,
                opts.kdf,
                srv.invite.as_deref().map(|s| s.as_str()),
            )?;
            // Logging in again remembers this device (no second factor exists yet).
            let (session, token) = client.login(
                &srv.account,
                &srv.password,
                crate::keyservice::client::SecondFactor::None,
                true,
            )?;
            if let Some(t) = token {
                remote::save_token(home, &device_key, &t)?;
            }
            let session = Arc::new(session);
            (
                Box::new(remote::RemoteService(session.clone())) as Box<dyn ServiceKeys>,
                Some(session),
                Some(cfg),
            )
        }
    };
    let service = Some(service);
    let seen = Arc::new(SeenHeads::load(
        home.seen_path(),
        keys::device_state_key(&device_key),
        None,
        false,
    )?);
    let mut account_id = [0u8; 16];
    crypto::random_bytes(&mut account_id)?;
    let config = Config {
        version: 1,
        store: url,
        device_name: opts.device_name.clone(),
        kdf_salt: hex::encode(salt),
        kdf: opts.kdf,
        account_id: Some(hex::encode(account_id)),
        server: server_cfg,
    };
    let me = identity.public();
    // With the embedded key service this single device is the second factor; with a
    // remote one, TOTP must be enrolled first (`cirrus account totp`).
    let second_factor = if opts.server.is_none() {
        FLAG_SECOND_FACTOR
    } else {
        0
    };
    let mut acct = Unlocked::new(
        Home::new(home.root.clone()),
        config,
        store,
        device_key,
        identity,
        (account_key, 1),
        seen,
    );
    acct.service = service;
    acct.session = session;
    acct.manifest = Manifest {
        account_key_version: 1,
        flags: second_factor,
        devices: vec![DeviceEntry {
            name: opts.device_name,
            sign: me.sign,
            kx: me.kx,
            state: DeviceState::Active,
            features: FEATURES,
        }],
        ..Manifest::empty(account_id)
    };
    let mut next = acct.manifest.clone();
    next.set_commitment(0, 1, key_commitment(&acct.account_key));
    for (name, class) in DEFAULT_CATEGORIES {
        acct.add_entry(&mut next, name, *class)?;
    }
    acct.publish_manifest(next)?;
    acct.grant_account_key(&me)?;
    acct.save_keyring()?;
    // The config goes last: its presence is what marks the account as complete.
    home.save_config(&acct.config)?;
    Ok(())
}

/// Unlocks the account in `home` with the passcode.
pub fn unlock(home: Home, passcode: &Passcode) -> Result<Unlocked, AccountError> {
    Ok(unlock_with(home, passcode, false, false)?.0)
}

/// [`unlock`] for a read-only mount: the store refuses every write from the start
/// (`store::ReadOnlyStore`), so unlocking cannot write it either (a home from before
/// manifests, which must be migrated, fails with the store's read-only error; a login
/// cannot mark the manifest). The write-back stays in `sync` for the daemon to set its
/// cache limits on, but it is never started.
pub fn unlock_read_only(home: Home, passcode: &Passcode) -> Result<Unlocked, AccountError> {
    Ok(unlock_with(home, passcode, false, true)?.0)
}

/// `cirrus device reanchor`: unlocks after rebuilding a missing or damaged trust anchor
/// from a manifest this device signed ([`anchor`]); also returns the counter of that
/// manifest (None: the anchor was intact and nothing changed).
pub fn reanchor(home: Home, passcode: &Passcode) -> Result<(Unlocked, Option<u64>), AccountError> {
    unlock_with(home, passcode, true, false)
}

fn unlock_with(
    home: Home,
    passcode: &Passcode,
    reanchor: bool,
    read_only: bool,
) -> Result<(Unlocked, Option<u64>), AccountError> {
    let config = home.load_config()?;
    let device_key = device_key_of(&home, &config, passcode)?;
    local::finish_passcode_change(&home, &device_key)?;
    let (account_key_version, account_key) = local::load_account_key(&home, &device_key)?;
    let service: Option<Box<dyn ServiceKeys>> = match &config.server {
        // A device that joined an embedded account has no key service of its own: its
        // standard keys came in the key bundle of its approval.
        None if !home.keyservice_dir().exists() => None,
        None => Some(Box::new(EmbeddedKeyService::open(&home.keyservice_dir())?)),
        Some(_) => None,
    };
    let (mut store, sync) = open_store_sync(&home, &config.store)?;
    if read_only {
        store = Arc::new(crate::store::ReadOnlyStore::new(store));
    }
    if reanchor {
        anchor::set_aside_unreadable(
            &home,
            &device_key,
            &account_key,
            config.account_id.is_none(),
        )?;
    }
    // The legacy sealing key derives from the account key, which recovery methods also
    // open: only a home from before manifests (no account id) may still hold such a record.
    let legacy = config
        .account_id
        .is_none()
        .then(|| keys::legacy_device_state_key(&account_key));
    let seen = Arc::new(SeenHeads::load(
        home.seen_path(),
        keys::device_state_key(&device_key),
        legacy,
        true,
    )?);
    let keyring = Keyring::load(&home, &device_key)?;
    let identity = match local::load_identity(&home, &device_key)? {
        Some(i) => i,
        None if config.account_id.is_none() => {
            let i = DeviceIdentity::generate()?;
            local::save_identity(&home, &device_key, &i)?;
            i
        }
        None => {
            return Err(HomeError::Damaged {
                path: home.identity_path(),
                why: "missing".into(),
            }
            .into());
        }
    };
    let prev_account_key = local::load_previous_account_key(&home, &device_key);
    let mut acct = Unlocked::new(
        home,
        config,
        store,
        device_key,
        Arc::new(identity),
        (account_key, account_key_version),
        seen,
    );
    acct.sync = sync;
    acct.prev_account_key = prev_account_key;
    acct.service = service;
    acct.keyring = Mutex::new(keyring);
    let mut anchored = None;
    if acct.config.account_id.is_none() {
        migrate::run(&mut acct, reanchor)?;
    } else {
        if reanchor {
            anchored = acct.reanchor()?;
        }
        acct.refresh_manifest()?;
    }
    Ok((acct, anchored))
}
