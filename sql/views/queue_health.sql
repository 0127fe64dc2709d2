-- exports.queue_health: one row per topic, how its queue is doing right now.
-- The current definition (created by migration 0005). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
CREATE OR REPLACE VIEW exports.queue_health AS
SELECT t.topic,
       count(o.id) FILTER (WHERE o.visible_at <= now()) AS ready,
       count(o.id) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NOT NULL) AS leased,
       count(o.id) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NULL) AS retrying,
       -- Dead messages are counted through the small outbox_dead index.
       (SELECT count(*) FROM exports.outbox d
        WHERE d.topic = t.topic AND d.dead_at IS NOT NULL) AS dead,
       now() - min(o.visible_at) FILTER (WHERE o.visible_at <= now()) AS oldest_ready_age
FROM exports.topics t
-- Only unfinished messages (the outbox_tenant_turn index): done rows are most of the table.
LEFT JOIN exports.outbox o
       ON o.topic = t.topic AND o.done_at IS NULL AND o.dead_at IS NULL
GROUP BY t.topic;

COMMENT ON VIEW exports.queue_health IS
    'Per topic: messages ready to run, leased by a poller, waiting out a retry back-off, '
    'dead, and how long the oldest ready message has waited (queue lag; NULL when none).';
COMMENT ON COLUMN exports.queue_health.ready IS
    'Unfinished and visible: waiting for a poller (includes work whose lease ran out).';
COMMENT ON COLUMN exports.queue_health.leased IS 'Claimed by a poller whose lease still holds.';
COMMENT ON COLUMN exports.queue_health.retrying IS 'Failed, waiting for its back-off to pass.';
COMMENT ON COLUMN exports.queue_health.dead IS 'Given up; see exports.recent_failures.';
COMMENT ON COLUMN exports.queue_health.oldest_ready_age IS
    'now() minus visible_at of the oldest ready message: alert when it grows.';
