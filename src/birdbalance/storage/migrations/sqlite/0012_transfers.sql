-- birdbalance schema v12 (SQLite): transfers between two ledgers.
-- The same version on PostgreSQL is postgresql/0012_transfers.sql.

-- One row per transfer: it moved amount_minor from one ledger to another of the same
-- asset and mode, as two entries of kind 'transfer' written in one transaction (the
-- source's negative, the destination's positive). Never edited: a transfer back
-- reverses it. `verify` proves that the two legs of every transfer sum to zero.
CREATE TABLE transfers (
    id           TEXT PRIMARY KEY,
    from_account TEXT NOT NULL REFERENCES accounts (id),
    to_account   TEXT NOT NULL REFERENCES accounts (id),
    mode         TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    from_entry   TEXT NOT NULL UNIQUE REFERENCES entries (id),
    to_entry     TEXT NOT NULL UNIQUE REFERENCES entries (id),
    reference    TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    CHECK (from_account <> to_account)
) STRICT;
CREATE INDEX transfers_from ON transfers (from_account, id);
CREATE INDEX transfers_to ON transfers (to_account, id);
CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;
CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END;

-- The entry kind 'transfer' and the idempotency resource 'transfer' are added to their
-- CHECK constraints by the migration's Python step (SQLite cannot alter a CHECK; loosening
-- one in place is the documented procedure, and no table is rebuilt).
