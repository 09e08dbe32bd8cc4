-- birdbalance schema v11 (PostgreSQL): account search by name through an index.
-- The same version on SQLite is sqlite/0011_account_search.sql.

-- A trigram GIN index (pg_trgm) on the lower-cased name: the search's
-- lower(name) LIKE '%text%' uses it for three characters or more. pg_trgm ships with
-- PostgreSQL (contrib) and is a trusted extension, so a database owner may create it.
-- Where it cannot be created, the migration still applies and search reads every
-- account, as before; the notice says why.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): account search by name will scan', SQLERRM;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX account_names ON accounts USING gin (lower(name) gin_trgm_ops);
    END IF;
END $$;
