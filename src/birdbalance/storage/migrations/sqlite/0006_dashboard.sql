-- birdbalance schema v6 (SQLite): per-day totals for the dashboard's charts, and indexes
-- for its entry filters. The same version on PostgreSQL is postgresql/0006_dashboard.sql.

-- One row per ledger, UTC day and entry kind: the sum and count of that day's entries of
-- that kind, and the balance after the day's last one. Derived from entries by a trigger
-- in the same transaction as each insert (so it can never disagree with them; `verify`
-- recomputes it), it lets a 90-day chart read at most 360 rows however busy the account.
CREATE TABLE daily_totals (
    account_id          TEXT NOT NULL,
    mode                TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    day                 TEXT NOT NULL,
    kind                TEXT NOT NULL,
    amount_minor        INTEGER NOT NULL,
    entries             INTEGER NOT NULL CHECK (entries >= 1),
    last_seq            INTEGER NOT NULL CHECK (last_seq >= 1),
    balance_after_minor INTEGER NOT NULL,
    PRIMARY KEY (account_id, mode, day, kind)
) STRICT, WITHOUT ROWID;

INSERT INTO daily_totals
SELECT account_id, mode, substr(created_at, 1, 10), kind, SUM(amount_minor), COUNT(*), MAX(seq), 0
FROM entries GROUP BY account_id, mode, substr(created_at, 1, 10), kind;

UPDATE daily_totals SET balance_after_minor = (
    SELECT e.balance_after_minor FROM entries e
    WHERE e.account_id = daily_totals.account_id AND e.mode = daily_totals.mode
    AND e.seq = daily_totals.last_seq
);

CREATE TRIGGER entries_daily_totals AFTER INSERT ON entries
BEGIN
    INSERT INTO daily_totals VALUES (
        NEW.account_id, NEW.mode, substr(NEW.created_at, 1, 10), NEW.kind, NEW.amount_minor,
        1, NEW.seq, NEW.balance_after_minor
    )
    ON CONFLICT (account_id, mode, day, kind) DO UPDATE SET
        amount_minor = amount_minor + excluded.amount_minor,
        entries = entries + 1,
        balance_after_minor = CASE WHEN excluded.last_seq > last_seq
            THEN excluded.balance_after_minor ELSE balance_after_minor END,
        last_seq = max(last_seq, excluded.last_seq);
END;

-- The entries table's filters (kind, reference), each in seq order so a page is one
-- range read. Date ranges need no index of their own: they become seq ranges through
-- entries_at. Charges, most of every ledger and of every write, stay out of entries_kind:
-- a page of charges is read from the seq index, and the write path touches one page
-- fewer per charge.
CREATE INDEX entries_kind ON entries (account_id, mode, kind, seq) WHERE kind <> 'charge';
CREATE INDEX entries_reference ON entries (account_id, mode, reference, seq)
    WHERE reference IS NOT NULL;
