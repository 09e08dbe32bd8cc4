-- birdbalance schema v10 (SQLite): the answers of bulk requests, for their replays.
-- The same version on PostgreSQL is postgresql/0010_bulk.sql.

-- A bulk request's own Idempotency-Key and its whole answer (zlib-compressed JSON), so
-- that a replay answers the same bytes. Its operations' keys are in idempotency_keys,
-- shared with single writes; bulk keys have this table to themselves.
CREATE TABLE bulk_requests (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    answer BLOB NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
