-- birdbalance schema v10 (PostgreSQL): the answers of bulk requests, for their replays.
-- The same version on SQLite is sqlite/0010_bulk.sql.

-- A bulk request's own Idempotency-Key and its whole answer (zlib-compressed JSON), so
-- that a replay answers the same bytes. Its operations' keys are in idempotency_keys,
-- shared with single writes; bulk keys have this table to themselves.
CREATE TABLE bulk_requests (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    answer bytea NOT NULL,
    created_at timestamptz NOT NULL
);
