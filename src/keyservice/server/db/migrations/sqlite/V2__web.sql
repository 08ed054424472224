-- Web access (issue 12; docs/FORMAT.md "Key service database"). No key is stored here
-- in the clear.
-- One row per account that turned web access on: the registration document (JSON: the
-- store, the registering device, the web password's Argon2id verifier).
CREATE TABLE web_accounts (
    account TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
-- Web sessions, by BLAKE3 of the cookie token (the token itself is never stored). `id` is
-- the public name devices list and revoke; `csrf` the form token of the session.
CREATE TABLE web_sessions (
    hash BLOB PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    account TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    agent TEXT NOT NULL
);
CREATE INDEX web_sessions_by_account ON web_sessions (account);
-- The newest manifest (what = 4294967295, with its object) and the highest head of each
-- category (what = category id; remote heads with bit 31 set) the web front has verified:
-- only ever raised, so the store cannot roll the server back either.
CREATE TABLE web_seen (
    account TEXT NOT NULL,
    what BIGINT NOT NULL,
    counter BIGINT NOT NULL,
    hash BLOB NOT NULL,
    obj BLOB,
    PRIMARY KEY (account, what)
);
-- Web sign-ins under Advanced Data Protection, by web session id: the X25519 public key
-- the server made for the session (its secret stays in the memory of the server that
-- made it), the sign-in code's MAC over it, and when and by which device it was
-- approved (NULL while it waits).
CREATE TABLE web_approvals (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    public_key BLOB NOT NULL,
    mac BLOB NOT NULL,
    approved_ms BIGINT,
    approver TEXT
);
-- Category keys a trusted device released to a web session, sealed to its X25519 key
-- (docs/FORMAT.md §9e): useless without the session's secret; dropped at expires_ms.
CREATE TABLE web_releases (
    id TEXT NOT NULL,
    account TEXT NOT NULL,
    category BIGINT NOT NULL,
    version BIGINT NOT NULL,
    sealed BLOB NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (id, category, version)
);
