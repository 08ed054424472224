//! The web front's queries (schema V2): registrations, web sessions and the record of the
//! newest manifest and heads the front has verified. Written once for both backends, like
//! `tx.rs`.

use super::{DbError, Tx, Value};

/// `web_seen.what` of the manifest (category ids, remote flag included, stay below it).
pub(crate) const WEB_MANIFEST: u32 = u32::MAX;

/// A `web_seen` row: counter, hash and (for the manifest) the object.
pub(crate) type SeenRow = (u64, Vec<u8>, Option<Vec<u8>>);

/// A web session as stored (times in Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebSessionRow {
    pub id: String,
    pub account: String,
    pub csrf: String,
    pub created_ms: i64,
    pub last_ms: i64,
    pub source: String,
    pub agent: String,
}

fn damaged(what: &str) -> DbError {
    DbError::Damaged {
        what: what.to_string(),
        why: "wrong number of columns".into(),
    }
}

fn session_row(row: Vec<Value>) -> Result<WebSessionRow, DbError> {
    let [id, account, csrf, created, last, source, agent]: [Value; 7] =
        row.try_into().map_err(|_| damaged("a web session"))?;
    Ok(WebSessionRow {
        id: id.text("web session id")?,
        account: account.text("web session account")?,
        csrf: csrf.text("web session csrf")?,
        created_ms: created.int("web session start")?,
        last_ms: last.int("web session last use")?,
        source: source.text("web session source")?,
        agent: agent.text("web session agent")?,
    })
}

const SESSION_COLS: &str = "id, account, csrf, created_ms, last_ms, source, agent";

impl Tx<'_> {
    // --- registrations ---

    /// The registration document of `account` (JSON), if web access is on.
    pub(crate) fn web_account(&mut self, account: &str) -> Result<Option<String>, DbError> {
        let rows = self.rows(
            "SELECT doc FROM web_accounts WHERE account = $1",
            &[account.into()],
        )?;
        rows.into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .map(|v| v.text("web registration"))
            .transpose()
    }

    pub(crate) fn put_web_account(&mut self, account: &str, doc: &str) -> Result<(), DbError> {
        self.exec(
            "INSERT INTO web_accounts (account, doc) VALUES ($1, $2) \
             ON CONFLICT (account) DO UPDATE SET doc = excluded.doc",
            &[account.into(), doc.into()],
        )?;
        Ok(())
    }

    pub(crate) fn delete_web_account(&mut self, account: &str) -> Result<bool, DbError> {
        let n = self.exec(
            "DELETE FROM web_accounts WHERE account = $1",
            &[account.into()],
        )?;
        Ok(n > 0)
    }

    // --- sessions ---

    pub(crate) fn put_web_session(
        &mut self,
        hash: &[u8],
        s: &WebSessionRow,
    ) -> Result<(), DbError> {
        self.exec(
            "INSERT INTO web_sessions (hash, id, account, csrf, created_ms, last_ms, source, \
             agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                hash.into(),
                s.id.as_str().into(),
                s.account.as_str().into(),
                s.csrf.as_str().into(),
                s.created_ms.into(),
                s.last_ms.into(),
                s.source.as_str().into(),
                s.agent.as_str().into(),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn web_session(&mut self, hash: &[u8]) -> Result<Option<WebSessionRow>, DbError> {
        let rows = self.rows(
            &format!("SELECT {SESSION_COLS} FROM web_sessions WHERE hash = $1"),
            &[hash.into()],
        )?;
        rows.into_iter().next().map(session_row).transpose()
    }

    pub(crate) fn touch_web_session(&mut self, hash: &[u8], now: i64) -> Result<(), DbError> {
        self.exec(
            "UPDATE web_sessions SET last_ms = $1 WHERE hash = $2 AND last_ms < $1",
            &[now.into(), hash.into()],
        )?;
        Ok(())
    }

    pub(crate) fn web_sessions(&mut self, account: &str) -> Result<Vec<WebSessionRow>, DbError> {
        let rows = self.rows(
            &format!(
                "SELECT {SESSION_COLS} FROM web_sessions WHERE account = $1 ORDER BY created_ms"
            ),
            &[account.into()],
        )?;
        rows.into_iter().map(session_row).collect()
    }

    pub(crate) fn delete_web_session(&mut self, hash: &[u8]) -> Result<bool, DbError> {
        let n = self.exec("DELETE FROM web_sessions WHERE hash = $1", &[hash.into()])?;
        Ok(n > 0)
    }

    /// Ends one session of `account` by its public id (`None`: all of them).
    pub(crate) fn delete_web_sessions(
        &mut self,
        account: &str,
        id: Option<&str>,
    ) -> Result<u64, DbError> {
        match id {
            Some(id) => self.exec(
                "DELETE FROM web_sessions WHERE account = $1 AND id = $2",
                &[account.into(), id.into()],
            ),
            None => self.exec(
                "DELETE FROM web_sessions WHERE account = $1",
                &[account.into()],
            ),
        }
    }

    /// Drops sessions idle since before `idle_before` or started before `started_before`.
    pub(crate) fn prune_web_sessions(
        &mut self,
        idle_before: i64,
        started_before: i64,
    ) -> Result<(), DbError> {
        self.exec(
            "DELETE FROM web_sessions WHERE last_ms < $1 OR created_ms < $2",
            &[idle_before.into(), started_before.into()],
        )?;
        Ok(())
    }

    // --- what the web front has seen ---

    /// The highest (counter, hash, object) recorded for `what` of `account`.
    pub(crate) fn web_seen(
        &mut self,
        account: &str,
        what: u32,
    ) -> Result<Option<SeenRow>, DbError> {
        let rows = self.rows(
            "SELECT counter, hash, obj FROM web_seen WHERE account = $1 AND what = $2",
            &[account.into(), i64::from(what).into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let [counter, hash, obj]: [Value; 3] =
            row.try_into().map_err(|_| damaged("a web seen record"))?;
        let counter =
            u64::try_from(counter.int("web seen counter")?).map_err(|_| DbError::Damaged {
                what: "a web seen record".into(),
                why: "negative counter".into(),
            })?;
        let obj = match obj {
            Value::Null => None,
            v => Some(v.blob("web seen object")?),
        };
        Ok(Some((counter, hash.blob("web seen hash")?, obj)))
    }

    /// Records (counter, hash, object) for `what` unless a higher counter is recorded
    /// already: the record only ever rises.
    pub(crate) fn raise_web_seen(
        &mut self,
        account: &str,
        what: u32,
        counter: u64,
        hash: &[u8],
        obj: Option<&[u8]>,
    ) -> Result<(), DbError> {
        let counter = i64::try_from(counter).map_err(|_| DbError::Damaged {
            what: "a web seen record".into(),
            why: "counter past 2^63".into(),
        })?;
        self.exec(
            "INSERT INTO web_seen (account, what, counter, hash, obj) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account, what) DO UPDATE SET counter = excluded.counter, \
             hash = excluded.hash, obj = excluded.obj WHERE web_seen.counter < excluded.counter",
            &[
                account.into(),
                i64::from(what).into(),
                counter.into(),
                hash.into(),
                obj.map_or(Value::Null, Value::from),
            ],
        )?;
        Ok(())
    }
}
