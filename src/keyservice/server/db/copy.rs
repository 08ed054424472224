//! `cirrus serve migrate`: copies every table of one database into another, empty one
//! (SQLite into PostgreSQL), in one transaction on the destination, so replicas can take
//! over a service that ran on one machine without anyone noticing: accounts, records,
//! escrow, invitations, sessions, failure counts, web registrations, web sessions and
//! their approvals and sealed released keys, the web front's record of heads seen, and the master-key check value.

use super::{Database, DbError, Value};

/// Every table, with its columns in the order both schemas agree on.
const TABLES: &[(&str, &[&str])] = &[
    ("meta", &["key", "value"]),
    ("accounts", &["name", "doc"]),
    ("records", &["account", "name", "sealed"]),
    ("escrow", &["account", "doc"]),
    ("invites", &["account", "doc"]),
    (
        "sessions",
        &["hash", "account", "expires_ms", "recent_until_ms"],
    ),
    ("failures", &["key", "at_ms"]),
    ("web_accounts", &["account", "doc"]),
    (
        "web_sessions",
        &[
            "hash",
            "id",
            "account",
            "csrf",
            "created_ms",
            "last_ms",
            "source",
            "agent",
        ],
    ),
    ("web_seen", &["account", "what", "counter", "hash", "obj"]),
    (
        "web_approvals",
        &[
            "id",
            "account",
            "public_key",
            "mac",
            "approved_ms",
            "approver",
        ],
    ),
    (
        "web_releases",
        &[
            "id",
            "account",
            "category",
            "version",
            "sealed",
            "expires_ms",
        ],
    ),
];

/// Copies `src` into `dst`; the rows copied per table. Refuses a destination that holds
/// any account or a master-key check value (never merges two services).
pub(crate) fn copy_all(
    src: &dyn Database,
    dst: &dyn Database,
) -> Result<Vec<(&'static str, usize)>, DbError> {
    let mut to = dst.begin(None)?;
    for table in ["accounts", "meta"] {
        if !to
            .rows(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?
            .is_empty()
        {
            return Err(DbError::NotEmpty {
                table: table.to_string(),
            });
        }
    }
    let mut from = src.begin(None)?;
    let mut counts = Vec::new();
    for (table, cols) in TABLES {
        let list = cols.join(", ");
        let rows: Vec<Vec<Value>> = from.rows(&format!("SELECT {list} FROM {table}"), &[])?;
        let marks = (1..=cols.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
        for r in &rows {
            to.exec(&insert, r)?;
        }
        log::info!("copied {} rows of {table}", rows.len());
        counts.push((*table, rows.len()));
    }
    drop(from);
    to.commit()?;
    Ok(counts)
}
