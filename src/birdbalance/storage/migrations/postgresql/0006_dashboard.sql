-- birdbalance schema v6 (PostgreSQL): per-day totals for the dashboard's charts, and
-- indexes for its entry filters. The same version on SQLite is sqlite/0006_dashboard.sql.

-- One row per ledger, UTC day and entry kind: the sum and count of that day's entries of
-- that kind, and the balance after the day's last one. Derived from entries by a trigger
-- in the same transaction as each insert (so it can never disagree with them; `verify`
-- recomputes it), it lets a 90-day chart read at most 360 rows however busy the account.
-- Writes to one ledger already queue on its balances row, so the upsert adds no waits.
CREATE TABLE daily_totals (
    account_id          TEXT NOT NULL,
    mode                TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    day                 DATE NOT NULL,
    kind                TEXT NOT NULL,
    amount_minor        BIGINT NOT NULL,
    entries             BIGINT NOT NULL CHECK (entries >= 1),
    last_seq            BIGINT NOT NULL CHECK (last_seq >= 1),
    balance_after_minor BIGINT NOT NULL,
    PRIMARY KEY (account_id, mode, day, kind)
);

INSERT INTO daily_totals
SELECT account_id, mode, (created_at AT TIME ZONE 'UTC')::date AS day, kind,
    SUM(amount_minor), COUNT(*), MAX(seq), 0
FROM entries GROUP BY account_id, mode, day, kind;

UPDATE daily_totals d SET balance_after_minor = e.balance_after_minor
FROM entries e
WHERE e.account_id = d.account_id AND e.mode = d.mode AND e.seq = d.last_seq;

-- A statement-level trigger over the statement's new rows: one upsert per day and kind
-- however many rows the statement inserts. (A row-level upsert would update the same row
-- once per entry, and PostgreSQL keeps every version of it until the transaction ends:
-- a bulk insert of 200,000 entries took minutes instead of seconds.)
CREATE FUNCTION birdbalance_daily_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO daily_totals AS d
    SELECT account_id, mode, (created_at AT TIME ZONE 'UTC')::date AS day, kind,
        SUM(amount_minor), COUNT(*), MAX(seq),
        (array_agg(balance_after_minor ORDER BY seq DESC))[1]
    FROM new_entries GROUP BY account_id, mode, day, kind
    ON CONFLICT (account_id, mode, day, kind) DO UPDATE SET
        amount_minor = d.amount_minor + EXCLUDED.amount_minor,
        entries = d.entries + EXCLUDED.entries,
        balance_after_minor = CASE WHEN EXCLUDED.last_seq > d.last_seq
            THEN EXCLUDED.balance_after_minor ELSE d.balance_after_minor END,
        last_seq = GREATEST(d.last_seq, EXCLUDED.last_seq);
    RETURN NULL;
END;
$$;
CREATE TRIGGER entries_daily_totals AFTER INSERT ON entries
REFERENCING NEW TABLE AS new_entries
FOR EACH STATEMENT EXECUTE FUNCTION birdbalance_daily_totals();

-- The entries table's filters (kind, reference), each in seq order so a page is one
-- range read. Date ranges need no index of their own: they become seq ranges through
-- entries_at. Charges, most of every ledger and of every write, stay out of entries_kind:
-- a page of charges is read from the seq index, and the write path touches one page
-- fewer per charge.
CREATE INDEX entries_kind ON entries (account_id, mode, kind, seq) WHERE kind <> 'charge';
CREATE INDEX entries_reference ON entries (account_id, mode, reference, seq)
    WHERE reference IS NOT NULL;
