-- birdbalance schema v16 (SQLite): every admin write takes an Idempotency-Key.
-- The same version on PostgreSQL is postgresql/0016_idempotent_admin_writes.sql.

-- Alert rules (created, stopped, a recharge failure recorded), webhooks (created, secret
-- rotated, stopped) and deliveries (sent again) become resources a key answers for: the
-- migration's Python step adds 'alert', 'webhook' and 'delivery' to idempotency_keys'
-- CHECK in place, as version 12 did for 'transfer' (no table is rebuilt).
SELECT 1;
