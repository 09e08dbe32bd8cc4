-- birdbalance schema v13 (SQLite): sub-accounts.
-- The same version on PostgreSQL is postgresql/0013_subaccounts.sql.

-- An account may have a parent (platform -> reseller -> customer): depth 1 is a top-level
-- account, and no account is deeper than 3. A sub-account holds its parent's asset and
-- has a ledger of its own, funded by transfers.
ALTER TABLE accounts ADD COLUMN parent_id TEXT REFERENCES accounts (id);
ALTER TABLE accounts ADD COLUMN depth INTEGER NOT NULL DEFAULT 1 CHECK (depth BETWEEN 1 AND 3);
CREATE INDEX accounts_parent ON accounts (parent_id, id) WHERE parent_id IS NOT NULL;
