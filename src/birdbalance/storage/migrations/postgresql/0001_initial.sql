-- birdbalance schema v1 (PostgreSQL); the same version on SQLite is sqlite/0001_initial.sql.
-- Amounts are BIGINT minor units; the scale is stored per account and never changes.

CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,
    name               TEXT,
    payment            TEXT NOT NULL CHECK (payment IN ('prepaid', 'postpaid')),
    asset              TEXT NOT NULL,
    scale              INTEGER NOT NULL CHECK (scale BETWEEN 0 AND 18),
    credit_limit_minor BIGINT CHECK (credit_limit_minor IS NULL OR credit_limit_minor >= 0),
    metadata           JSONB NOT NULL DEFAULT '{}',
    created_at         TIMESTAMPTZ NOT NULL
);

-- One row per ledger (account x mode): the balance and the seq of its last entry.
CREATE TABLE balances (
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    mode          TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    balance_minor BIGINT NOT NULL,
    seq           BIGINT NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (account_id, mode)
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    mode       TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    key_hash   BYTEA NOT NULL UNIQUE,
    hint       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_keys_account ON api_keys (account_id, id);

CREATE TABLE entries (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    mode                TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    seq                 BIGINT NOT NULL CHECK (seq >= 1),
    kind                TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment')),
    amount_minor        BIGINT NOT NULL CHECK (amount_minor <> 0),
    balance_after_minor BIGINT NOT NULL,
    refund_of           TEXT REFERENCES entries (id),
    reference           TEXT,
    metadata            JSONB NOT NULL DEFAULT '{}',
    created_at          TIMESTAMPTZ NOT NULL,
    UNIQUE (account_id, mode, seq)
);
CREATE INDEX entries_refund_of ON entries (refund_of) WHERE refund_of IS NOT NULL;

-- The ledger is append-only: corrections are new entries.
CREATE FUNCTION birdbalance_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER entries_no_update BEFORE UPDATE OR DELETE ON entries
FOR EACH ROW EXECUTE FUNCTION birdbalance_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
FOR EACH STATEMENT EXECUTE FUNCTION birdbalance_append_only();

-- A write's Idempotency-Key, the fingerprint of its request, and what it created.
CREATE TABLE idempotency_keys (
    key           TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    resource_type TEXT NOT NULL CHECK (resource_type IN ('account', 'key', 'entry')),
    resource_id   TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
