-- birdbalance schema v5 (SQLite): auto-recharge on alert rules, and its two event types.
-- The same version on PostgreSQL is postgresql/0005_recharge.sql.

-- A rule with a recharge asks for a top-up (event topup.requested) when it goes low:
-- a fixed amount, or up to a level. Consecutive failures, reported by the operator's
-- payment system, disable the recharge at recharge_max_failures (event recharge.disabled).
ALTER TABLE alert_rules ADD COLUMN recharge_amount_minor INTEGER
    CHECK (recharge_amount_minor IS NULL OR recharge_amount_minor > 0);
ALTER TABLE alert_rules ADD COLUMN recharge_up_to_minor INTEGER
    CHECK (recharge_up_to_minor IS NULL OR (recharge_up_to_minor > 0 AND recharge_amount_minor IS NULL));
ALTER TABLE alert_rules ADD COLUMN recharge_max_failures INTEGER NOT NULL DEFAULT 3
    CHECK (recharge_max_failures BETWEEN 1 AND 100);
ALTER TABLE alert_rules ADD COLUMN recharge_failures INTEGER NOT NULL DEFAULT 0
    CHECK (recharge_failures >= 0);
ALTER TABLE alert_rules ADD COLUMN recharge_disabled_at TEXT;

-- The events' type CHECK widens. SQLite cannot alter a CHECK, so the table is rebuilt
-- (https://sqlite.org/lang_altertable.html#otheralter) inside the migration's transaction,
-- where foreign keys stay on (and renaming a table would rewrite the deliveries'
-- references to it). So: keep the rows aside, drop the table (its deliveries' foreign
-- keys are deferred to the commit), put the new table under the old name, and insert the
-- rows back, which satisfies every delivery again before the commit checks. DROP TABLE
-- fires no triggers; the append-only ones come back below.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE events_rows AS SELECT * FROM events;
CREATE TABLE events_v5 (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL CHECK (type IN ('balance.low', 'balance.recovered',
                                             'balance.depleted', 'credit_limit.reached',
                                             'topup.requested', 'recharge.disabled')),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    mode       TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    rule_id    TEXT REFERENCES alert_rules (id),
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;
INSERT INTO events (id, type, account_id, mode, rule_id, payload, created_at)
    SELECT id, type, account_id, mode, rule_id, payload, created_at FROM events_rows;
DROP TABLE temp.events_rows;
CREATE INDEX events_account ON events (account_id, id);
CREATE INDEX events_created ON events (created_at, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
