-- birdbalance schema v15 (PostgreSQL): admin tokens scoped to one account's subtree, and the
-- columns that make a subtree one index range.
-- The same version on SQLite is sqlite/0015_scoped_tokens.sql.

-- A token with an account sees and manages only that account and its sub-accounts (at
-- most three levels): anything else answers 404, as if it did not exist.
ALTER TABLE admin_tokens ADD COLUMN account_id TEXT REFERENCES accounts (id);

-- Each account's top-level ancestor (itself at level 1) and level-2 ancestor (itself at
-- level 2; none at level 1), fixed at creation like its parent: a subtree is then one
-- index range in id order (root_id = X at level 1, branch_id = X at level 2), so a
-- confined token's account list pages as fast as the whole list does.
ALTER TABLE accounts ADD COLUMN root_id TEXT;
ALTER TABLE accounts ADD COLUMN branch_id TEXT;
UPDATE accounts SET root_id = id WHERE depth = 1;
UPDATE accounts SET root_id = parent_id, branch_id = id WHERE depth = 2;
UPDATE accounts SET branch_id = parent_id,
    root_id = (SELECT p.parent_id FROM accounts p WHERE p.id = accounts.parent_id)
    WHERE depth = 3;
CREATE INDEX accounts_root ON accounts (root_id, id);
CREATE INDEX accounts_branch ON accounts (branch_id, id) WHERE branch_id IS NOT NULL;
