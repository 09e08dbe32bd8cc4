-- birdbalance schema v12 (PostgreSQL): transfers between two ledgers.
-- The same version on SQLite is sqlite/0012_transfers.sql.

-- One row per transfer: it moved amount_minor from one ledger to another of the same
-- asset and mode, as two entries of kind 'transfer' written in one transaction (the
-- source's negative, the destination's positive). Never edited: a transfer back
-- reverses it. `verify` proves that the two legs of every transfer sum to zero.
CREATE TABLE transfers (
    id           TEXT PRIMARY KEY,
    from_account TEXT NOT NULL REFERENCES accounts (id),
    to_account   TEXT NOT NULL REFERENCES accounts (id),
    mode         TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    amount_minor BIGINT NOT NULL CHECK (amount_minor > 0),
    from_entry   TEXT NOT NULL UNIQUE REFERENCES entries (id),
    to_entry     TEXT NOT NULL UNIQUE REFERENCES entries (id),
    reference    TEXT,
    metadata     JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    CHECK (from_account <> to_account)
);
CREATE INDEX transfers_from ON transfers (from_account, id);
CREATE INDEX transfers_to ON transfers (to_account, id);
CREATE TRIGGER transfers_no_update BEFORE UPDATE OR DELETE ON transfers
FOR EACH ROW EXECUTE FUNCTION birdbalance_append_only();
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
FOR EACH STATEMENT EXECUTE FUNCTION birdbalance_append_only();

-- The new entry kind and idempotency resource. NOT VALID then VALIDATE: the check of
-- existing rows takes no lock that stops writes.
ALTER TABLE entries DROP CONSTRAINT entries_kind_check;
ALTER TABLE entries ADD CONSTRAINT entries_kind_check
    CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment', 'transfer')) NOT VALID;
ALTER TABLE entries VALIDATE CONSTRAINT entries_kind_check;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_resource_type_check;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_resource_type_check
    CHECK (resource_type IN ('account', 'key', 'entry', 'hold', 'transfer')) NOT VALID;
ALTER TABLE idempotency_keys VALIDATE CONSTRAINT idempotency_keys_resource_type_check;
