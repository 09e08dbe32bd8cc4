-- birdbalance schema v2 (SQLite): holds, monotonic entry times, point-in-time lookups.
-- Keeps every row of v1; the same version on PostgreSQL is postgresql/0002_holds.sql.

-- Holds reserve an amount until they are captured (a charge entry), voided or expire.
CREATE TABLE holds (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    mode           TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    captured_minor INTEGER NOT NULL DEFAULT 0
                   CHECK (captured_minor >= 0 AND captured_minor <= amount_minor),
    expires_at     TEXT NOT NULL,
    reference      TEXT,
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL,
    resolved_at    TEXT,
    CHECK ((status = 'pending') = (resolved_at IS NULL)),
    CHECK ((status = 'captured') = (captured_minor > 0))
) STRICT;
CREATE INDEX holds_account ON holds (account_id, mode, id);
CREATE INDEX holds_pending ON holds (account_id, mode, expires_at) WHERE status = 'pending';
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'pending';

-- A hold is resolved once; what it reserved never changes.
CREATE TRIGGER holds_resolve_once BEFORE UPDATE ON holds
WHEN OLD.status <> 'pending' OR NEW.id IS NOT OLD.id OR NEW.account_id IS NOT OLD.account_id
  OR NEW.mode IS NOT OLD.mode OR NEW.amount_minor IS NOT OLD.amount_minor
  OR NEW.expires_at IS NOT OLD.expires_at OR NEW.created_at IS NOT OLD.created_at
BEGIN SELECT RAISE(ABORT, 'a hold is resolved once and its amount never changes'); END;
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
BEGIN SELECT RAISE(ABORT, 'holds are never deleted'); END;

-- What pending holds reserve, and the time of the ledger's last entry (entry times
-- never go backwards within a ledger, so "the balance at T" is one index seek).
ALTER TABLE balances ADD COLUMN held_minor INTEGER NOT NULL DEFAULT 0 CHECK (held_minor >= 0);
ALTER TABLE balances ADD COLUMN last_entry_at TEXT;
UPDATE balances SET last_entry_at = (
    SELECT e.created_at FROM entries e
    WHERE e.account_id = balances.account_id AND e.mode = balances.mode AND e.seq = balances.seq
);

-- A capture's charge names its hold.
ALTER TABLE entries ADD COLUMN hold_id TEXT REFERENCES holds (id);
CREATE UNIQUE INDEX entries_hold ON entries (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX entries_at ON entries (account_id, mode, created_at, seq);

-- Idempotency keys may now also answer for holds (a CHECK cannot be altered in place).
CREATE TABLE idempotency_keys_v2 (
    key           TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    resource_type TEXT NOT NULL CHECK (resource_type IN ('account', 'key', 'entry', 'hold')),
    resource_id   TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO idempotency_keys_v2 SELECT key, fingerprint, resource_type, resource_id, created_at
FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_v2 RENAME TO idempotency_keys;
