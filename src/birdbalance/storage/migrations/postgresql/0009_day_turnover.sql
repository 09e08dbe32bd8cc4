-- birdbalance schema v9 (PostgreSQL): each ledger's turnover on its last day of entries.
-- The same version on SQLite is sqlite/0009_day_turnover.sql.

-- What the ledger took in and paid out on turnover_day (UTC, YYYY-MM-DD). A write past
-- ledger.MAX_DAY_TURNOVER_MINOR either way is refused, which bounds every per-day total
-- in daily_totals (docs/ledger.md). Kept on the ledger's row, which every write already
-- reads and moves under its lock, so the bound costs no extra read.
ALTER TABLE balances ADD COLUMN turnover_day TEXT,
    ADD COLUMN turnover_in_minor BIGINT NOT NULL DEFAULT 0 CHECK (turnover_in_minor >= 0),
    ADD COLUMN turnover_out_minor BIGINT NOT NULL DEFAULT 0 CHECK (turnover_out_minor >= 0);

-- The last day's per-kind totals stand in for its gross turnover (each kind's total is
-- what the bound must keep in range).
UPDATE balances b SET
    turnover_day = to_char(b.last_entry_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
    turnover_in_minor = COALESCE((SELECT SUM(GREATEST(d.amount_minor, 0)) FROM daily_totals d
        WHERE d.account_id = b.account_id AND d.mode = b.mode
        AND d.day = (b.last_entry_at AT TIME ZONE 'UTC')::date), 0),
    turnover_out_minor = COALESCE((SELECT SUM(GREATEST(-d.amount_minor, 0)) FROM daily_totals d
        WHERE d.account_id = b.account_id AND d.mode = b.mode
        AND d.day = (b.last_entry_at AT TIME ZONE 'UTC')::date), 0)
WHERE b.last_entry_at IS NOT NULL;
