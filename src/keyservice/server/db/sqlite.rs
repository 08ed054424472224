//! The SQLite backend: one file in DATA, WAL mode (readers never wait for the writer),
//! connections pooled by r2d2. One server process uses it (`cirrus serve` takes a lock on
//! DATA): within it, the service's per-account lock serialises an account's requests, and
//! a transaction becomes a write transaction (`BEGIN IMMEDIATE`) at its first write, so
//! the Argon2 work before it never holds the database's single writer lock.

use super::{Conn, Database, DbError, Tx, Value, migrate};
use r2d2::{ManageConnection, Pool, PooledConnection};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connections kept: readers in parallel with the one writer.
const POOL_SIZE: u32 = 8;
/// How long a writer waits for another one (another process, e.g. `cirrus serve account
/// create`) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

struct Manager {
    path: PathBuf,
}

fn configure(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    // FULL: a commit is durable once it returns (a login's TOTP step, a failure count).
    c.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

impl ManageConnection for Manager {
    type Connection = rusqlite::Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let c = rusqlite::Connection::open(&self.path)?;
        configure(&c)?;
        Ok(c)
    }

    fn is_valid(&self, c: &mut Self::Connection) -> Result<(), Self::Error> {
        c.execute_batch("")
    }

    fn has_broken(&self, _: &mut Self::Connection) -> bool {
        false
    }
}

pub(crate) struct SqliteDb {
    path: PathBuf,
    pool: Pool<Manager>,
}

impl SqliteDb {
    pub(crate) fn open(path: &Path) -> Result<Self, DbError> {
        precreate_private(path);
        let mut c = rusqlite::Connection::open(path)?;
        configure(&c)?;
        // WAL is a property of the file: set once, kept by every later connection.
        let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            log::warn!("{}: journal mode is {mode}, not WAL", path.display());
        }
        migrate::sqlite(&mut c)?;
        drop(c);
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            // A local file: a connection does not go stale, so no test query per checkout.
            .test_on_check_out(false)
            // Past it a request answers 503 (a database down or saturated), well within
            // the request timeout.
            .connection_timeout(super::CONNECT_TIMEOUT)
            .min_idle(Some(1))
            .build(Manager {
                path: path.to_path_buf(),
            })?;
        Ok(SqliteDb {
            path: path.to_path_buf(),
            pool,
        })
    }
}

/// Creates the database file readable by its owner only, before SQLite creates it with
/// the umask's mode (DATA is 0700 anyway; this also covers a copy moved elsewhere).
fn precreate_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

impl Database for SqliteDb {
    fn begin(&self, _lock: Option<&str>) -> Result<Tx<'_>, DbError> {
        // The account lock is the caller's in-process one: one process uses this file.
        Ok(Tx::new(Box::new(SqliteConn {
            conn: self.pool.get()?,
            writing: false,
            read_only: false,
        })))
    }

    fn begin_read(&self) -> Result<Tx<'_>, DbError> {
        Ok(Tx::new(Box::new(SqliteConn {
            conn: self.pool.get()?,
            writing: false,
            read_only: true,
        })))
    }

    fn ping(&self) -> Result<(), DbError> {
        // Pooled connections keep a file that moved (DATA unmounted or renamed) open: the
        // file must still be where new connections will look for it.
        if !self.path.is_file() {
            return Err(DbError::Damaged {
                what: self.path.display().to_string(),
                why: "the database file is no longer there".into(),
            });
        }
        let c = self.pool.get()?;
        c.query_row("SELECT count(*) FROM meta", [], |_| Ok(()))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }
}

struct SqliteConn {
    conn: PooledConnection<Manager>,
    /// Whether `BEGIN IMMEDIATE` has run: the transaction holds the write lock.
    writing: bool,
    /// From `begin_read`: writes refused.
    read_only: bool,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(n) => ValueRef::Integer(*n),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_ref(v: ValueRef<'_>) -> Result<Value, DbError> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Text(t) => {
            Value::Text(String::from_utf8(t.to_vec()).map_err(|_| DbError::Damaged {
                what: "a text column".into(),
                why: "not UTF-8".into(),
            })?)
        }
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        ValueRef::Real(_) => {
            return Err(DbError::Damaged {
                what: "a column".into(),
                why: "a floating-point value where none belongs".into(),
            });
        }
    })
}

impl Conn for SqliteConn {
    fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        if self.read_only {
            return Err(DbError::ReadOnly);
        }
        if !self.writing {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.writing = true;
        }
        let n = self
            .conn
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(from_ref(r.get_ref(i)?)?);
            }
            out.push(row);
        }
        Ok(out)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        if self.writing {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                // Still open after a failed COMMIT: roll back before the pool reuses it.
                self.rollback();
                return Err(e.into());
            }
            self.writing = false;
        }
        Ok(())
    }

    fn rollback(&mut self) {
        if self.writing {
            self.writing = false;
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                log::error!("SQLite rollback failed: {e}");
            }
        }
    }
}
