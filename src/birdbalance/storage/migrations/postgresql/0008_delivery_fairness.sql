-- birdbalance schema v8 (PostgreSQL): each subscription's due deliveries, found by one probe.
-- The same version on SQLite is sqlite/0008_delivery_fairness.sql.

-- The deliverer claims the oldest due deliveries of each subscription in turn (a few at
-- most), so one receiver's backlog never stands in front of another's events.
CREATE INDEX deliveries_due_by_webhook ON deliveries (webhook_id, next_attempt_at)
    WHERE status = 'pending';
