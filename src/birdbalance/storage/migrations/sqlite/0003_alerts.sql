-- birdbalance schema v3 (SQLite): alert rules and the outbox of events.
-- The same version on PostgreSQL is postgresql/0003_alerts.sql.

-- A threshold on a ledger's available amount; `low` is its state (fire once per crossing).
CREATE TABLE alert_rules (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    mode             TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    below_minor      INTEGER NOT NULL,
    hysteresis_minor INTEGER NOT NULL DEFAULT 0 CHECK (hysteresis_minor >= 0),
    low              INTEGER NOT NULL CHECK (low IN (0, 1)),
    created_at       TEXT NOT NULL,
    deleted_at       TEXT
) STRICT;
CREATE INDEX alert_rules_ledger ON alert_rules (account_id, mode) WHERE deleted_at IS NULL;

-- The outbox: every event is written in the transaction of the write that caused it.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL CHECK (type IN ('balance.low', 'balance.recovered',
                                             'balance.depleted', 'credit_limit.reached')),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    mode       TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    rule_id    TEXT REFERENCES alert_rules (id),
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_created ON events (created_at, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
