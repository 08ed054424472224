//! The web front's queries (schema V2): registrations, web sessions, their approvals and
//! released keys (ADP), and the record of the newest manifest and heads the front has
//! verified. Written once for both backends, like
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

/// A web sign-in's approval record (ADP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebApprovalRow {
    pub id: String,
    pub account: String,
    pub public_key: Vec<u8>,
    pub mac: Vec<u8>,
    /// Unix ms of the approval; `None` while it waits.
    pub approved_ms: Option<i64>,
    pub approver: Option<String>,
}

/// A key released to a web session, sealed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebReleaseRow {
    pub category: u32,
    pub version: u32,
    pub sealed: Vec<u8>,
    pub expires_ms: i64,
}

fn approval_row(row: Vec<Value>) -> Result<WebApprovalRow, DbError> {
    let [id, account, public_key, mac, approved, approver]: [Value; 6] =
        row.try_into().map_err(|_| damaged("a web approval"))?;
    Ok(WebApprovalRow {
        id: id.text("web approval id")?,
        account: account.text("web approval account")?,
        public_key: public_key.blob("web approval key")?,
        mac: mac.blob("web approval mac")?,
        approved_ms: match approved {
            Value::Null => None,
            v => Some(v.int("web approval time")?),
        },
        approver: match approver {
            Value::Null => None,
            v => Some(v.text("web approver")?),
        },
    })
}

fn small(v: Value, what: &str) -> Result<u32, DbError> {
    u32::try_from(v.int(what)?).map_err(|_| DbError::Damaged {
        what: what.to_string(),
        why: "out of range".into(),
    })
}

const APPROVAL_COLS: &str = "id, account, public_key, mac, approved_ms, approver";

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
        self.drop_orphan_approvals()?;
        Ok(n > 0)
    }

    /// Approvals and released keys of sessions that no longer exist go with them.
    fn drop_orphan_approvals(&mut self) -> Result<(), DbError> {
        for table in ["web_approvals", "web_releases"] {
            self.exec(
                &format!("DELETE FROM {table} WHERE id NOT IN (SELECT id FROM web_sessions)"),
                &[],
            )?;
        }
        Ok(())
    }

    /// Ends one session of `account` by its public id (`None`: all of them).
    pub(crate) fn delete_web_sessions(
        &mut self,
        account: &str,
        id: Option<&str>,
    ) -> Result<u64, DbError> {
        let n = match id {
            Some(id) => self.exec(
                "DELETE FROM web_sessions WHERE account = $1 AND id = $2",
                &[account.into(), id.into()],
            )?,
            None => self.exec(
                "DELETE FROM web_sessions WHERE account = $1",
                &[account.into()],
            )?,
        };
        self.drop_orphan_approvals()?;
        Ok(n)
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
        self.drop_orphan_approvals()
    }

    /// The ids of every live web session (any account): the front drops the in-memory
    /// secrets of the others.
    pub(crate) fn web_session_ids(&mut self) -> Result<Vec<String>, DbError> {
        self.rows("SELECT id FROM web_sessions", &[])?
            .into_iter()
            .filter_map(|r| r.into_iter().next())
            .map(|v| v.text("web session id"))
            .collect()
    }

    // --- approvals and released keys (ADP) ---

    pub(crate) fn put_web_approval(&mut self, a: &WebApprovalRow) -> Result<(), DbError> {
        self.exec(
            &format!("INSERT INTO web_approvals ({APPROVAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[
                a.id.as_str().into(),
                a.account.as_str().into(),
                a.public_key.as_slice().into(),
                a.mac.as_slice().into(),
                a.approved_ms.map_or(Value::Null, Value::from),
                a.approver.as_deref().map_or(Value::Null, Value::from),
            ],
        )?;
        Ok(())
    }

    pub(crate) fn web_approval(&mut self, id: &str) -> Result<Option<WebApprovalRow>, DbError> {
        let rows = self.rows(
            &format!("SELECT {APPROVAL_COLS} FROM web_approvals WHERE id = $1"),
            &[id.into()],
        )?;
        rows.into_iter().next().map(approval_row).transpose()
    }

    pub(crate) fn web_approvals(&mut self, account: &str) -> Result<Vec<WebApprovalRow>, DbError> {
        let rows = self.rows(
            &format!("SELECT {APPROVAL_COLS} FROM web_approvals WHERE account = $1"),
            &[account.into()],
        )?;
        rows.into_iter().map(approval_row).collect()
    }

    /// Marks a sign-in approved (the first approval stays: a later call only adds keys).
    pub(crate) fn approve_web_session(
        &mut self,
        id: &str,
        at_ms: i64,
        approver: &str,
    ) -> Result<(), DbError> {
        self.exec(
            "UPDATE web_approvals SET approved_ms = $1, approver = $2 \
             WHERE id = $3 AND approved_ms IS NULL",
            &[at_ms.into(), approver.into(), id.into()],
        )?;
        Ok(())
    }

    pub(crate) fn put_web_release(
        &mut self,
        id: &str,
        account: &str,
        r: &WebReleaseRow,
    ) -> Result<(), DbError> {
        self.exec(
            "INSERT INTO web_releases (id, account, category, version, sealed, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id, category, version) DO UPDATE \
             SET sealed = excluded.sealed, expires_ms = excluded.expires_ms",
            &[
                id.into(),
                account.into(),
                i64::from(r.category).into(),
                i64::from(r.version).into(),
                r.sealed.as_slice().into(),
                r.expires_ms.into(),
            ],
        )?;
        Ok(())
    }

    /// The keys released to session `id` that have not expired at `now`.
    pub(crate) fn web_releases(
        &mut self,
        id: &str,
        now: i64,
    ) -> Result<Vec<WebReleaseRow>, DbError> {
        let rows = self.rows(
            "SELECT category, version, sealed, expires_ms FROM web_releases \
             WHERE id = $1 AND expires_ms > $2",
            &[id.into(), now.into()],
        )?;
        rows.into_iter()
            .map(|row| {
                let [c, v, sealed, exp]: [Value; 4] =
                    row.try_into().map_err(|_| damaged("a web release"))?;
                Ok(WebReleaseRow {
                    category: small(c, "web release category")?,
                    version: small(v, "web release version")?,
                    sealed: sealed.blob("web release")?,
                    expires_ms: exp.int("web release expiry")?,
                })
            })
            .collect()
    }

    /// Drops released keys that expired before `now`.
    pub(crate) fn prune_web_releases(&mut self, now: i64) -> Result<(), DbError> {
        self.exec(
            "DELETE FROM web_releases WHERE expires_ms <= $1",
            &[now.into()],
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
