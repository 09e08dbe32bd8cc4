-- birdbalance schema v14 (PostgreSQL): sub-accounts that spend their parent's balance.
-- The same version on SQLite is sqlite/0014_shared_balances.sql.

-- A shared sub-account has no money of its own: its charges and refunds are entries on
-- the ledger of funding_id (its parent, which has a balance of its own), attributed to
-- it. funding_id never changes once set. Its optional spending limit caps its net usage
-- (charges less refunds) per UTC day, UTC month or all time.
ALTER TABLE accounts ADD COLUMN funding_id TEXT REFERENCES accounts (id);
ALTER TABLE accounts ADD COLUMN spend_limit_minor BIGINT
    CHECK (spend_limit_minor IS NULL OR spend_limit_minor > 0);
ALTER TABLE accounts ADD COLUMN spend_limit_period TEXT
    CHECK (spend_limit_period IS NULL OR spend_limit_period IN ('day', 'month', 'all'));

-- The shared sub-account an entry on its parent's ledger was posted for.
ALTER TABLE entries ADD COLUMN attributed_to TEXT REFERENCES accounts (id);
CREATE INDEX entries_attributed ON entries (attributed_to, mode, seq)
    WHERE attributed_to IS NOT NULL;

-- A shared sub-account's net usage per period: 'D2026-11-28', 'M2026-11' and 'all',
-- each never below 0 (a refund gives back at most what its period used). Written only in
-- the transaction of an attributed entry, under the lock of the parent's ledger, so its
-- limit holds under any concurrency; `verify` recomputes it from the entries.
CREATE TABLE spending (
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    mode        TEXT NOT NULL CHECK (mode IN ('live', 'test')),
    period      TEXT NOT NULL,
    spent_minor BIGINT NOT NULL CHECK (spent_minor >= 0),
    PRIMARY KEY (account_id, mode, period)
);
