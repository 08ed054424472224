-- The key service's first schema (SQLite). docs/FORMAT.md "Key service database".
-- Every secret column holds a value sealed under the master key, which is never stored
-- here: a copy of this file alone opens nothing.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per account: the account document (JSON, docs/FORMAT.md), sealed fields inside.
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE records (
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE escrow (
    account TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE invites (
    account TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
-- Login sessions, by BLAKE3 of the token (the token itself is never stored).
CREATE TABLE sessions (
    hash BLOB PRIMARY KEY,
    account TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    recent_until_ms BIGINT
);
CREATE INDEX sessions_by_account ON sessions (account);
CREATE INDEX sessions_by_expiry ON sessions (expires_ms);
-- Failed attempts per limiter key (an account's logins, resets, escrow proofs, a
-- remembered-device token), one row each, kept for one window.
CREATE TABLE failures (
    key TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX failures_by_key ON failures (key, at_ms);
CREATE INDEX failures_by_time ON failures (at_ms);
