-- birdbalance schema v7 (SQLite): keys under a server-side secret, key expiry (rotation),
-- scoped admin tokens and the audit log. The same version on PostgreSQL is
-- postgresql/0007_security.sql. The store moves the existing key digests under the
-- secret in the same transaction (KeyHasher.adopt) and records the secret's check value.

CREATE TABLE server_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- A rotated key stays live until expires_at, beside the key that replaces it.
ALTER TABLE api_keys ADD COLUMN expires_at TEXT;

CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    token_hash BLOB NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

-- Every admin action: who (a token's id, `admin-token` or `cli:<user>`), what, on what,
-- from where, and how it ended. Rows are only ever added.
CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    address TEXT,
    status  INTEGER NOT NULL,
    detail  TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
