//! An account on this device: creating it (`init`), unlocking it with the passcode, and
//! reading or changing its category table and category keys in the store.

use crate::crypto::{self, SecretKey, Suite};
use crate::format::table::{CategoryEntry, CategoryTable, Class, DEFAULT_CATEGORIES};
use crate::format::{Context, ObjKind, names};
use crate::home::{Config, Home, HomeError, SeenHeads};
use crate::keys::{self, KdfParams, KeyError, Passcode};
use crate::server::{EmbeddedKeyService, ServiceError};
use crate::store::{self, Store, StoreError};
use crate::volume::CategorySetup;
use std::path::PathBuf;
use std::sync::Arc;

mod rotate;
pub use rotate::{DEFAULT_BATCH, RotateError, RotateOptions, RotateReport};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Home(#[from] HomeError),
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
    #[error("unknown category {0:?} (see `cirrus category list`)")]
    UnknownCategory(String),
    #[error("category {0:?} already exists")]
    CategoryExists(String),
    #[error("invalid category name {0:?}: {1}")]
    BadCategoryName(String, &'static str),
    #[error("randomness: {0}")]
    Random(#[from] crypto::CryptoError),
}

pub struct InitOptions {
    pub store_url: Option<String>,
    pub kdf: KdfParams,
    pub device_name: String,
}

/// An unlocked account: what a mount, fsck or admin command needs.
pub struct Unlocked {
    pub home: Home,
    pub config: Config,
    pub store: Arc<dyn Store>,
    account_key: SecretKey,
    service: EmbeddedKeyService,
    pub seen: Arc<SeenHeads>,
    pub table: CategoryTable,
}

/// The store URL recorded in the config. The default is `embedded`: the local store
/// inside the home, named relative to it so a home can be moved or restored elsewhere.
pub const EMBEDDED_STORE: &str = "embedded";

fn open_store(home: &Home, url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url == EMBEDDED_STORE {
        Ok(Arc::new(store::LocalStore::open(home.default_store_dir())?))
    } else {
        store::open_url(url)
    }
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
    match store.get(names::CATEGORY_TABLE) {
        Ok(_) => return Err(AccountError::StoreInUse(url)),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let device_secret = crypto::random_key()?;
    home.write_secret_file(&home.device_secret_path(), &device_secret)?;
    let mut salt = [0u8; 16];
    crypto::random_bytes(&mut salt)?;
    let device_key = keys::device_key(passcode, &salt, opts.kdf, &device_secret)?;
    let account_key = crypto::random_key()?;
    let wrapped = keys::wrap(
        &device_key,
        Context::new(ObjKind::AccountKey, 0, 0, 0),
        &account_key,
    )?;
    crate::home::write_atomic(&home.account_key_path(), &wrapped)?;
    let service = EmbeddedKeyService::create(&home.keyservice_dir())?;
    let seen = Arc::new(SeenHeads::load(
        home.seen_path(),
        keys::device_state_key(&account_key),
        false,
    )?);
    let config = Config {
        version: 1,
        store: url,
        device_name: opts.device_name,
        kdf_salt: hex::encode(salt),
        kdf: opts.kdf,
    };
    let mut acct = Unlocked {
        home: Home::new(home.root.clone()),
        config,
        store,
        account_key,
        service,
        seen,
        table: CategoryTable {
            counter: 0,
            next_id: 1,
            entries: Vec::new(),
        },
    };
    for (name, class) in DEFAULT_CATEGORIES {
        acct.add_entry(name, *class)?;
    }
    acct.publish_table()?;
    // The config goes last: its presence is what marks the account as complete.
    home.save_config(&acct.config)?;
    Ok(())
}

/// Unlocks the account in `home` with the passcode.
pub fn unlock(home: Home, passcode: &Passcode) -> Result<Unlocked, AccountError> {
    let config = home.load_config()?;
    let device_secret = home.read_secret_file(&home.device_secret_path())?;
    let salt = hex::decode(&config.kdf_salt).map_err(|_| HomeError::BadConfig {
        path: home.config_path(),
        why: "kdf_salt is not hex".into(),
    })?;
    let device_key = keys::device_key(passcode, &salt, config.kdf, &device_secret)?;
    let wrapped = std::fs::read(home.account_key_path()).map_err(|source| HomeError::Io {
        path: home.account_key_path(),
        source,
    })?;
    let account_key = keys::unwrap(
        &device_key,
        Context::new(ObjKind::AccountKey, 0, 0, 0),
        &wrapped,
        "account key",
    )
    .map_err(|_| KeyError::WrongPasscode)?;
    let service = EmbeddedKeyService::open(&home.keyservice_dir())?;
    let store = open_store(&home, &config.store)?;
    let seen = Arc::new(SeenHeads::load(
        home.seen_path(),
        keys::device_state_key(&account_key),
        true,
    )?);
    let mut acct = Unlocked {
        home,
        config,
        store,
        account_key,
        service,
        seen,
        table: CategoryTable {
            counter: 0,
            next_id: 1,
            entries: Vec::new(),
        },
    };
    acct.table = acct.load_table()?;
    Ok(acct)
}

fn validate_category_name(name: &str) -> Result<(), AccountError> {
    let bad = |why| Err(AccountError::BadCategoryName(name.to_string(), why));
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return bad("must not be . or .. or contain / or NUL");
    }
    Ok(())
}

impl Unlocked {
    fn table_ctx() -> Context {
        Context::new(ObjKind::CategoryTable, 0, 0, 0)
    }

    fn load_table(&self) -> Result<CategoryTable, AccountError> {
        let obj = self.store.get(names::CATEGORY_TABLE)?;
        let plain = crypto::open(
            &keys::table_key(&self.account_key),
            Suite::MacOnly,
            &Self::table_ctx().to_bytes(),
            &obj,
        )
        .map_err(|e| AccountError::BadTable(format!("authentication failed: {e}")))?;
        let t = CategoryTable::decode(&plain).map_err(|e| AccountError::BadTable(e.to_string()))?;
        let seen = self.seen.table_seen();
        if t.counter < seen {
            return Err(AccountError::BadTable(format!(
                "rollback: the store serves table #{} but this device has seen #{seen}",
                t.counter
            )));
        }
        self.seen
            .record_table(t.counter)
            .map_err(AccountError::BadTable)?;
        Ok(t)
    }

    fn publish_table(&mut self) -> Result<(), AccountError> {
        self.table.counter += 1;
        let sealed = crypto::seal(
            &keys::table_key(&self.account_key),
            Suite::MacOnly,
            &Self::table_ctx().to_bytes(),
            &self.table.encode(),
        )?;
        self.store.put(names::CATEGORY_TABLE, &sealed)?;
        self.seen
            .record_table(self.table.counter)
            .map_err(AccountError::BadTable)?;
        Ok(())
    }

    fn add_entry(&mut self, name: &str, class: Class) -> Result<(), AccountError> {
        validate_category_name(name)?;
        if self.table.find(name).is_some() {
            return Err(AccountError::CategoryExists(name.to_string()));
        }
        let id = self.table.next_id;
        let key = crypto::random_key()?;
        let ctx = keys::category_key_context(id, 1);
        let wrapped = match class {
            Class::E2e => keys::wrap(&self.account_key, ctx, &key)?,
            Class::Standard | Class::Transit => self.service.wrap(ctx, &key)?,
        };
        let mut obj = vec![class as u8];
        obj.extend_from_slice(&wrapped);
        self.store.put(&names::category_key(id, 1), &obj)?;
        self.table.next_id += 1;
        self.table.entries.push(CategoryEntry {
            id,
            name: name.to_string(),
            class,
            retired: false,
            key_version: 1,
        });
        Ok(())
    }

    pub fn add_category(&mut self, name: &str, class: Class) -> Result<(), AccountError> {
        self.add_entry(name, class)?;
        self.publish_table()
    }

    /// Retires a category: it disappears from the drive; its objects stay in the store.
    pub fn remove_category(&mut self, name: &str) -> Result<(), AccountError> {
        let id = self
            .table
            .find(name)
            .ok_or_else(|| AccountError::UnknownCategory(name.to_string()))?
            .id;
        for e in &mut self.table.entries {
            if e.id == id {
                e.retired = true;
            }
        }
        self.publish_table()
    }

    /// Unwraps the key of one category: e2e keys with the account key (device-held),
    /// others through the key service.
    pub fn category_key(&self, e: &CategoryEntry) -> Result<SecretKey, AccountError> {
        let obj = self.store.get(&names::category_key(e.id, e.key_version))?;
        let what = format!("category {}", e.name);
        let (class, wrapped) = obj
            .split_first()
            .ok_or_else(|| KeyError::BadWrappedKey(what.clone()))?;
        if *class != e.class as u8 {
            return Err(KeyError::BadWrappedKey(format!(
                "{what}: key object claims another protection class"
            ))
            .into());
        }
        let ctx = keys::category_key_context(e.id, e.key_version);
        Ok(match e.class {
            Class::E2e => keys::unwrap(&self.account_key, ctx, wrapped, &what)?,
            Class::Standard | Class::Transit => self.service.unwrap(ctx, wrapped, &what)?,
        })
    }

    /// Every category, retired ones too, with its unlocked key (garbage collection must
    /// keep what retired categories still reference).
    pub fn all_category_setups(&self) -> Vec<(CategoryEntry, Result<CategorySetup, String>)> {
        self.setups(self.table.entries.iter())
    }

    /// Every active category with its unlocked key, or why it could not be unlocked.
    pub fn category_setups(&self) -> Vec<(CategoryEntry, Result<CategorySetup, String>)> {
        self.setups(self.table.active())
    }

    fn setups<'a>(
        &self,
        entries: impl Iterator<Item = &'a CategoryEntry>,
    ) -> Vec<(CategoryEntry, Result<CategorySetup, String>)> {
        entries
            .map(|e| {
                let r = self
                    .category_key(e)
                    .map(|key| CategorySetup {
                        entry: e.clone(),
                        key,
                        key_version: e.key_version,
                        old_key: self.old_category_key(e),
                    })
                    .map_err(|err| err.to_string());
                (e.clone(), r)
            })
            .collect()
    }

    pub fn store_dir(&self) -> Option<PathBuf> {
        if self.config.store == EMBEDDED_STORE {
            return Some(self.home.default_store_dir());
        }
        self.config.store.strip_prefix("file://").map(PathBuf::from)
    }
}
