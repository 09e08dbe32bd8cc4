-- birdbalance schema v7 (PostgreSQL): keys under a server-side secret, key expiry
-- (rotation), scoped admin tokens and the audit log. The same version on SQLite is
-- sqlite/0007_security.sql. The store moves the existing key digests under the secret
-- in the same transaction (KeyHasher.adopt) and records the secret's check value.

CREATE TABLE server_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A rotated key stays live until expires_at, beside the key that replaces it.
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMPTZ;

CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    token_hash BYTEA NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

-- Every admin action: who (a token's id, `admin-token` or `cli:<user>`), what, on what,
-- from where, and how it ended. Rows are only ever added.
CREATE TABLE audit_log (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    address TEXT,
    status  INTEGER NOT NULL,
    detail  JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
