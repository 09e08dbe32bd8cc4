-- birdbalance schema v16 (PostgreSQL): every admin write takes an Idempotency-Key.
-- The same version on SQLite is sqlite/0016_idempotent_admin_writes.sql.

-- Alert rules (created, stopped, a recharge failure recorded), webhooks (created, secret
-- rotated, stopped) and deliveries (sent again) become resources a key answers for.
-- NOT VALID then VALIDATE: the check of existing rows takes no lock that stops writes.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_resource_type_check;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_resource_type_check
    CHECK (resource_type IN (
        'account', 'key', 'entry', 'hold', 'transfer', 'alert', 'webhook', 'delivery'
    )) NOT VALID;
ALTER TABLE idempotency_keys VALIDATE CONSTRAINT idempotency_keys_resource_type_check;
