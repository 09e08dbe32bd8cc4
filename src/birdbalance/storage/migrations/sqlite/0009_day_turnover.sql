-- birdbalance schema v9 (SQLite): each ledger's turnover on its last day of entries.
-- The same version on PostgreSQL is postgresql/0009_day_turnover.sql.

-- What the ledger took in and paid out on turnover_day (UTC, YYYY-MM-DD). A write past
-- ledger.MAX_DAY_TURNOVER_MINOR either way is refused, which bounds every per-day total
-- in daily_totals (docs/ledger.md). Kept on the ledger's row, which every write already
-- reads and moves under its lock, so the bound costs no extra read.
ALTER TABLE balances ADD COLUMN turnover_day TEXT;
ALTER TABLE balances ADD COLUMN turnover_in_minor INTEGER NOT NULL DEFAULT 0
    CHECK (turnover_in_minor >= 0);
ALTER TABLE balances ADD COLUMN turnover_out_minor INTEGER NOT NULL DEFAULT 0
    CHECK (turnover_out_minor >= 0);

-- The last day's per-kind totals stand in for its gross turnover (each kind's total is
-- what the bound must keep in range).
UPDATE balances SET
    turnover_day = substr(last_entry_at, 1, 10),
    turnover_in_minor = (SELECT COALESCE(SUM(MAX(d.amount_minor, 0)), 0) FROM daily_totals d
        WHERE d.account_id = balances.account_id AND d.mode = balances.mode
        AND d.day = substr(balances.last_entry_at, 1, 10)),
    turnover_out_minor = (SELECT COALESCE(SUM(MAX(-d.amount_minor, 0)), 0) FROM daily_totals d
        WHERE d.account_id = balances.account_id AND d.mode = balances.mode
        AND d.day = substr(balances.last_entry_at, 1, 10))
WHERE last_entry_at IS NOT NULL;
