-- birdbalance schema v5 (PostgreSQL): auto-recharge on alert rules, and its two event types.
-- The same version on SQLite is sqlite/0005_recharge.sql.

-- A rule with a recharge asks for a top-up (event topup.requested) when it goes low:
-- a fixed amount, or up to a level. Consecutive failures, reported by the operator's
-- payment system, disable the recharge at recharge_max_failures (event recharge.disabled).
ALTER TABLE alert_rules
    ADD COLUMN recharge_amount_minor BIGINT
        CHECK (recharge_amount_minor IS NULL OR recharge_amount_minor > 0),
    ADD COLUMN recharge_up_to_minor BIGINT
        CHECK (recharge_up_to_minor IS NULL OR (recharge_up_to_minor > 0 AND recharge_amount_minor IS NULL)),
    ADD COLUMN recharge_max_failures INTEGER NOT NULL DEFAULT 3
        CHECK (recharge_max_failures BETWEEN 1 AND 100),
    ADD COLUMN recharge_failures INTEGER NOT NULL DEFAULT 0 CHECK (recharge_failures >= 0),
    ADD COLUMN recharge_disabled_at TIMESTAMPTZ;

ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type IN ('balance.low',
    'balance.recovered', 'balance.depleted', 'credit_limit.reached', 'topup.requested',
    'recharge.disabled'));
