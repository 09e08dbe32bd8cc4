-- birdbalance schema v3 (PostgreSQL): alert rules and the outbox of events.
-- The same version on SQLite is sqlite/0003_alerts.sql.

-- A threshold on a ledger's available amount; `low` is its state (fire once per crossing).
CREATE TABLE alert_rules (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    mode             TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    below_minor      BIGINT NOT NULL,
    hysteresis_minor BIGINT NOT NULL DEFAULT 0 CHECK (hysteresis_minor >= 0),
    low              INTEGER NOT NULL CHECK (low IN (0, 1)),
    created_at       TIMESTAMPTZ NOT NULL,
    deleted_at       TIMESTAMPTZ
);
CREATE INDEX alert_rules_ledger ON alert_rules (account_id, mode) WHERE deleted_at IS NULL;

-- The outbox: every event is written in the transaction of the write that caused it.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL CHECK (type IN ('balance.low', 'balance.recovered',
                                             'balance.depleted', 'credit_limit.reached')),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    mode       TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    rule_id    TEXT REFERENCES alert_rules (id),
    -- TEXT, not JSONB: the exact bytes every webhook delivery of the event sends.
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_created ON events (created_at, id);

CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
FOR EACH ROW EXECUTE FUNCTION birdbalance_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION birdbalance_append_only();
