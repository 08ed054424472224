//! The PostgreSQL backend, for several `cirrus serve` replicas on one database: a
//! transaction that names an account first takes a transaction-scoped advisory lock on
//! it, so the same account's requests run one at a time across every replica, while
//! other accounts' run in parallel. Connections are pooled by r2d2.

use super::{Conn, Database, DbError, Tx, Value, migrate};
use ::postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use ::postgres::{Client, Config, NoTls};
use r2d2::{ManageConnection, Pool, PooledConnection};
use std::time::Duration;

/// Longest statement, a wait for an account's lock included (then the request fails).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a transaction may sit idle (its replica hung or died): then the database ends
/// it, releasing the account's lock.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(60);
/// Connections kept per replica.
const POOL_SIZE: u32 = 16;
/// Advisory lock key held while a replica applies schema migrations, so two replicas
/// starting at once do not both try ("cirrus-m" in ASCII).
const MIGRATION_LOCK: i64 = 0x6369_7272_7573_2d6d;

struct Manager {
    config: Config,
}

impl ManageConnection for Manager {
    type Connection = Client;
    type Error = ::postgres::Error;

    fn connect(&self) -> Result<Client, Self::Error> {
        self.config.connect(NoTls)
    }

    fn is_valid(&self, c: &mut Client) -> Result<(), Self::Error> {
        c.simple_query("").map(|_| ())
    }

    fn has_broken(&self, c: &mut Client) -> bool {
        c.is_closed()
    }
}

pub(crate) struct PostgresDb {
    described: String,
    pool: Pool<Manager>,
}

impl PostgresDb {
    pub(crate) fn open(url: &str) -> Result<Self, DbError> {
        let mut config: Config = url.parse()?;
        // Bounds on what a slow or vanished peer can hold: a statement (and so a wait for
        // an account's lock) gives up after STATEMENT_TIMEOUT, and a replica that died or
        // hung inside a transaction loses it, and the account lock, after
        // IDLE_IN_TRANSACTION; keepalives find a dead link to the database.
        config
            .options(&format!(
                "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
                STATEMENT_TIMEOUT.as_millis(),
                IDLE_IN_TRANSACTION.as_millis()
            ))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .connect_timeout(super::CONNECT_TIMEOUT);
        let mut c = config.connect(NoTls)?;
        c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
        let migrated = migrate::postgres(&mut c);
        // Released whatever happened (the session ends with `c` anyway).
        let _ = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
        migrated?;
        drop(c);
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            // Past it a request answers 503 (a database down or saturated), well within
            // the request timeout.
            .connection_timeout(super::CONNECT_TIMEOUT)
            .min_idle(Some(1))
            .build(Manager { config })?;
        Ok(PostgresDb {
            described: format!("PostgreSQL {}", super::redact(url)),
            pool,
        })
    }
}

/// The advisory lock key of an account: 64 bits of its name's BLAKE3 hash (a collision
/// only makes two accounts share a lock).
fn lock_key(account: &str) -> i64 {
    let h = blake3::hash(account.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

impl Database for PostgresDb {
    fn begin(&self, lock: Option<&str>) -> Result<Tx<'_>, DbError> {
        let mut conn = self.pool.get()?;
        // READ COMMITTED (PostgreSQL's default, named so a role or database default cannot
        // change it): each statement after the lock sees what the lock's previous holder
        // committed. A snapshot taken before the wait (REPEATABLE READ) would not.
        conn.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        // In a Tx from here on: if taking the lock fails, dropping it rolls back, so the
        // connection goes back to the pool outside any transaction.
        let mut tx = Tx::new(Box::new(PgConn {
            conn,
            open: true,
            read_only: false,
        }));
        if let Some(account) = lock {
            tx.exec(
                "SELECT pg_advisory_xact_lock($1)",
                &[lock_key(account).into()],
            )?;
        }
        Ok(tx)
    }

    fn begin_read(&self) -> Result<Tx<'_>, DbError> {
        Ok(Tx::new(Box::new(PgConn {
            conn: self.pool.get()?,
            open: false,
            read_only: true,
        })))
    }

    fn ping(&self) -> Result<(), DbError> {
        self.pool.get()?.simple_query("SELECT 1")?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.described.clone()
    }
}

struct PgConn {
    conn: PooledConnection<Manager>,
    /// Whether the transaction is still open.
    open: bool,
    /// From `begin_read`: no transaction, writes refused.
    read_only: bool,
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => n.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <i64 as ToSql>::accepts(ty)
            || <String as ToSql>::accepts(ty)
            || <Vec<u8> as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

fn params(p: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

fn column(row: &::postgres::Row, i: usize) -> Result<Value, DbError> {
    let ty = row.columns()[i].type_();
    let v = if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i)?
            .map(|n| Value::Int(n.into()))
    } else if *ty == Type::BYTEA {
        row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
        row.try_get::<_, Option<String>>(i)?.map(Value::Text)
    } else if *ty == Type::VOID {
        None
    } else {
        return Err(DbError::Damaged {
            what: format!("column {}", row.columns()[i].name()),
            why: format!("unexpected type {ty}"),
        });
    };
    Ok(v.unwrap_or(Value::Null))
}

impl Conn for PgConn {
    fn exec(&mut self, sql: &str, p: &[Value]) -> Result<u64, DbError> {
        if self.read_only {
            return Err(DbError::ReadOnly);
        }
        Ok(self.conn.execute(sql, &params(p))?)
    }

    fn rows(&mut self, sql: &str, p: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
        let rows = self.conn.query(sql, &params(p))?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| column(r, i)).collect())
            .collect()
    }

    fn commit(&mut self) -> Result<(), DbError> {
        if self.open {
            self.open = false;
            self.conn.batch_execute("COMMIT")?;
        }
        Ok(())
    }

    fn rollback(&mut self) {
        if self.open {
            self.open = false;
            if let Err(e) = self.conn.batch_execute("ROLLBACK") {
                log::error!("PostgreSQL rollback failed: {e}");
            }
        }
    }
}
