//! A transaction and every query the service makes, once for both backends: accounts and
//! their documents, records, escrow, invitations, sessions and failure counts.

use super::{Conn, DbError, Value};
use crate::keyservice::server::state::{ACCOUNT_FORMAT, Account, Escrow, Invite};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A transaction: its changes are kept by [`Tx::commit`], dropped if it is dropped, and
/// never kept once one of its statements failed (SQLite would otherwise commit the
/// statements around the failed one: half a password change).
pub(crate) struct Tx<'a> {
    conn: Box<dyn Conn + 'a>,
    done: bool,
    failed: bool,
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.rollback();
        }
    }
}

/// A login session as stored (times in Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub account: String,
    pub expires_ms: i64,
    pub recent_until_ms: Option<i64>,
}

fn to_json<T: Serialize>(what: &str, v: &T) -> Result<String, DbError> {
    serde_json::to_string(v).map_err(|e| DbError::Damaged {
        what: what.to_string(),
        why: e.to_string(),
    })
}

fn from_json<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, DbError> {
    serde_json::from_str(s).map_err(|e| DbError::Damaged {
        what: what.to_string(),
        why: e.to_string(),
    })
}

/// The first column of the first row, if any.
fn first(rows: Vec<Vec<Value>>) -> Option<Value> {
    rows.into_iter().next().and_then(|r| r.into_iter().next())
}

impl<'a> Tx<'a> {
    pub(crate) fn new(conn: Box<dyn Conn + 'a>) -> Self {
        Tx {
            conn,
            done: false,
            failed: false,
        }
    }

    /// Keeps the transaction's changes, unless a statement of it failed: then it rolls
    /// back and says so.
    pub(crate) fn commit(mut self) -> Result<(), DbError> {
        if self.failed {
            return Err(DbError::Aborted);
        }
        self.done = true;
        self.conn.commit()
    }

    pub(crate) fn exec(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let r = self.conn.exec(sql, params);
        self.failed |= r.is_err();
        r
    }

    pub(crate) fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
        let r = self.conn.rows(sql, params);
        self.failed |= r.is_err();
        r
    }

    fn doc<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, DbError> {
        match first(self.rows(sql, &[key.into()])?) {
            None => Ok(None),
            Some(v) => {
                let text = v.text(what)?;
                from_json(what, &text).map(Some)
            }
        }
    }

    // --- meta ---

    pub(crate) fn meta(&mut self, key: &str) -> Result<Option<String>, DbError> {
        first(self.rows("SELECT value FROM meta WHERE key = $1", &[key.into()])?)
            .map(|v| v.text("meta"))
            .transpose()
    }

    /// Sets `key` unless it is set; true when this call set it.
    pub(crate) fn meta_insert(&mut self, key: &str, value: &str) -> Result<bool, DbError> {
        let n = self.exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[key.into(), value.into()],
        )?;
        Ok(n == 1)
    }

    // --- accounts ---

    pub(crate) fn account(&mut self, name: &str) -> Result<Option<Account>, DbError> {
        match first(self.rows("SELECT doc FROM accounts WHERE name = $1", &[name.into()])?) {
            None => Ok(None),
            Some(v) => self.check_account(name, &v.text("account")?).map(Some),
        }
    }

    /// Decodes the document of account `name` and checks it is one, of that name.
    fn check_account(&self, name: &str, doc: &str) -> Result<Account, DbError> {
        let what = format!("account {name}");
        let a: Account = from_json(&what, doc)?;
        if a.format != ACCOUNT_FORMAT || a.name != name {
            return Err(DbError::Damaged {
                what,
                why: format!("format {} / name {:?} unexpected", a.format, a.name),
            });
        }
        Ok(a)
    }

    pub(crate) fn put_account(&mut self, a: &Account) -> Result<(), DbError> {
        let doc = to_json(&format!("account {}", a.name), a)?;
        self.exec(
            "INSERT INTO accounts (name, doc) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
            &[a.name.as_str().into(), doc.into()],
        )?;
        Ok(())
    }

    // --- records ---

    pub(crate) fn record(&mut self, account: &str, name: &str) -> Result<Option<Vec<u8>>, DbError> {
        first(self.rows(
            "SELECT sealed FROM records WHERE account = $1 AND name = $2",
            &[account.into(), name.into()],
        )?)
        .map(|v| v.blob("record"))
        .transpose()
    }

    pub(crate) fn put_record(
        &mut self,
        account: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<(), DbError> {
        self.exec(
            "INSERT INTO records (account, name, sealed) VALUES ($1, $2, $3) \
             ON CONFLICT (account, name) DO UPDATE SET sealed = excluded.sealed",
            &[account.into(), name.into(), sealed.into()],
        )?;
        Ok(())
    }

    /// False when there was no such record.
    pub(crate) fn delete_record(&mut self, account: &str, name: &str) -> Result<bool, DbError> {
        let n = self.exec(
            "DELETE FROM records WHERE account = $1 AND name = $2",
            &[account.into(), name.into()],
        )?;
        Ok(n > 0)
    }

    /// Record names of `account`, sorted (by byte value, as both backends sort them here).
    pub(crate) fn record_names(&mut self, account: &str) -> Result<Vec<String>, DbError> {
        let mut names = self
            .rows(
                "SELECT name FROM records WHERE account = $1",
                &[account.into()],
            )?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .map(|v| v.text("record name"))
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here, not by ORDER BY: PostgreSQL sorts text by its collation.
        names.sort();
        Ok(names)
    }

    // --- escrow and invitations ---

    pub(crate) fn escrow(&mut self, account: &str) -> Result<Option<Escrow>, DbError> {
        self.doc(
            "SELECT doc FROM escrow WHERE account = $1",
            account,
            &format!("escrow of {account}"),
        )
    }

    pub(crate) fn put_escrow(&mut self, account: &str, e: &Escrow) -> Result<(), DbError> {
        let doc = to_json("escrow", e)?;
        self.exec(
            "INSERT INTO escrow (account, doc) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET doc = excluded.doc",
            &[account.into(), doc.into()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_escrow(&mut self, account: &str) -> Result<bool, DbError> {
        let n = self.exec("DELETE FROM escrow WHERE account = $1", &[account.into()])?;
        Ok(n > 0)
    }

    pub(crate) fn invite(&mut self, account: &str) -> Result<Option<Invite>, DbError> {
        self.doc(
            "SELECT doc FROM invites WHERE account = $1",
            account,
            &format!("invitation for {account}"),
        )
    }

    pub(crate) fn put_invite(&mut self, account: &str, i: &Invite) -> Result<(), DbError> {
        let doc = to_json("invitation", i)?;
        self.exec(
            "INSERT INTO invites (account, doc) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET doc = excluded.doc",
            &[account.into(), doc.into()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_invite(&mut self, account: &str) -> Result<bool, DbError> {
        let n = self.exec("DELETE FROM invites WHERE account = $1", &[account.into()])?;
        Ok(n > 0)
    }

    // --- sessions ---

    pub(crate) fn put_session(&mut self, hash: &[u8], s: &SessionRow) -> Result<(), DbError> {
        self.exec(
            "INSERT INTO sessions (hash, account, expires_ms, recent_until_ms) \
             VALUES ($1, $2, $3, $4)",
            &[
                hash.into(),
                s.account.as_str().into(),
                s.expires_ms.into(),
                s.recent_until_ms.into(),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn session(&mut self, hash: &[u8]) -> Result<Option<SessionRow>, DbError> {
        let rows = self.rows(
            "SELECT account, expires_ms, recent_until_ms FROM sessions WHERE hash = $1",
            &[hash.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let [account, expires, recent]: [Value; 3] =
            row.try_into().map_err(|_| DbError::Damaged {
                what: "a session".into(),
                why: "wrong number of columns".into(),
            })?;
        Ok(Some(SessionRow {
            account: account.text("session account")?,
            expires_ms: expires.int("session expiry")?,
            recent_until_ms: recent.opt_int("session recency")?,
        }))
    }

    /// A session and its account's document, read by one statement (so they are of one
    /// moment): the key-fetch path. `None` when there is no such session; the account
    /// `None` when it has no document.
    pub(crate) fn session_with_account(
        &mut self,
        hash: &[u8],
    ) -> Result<Option<(SessionRow, Option<Account>)>, DbError> {
        let rows = self.rows(
            "SELECT s.account, s.expires_ms, s.recent_until_ms, a.doc FROM sessions s \
             LEFT JOIN accounts a ON a.name = s.account WHERE s.hash = $1",
            &[hash.into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let [account, expires, recent, doc]: [Value; 4] =
            row.try_into().map_err(|_| DbError::Damaged {
                what: "a session".into(),
                why: "wrong number of columns".into(),
            })?;
        let s = SessionRow {
            account: account.text("session account")?,
            expires_ms: expires.int("session expiry")?,
            recent_until_ms: recent.opt_int("session recency")?,
        };
        let a = match doc {
            Value::Null => None,
            v => Some(self.check_account(&s.account, &v.text("account")?)?),
        };
        Ok(Some((s, a)))
    }

    /// Makes a live session recent until `until`; false when it is gone or expired.
    pub(crate) fn session_recent(
        &mut self,
        hash: &[u8],
        until: i64,
        now: i64,
    ) -> Result<bool, DbError> {
        let n = self.exec(
            "UPDATE sessions SET recent_until_ms = $1 WHERE hash = $2 AND expires_ms > $3",
            &[until.into(), hash.into(), now.into()],
        )?;
        Ok(n > 0)
    }

    pub(crate) fn delete_session(&mut self, hash: &[u8]) -> Result<(), DbError> {
        self.exec("DELETE FROM sessions WHERE hash = $1", &[hash.into()])?;
        Ok(())
    }

    /// Ends every session of `account`, but the one hashed `keep` if given.
    pub(crate) fn delete_sessions(
        &mut self,
        account: &str,
        keep: Option<&[u8]>,
    ) -> Result<(), DbError> {
        match keep {
            Some(k) => self.exec(
                "DELETE FROM sessions WHERE account = $1 AND hash <> $2",
                &[account.into(), k.into()],
            )?,
            None => self.exec("DELETE FROM sessions WHERE account = $1", &[account.into()])?,
        };
        Ok(())
    }

    /// Forgets sessions that expired before `now`.
    pub(crate) fn prune_sessions(&mut self, now: i64) -> Result<(), DbError> {
        self.exec("DELETE FROM sessions WHERE expires_ms <= $1", &[now.into()])?;
        Ok(())
    }

    // --- failure counts ---

    /// Times of `key`'s failures after `since`, newest first, at most `limit`.
    pub(crate) fn failures(
        &mut self,
        key: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<i64>, DbError> {
        self.rows(
            "SELECT at_ms FROM failures WHERE key = $1 AND at_ms > $2 \
             ORDER BY at_ms DESC LIMIT $3",
            &[key.into(), since.into(), i64::from(limit).into()],
        )?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .map(|v| v.int("failure time"))
        .collect()
    }

    pub(crate) fn add_failure(&mut self, key: &str, at: i64) -> Result<(), DbError> {
        self.exec(
            "INSERT INTO failures (key, at_ms) VALUES ($1, $2)",
            &[key.into(), at.into()],
        )?;
        Ok(())
    }

    pub(crate) fn clear_failures(&mut self, key: &str) -> Result<(), DbError> {
        self.exec("DELETE FROM failures WHERE key = $1", &[key.into()])?;
        Ok(())
    }

    /// Forgets failures at or before `before` (outside every window).
    pub(crate) fn prune_failures(&mut self, before: i64) -> Result<(), DbError> {
        self.exec("DELETE FROM failures WHERE at_ms <= $1", &[before.into()])?;
        Ok(())
    }
}
