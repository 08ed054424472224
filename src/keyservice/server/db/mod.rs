//! The key service's storage: one trait, [`Database`], with two implementations, SQLite
//! (the default: one file in DATA, for one server) and PostgreSQL (several replicas on one
//! database). Every request runs in one [`Tx`]; a transaction that names an account holds
//! that account's lock on every replica until it ends, so each rule of the service (a
//! TOTP step used once, at most N escrow tries, failure counts) holds under any
//! interleaving. The database holds only sealed values; the master key is never in it.
//!
//! Both backends run the same SQL (written in the dialect both accept: `$1` parameters in
//! order of first use, `ON CONFLICT` upserts), through the small [`Conn`] seam; they
//! differ in how they connect, lock and migrate.

mod conn;
pub(crate) mod copy;
pub(crate) mod import;
mod migrate;
mod postgres;
mod sqlite;
mod tx;
mod web_tx;

pub(crate) use conn::{Conn, Value};
pub(crate) use tx::{SessionRow, Tx};
pub(crate) use web_tx::{SeenRow, WEB_MANIFEST, WebApprovalRow, WebReleaseRow, WebSessionRow};

use std::path::{Path, PathBuf};

/// How long a request waits for a pooled connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// File name of the SQLite database in DATA.
pub(crate) const SQLITE_FILE: &str = "keyservice.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("schema migration: {0}")]
    Migrate(#[from] refinery::Error),
    #[error(
        "the database's schema is newer than this binary knows (it has migration {found}, \
         this binary knows up to {known}): run the newer cirrus, or restore a backup"
    )]
    NewerSchema { found: String, known: u32 },
    #[error("{what} in the database is damaged: {why}")]
    Damaged { what: String, why: String },
    #[error("a write on a read-only connection")]
    ReadOnly,
    #[error("a statement of the transaction failed, so none of it was kept")]
    Aborted,
    #[error("the destination database is not empty (its table {table} has rows)")]
    NotEmpty { table: String },
    #[error("--database {0}: only postgres://... (or postgresql://...) is supported")]
    Url(String),
}

/// Where the key service keeps its state (`cirrus serve --data` / `--database`).
#[derive(Debug, Clone)]
pub enum DbLocation {
    /// DATA/keyservice.sqlite.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl DbLocation {
    /// `--database URL` when given, else SQLite in DATA.
    pub fn from_args(data: &Path, database: Option<&str>) -> Result<Self, DbError> {
        match database {
            None => Ok(DbLocation::Sqlite(data.join(SQLITE_FILE))),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Ok(DbLocation::Postgres(u.to_string()))
            }
            Some(u) => Err(DbError::Url(redact(u))),
        }
    }
}

/// A connection string without its password (in the authority or as a `password=`
/// parameter), for logs and messages.
pub(crate) fn redact(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "(unparsable connection string)".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k.eq_ignore_ascii_case("password") {
                "***".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// The key service's database, whichever backend.
pub(crate) trait Database: Send + Sync {
    /// Starts a transaction. With `lock = Some(account)`, it first takes that account's
    /// lock, held on every replica until the transaction ends. Without, it only reads
    /// or makes single-statement writes.
    fn begin(&self, lock: Option<&str>) -> Result<Tx<'_>, DbError>;
    /// A connection for reads only, each statement on its own (no `BEGIN`): the cheap
    /// path of the requests that only look (a session lookup, a key fetch), where one
    /// statement reads all it needs. A write through it fails.
    fn begin_read(&self) -> Result<Tx<'_>, DbError>;
    /// Whether the database answers (for `/healthz`).
    fn ping(&self) -> Result<(), DbError>;
    /// What it is, for the log (never a password).
    fn describe(&self) -> String;
}

/// Opens (creating and migrating as needed) the database at `loc`.
pub(crate) fn open(loc: &DbLocation) -> Result<Box<dyn Database>, DbError> {
    Ok(match loc {
        DbLocation::Sqlite(path) => Box::new(sqlite::SqliteDb::open(path)?),
        DbLocation::Postgres(url) => Box::new(postgres::PostgresDb::open(url)?),
    })
}

/// Meta key of the master-key check value (docs/FORMAT.md "Key service database").
pub(crate) const META_MASTER_CHECK: &str = "master-check";
/// Meta key set once a JSON DATA directory has been imported.
pub(crate) const META_JSON_IMPORTED: &str = "json-imported";

/// Unix milliseconds now (wall clock: replicas compare times written by each other).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_wherever_they_are() {
        for url in [
            "postgres://cirrus:s3cret@db:5432/cirrus",
            "postgres://cirrus@db/cirrus?password=s3cret&sslmode=disable",
            "postgresql://db/cirrus?user=x&PASSWORD=s3cret",
        ] {
            let r = super::redact(url);
            assert!(!r.contains("s3cret"), "{r}");
            assert!(r.contains("db"), "{r}");
        }
        assert_eq!(super::redact("not a url"), "(unparsable connection string)");
    }
}
