-- birdbalance schema v15 (PostgreSQL): admin tokens scoped to one account's subtree.
-- The same version on SQLite is sqlite/0015_scoped_tokens.sql.

-- A token with an account sees and manages only that account and its sub-accounts (at
-- most three levels): anything else answers 404, as if it did not exist.
ALTER TABLE admin_tokens ADD COLUMN account_id TEXT REFERENCES accounts (id);
