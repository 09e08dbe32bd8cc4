-- birdbalance schema v2 (PostgreSQL): holds, monotonic entry times, point-in-time lookups.
-- Keeps every row of v1; the same version on SQLite is sqlite/0002_holds.sql.

-- Holds reserve an amount until they are captured (a charge entry), voided or expire.
CREATE TABLE holds (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    mode           TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    captured_minor BIGINT NOT NULL DEFAULT 0
                   CHECK (captured_minor >= 0 AND captured_minor <= amount_minor),
    expires_at     TIMESTAMPTZ NOT NULL,
    reference      TEXT,
    metadata       JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL,
    resolved_at    TIMESTAMPTZ,
    CHECK ((status = 'pending') = (resolved_at IS NULL)),
    CHECK ((status = 'captured') = (captured_minor > 0))
);
CREATE INDEX holds_account ON holds (account_id, mode, id);
CREATE INDEX holds_pending ON holds (account_id, mode, expires_at) WHERE status = 'pending';
CREATE INDEX holds_due ON holds (expires_at) WHERE status = 'pending';

-- A hold is resolved once; what it reserved never changes.
CREATE FUNCTION birdbalance_hold_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' OR NEW.id IS DISTINCT FROM OLD.id
       OR NEW.account_id IS DISTINCT FROM OLD.account_id OR NEW.mode IS DISTINCT FROM OLD.mode
       OR NEW.amount_minor IS DISTINCT FROM OLD.amount_minor
       OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
       OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'a hold is resolved once and its amount never changes';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER holds_resolve_once BEFORE UPDATE ON holds
FOR EACH ROW EXECUTE FUNCTION birdbalance_hold_resolve_once();
CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
FOR EACH ROW EXECUTE FUNCTION birdbalance_append_only();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
FOR EACH STATEMENT EXECUTE FUNCTION birdbalance_append_only();

-- What pending holds reserve, and the time of the ledger's last entry (entry times
-- never go backwards within a ledger, so "the balance at T" is one index seek).
ALTER TABLE balances ADD COLUMN held_minor BIGINT NOT NULL DEFAULT 0 CHECK (held_minor >= 0);
ALTER TABLE balances ADD COLUMN last_entry_at TIMESTAMPTZ;
UPDATE balances SET last_entry_at = (
    SELECT e.created_at FROM entries e
    WHERE e.account_id = balances.account_id AND e.mode = balances.mode AND e.seq = balances.seq
);

-- A capture's charge names its hold.
ALTER TABLE entries ADD COLUMN hold_id TEXT REFERENCES holds (id);
CREATE UNIQUE INDEX entries_hold ON entries (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX entries_at ON entries (account_id, mode, created_at, seq);

-- Idempotency keys may now also answer for holds.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_resource_type_check;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_resource_type_check
    CHECK (resource_type IN ('account', 'key', 'entry', 'hold'));
