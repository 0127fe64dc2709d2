-- exports.tenant_queue_health: one row per tenant with unfinished work, how it is doing.
-- The current definition (created by migration 0015). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
CREATE OR REPLACE VIEW exports.tenant_queue_health AS
SELECT o.tenant,
       count(*) FILTER (WHERE o.visible_at <= now()) AS ready,
       count(*) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NOT NULL) AS leased,
       count(*) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NOT NULL
                          AND t.limited_per_tenant) AS running,
       count(*) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NULL) AS retrying,
       now() - min(o.visible_at) FILTER (WHERE o.visible_at <= now()) AS oldest_ready_age,
       l.max_running,
       coalesce(l.weight, 1) AS weight
FROM exports.outbox o
JOIN exports.topics t ON t.topic = o.topic
LEFT JOIN exports.tenant_limits l ON l.tenant = o.tenant
WHERE o.done_at IS NULL AND o.dead_at IS NULL
GROUP BY o.tenant, l.max_running, l.weight;

COMMENT ON VIEW exports.tenant_queue_health IS
    'Per tenant with unfinished messages: its backlog, what it runs now and its limits. '
    'Which tenant floods the queue: SELECT * FROM exports.tenant_queue_health '
    'ORDER BY ready DESC LIMIT 10;';
COMMENT ON COLUMN exports.tenant_queue_health.ready IS
    'Unfinished and visible: waiting for a poller (or for the tenant''s max_running).';
COMMENT ON COLUMN exports.tenant_queue_health.leased IS
    'Claimed by a poller whose lease still holds (every topic).';
COMMENT ON COLUMN exports.tenant_queue_health.running IS
    'Leased messages of limited topics (export.run): what max_running counts.';
COMMENT ON COLUMN exports.tenant_queue_health.retrying IS
    'Failed, waiting for its back-off to pass.';
COMMENT ON COLUMN exports.tenant_queue_health.oldest_ready_age IS
    'How long the tenant''s oldest ready message has waited.';
COMMENT ON COLUMN exports.tenant_queue_health.max_running IS
    'The tenant''s override (exports.tenant_limits); NULL: EXPORTS_MAX_RUNNING_PER_TENANT.';
COMMENT ON COLUMN exports.tenant_queue_health.weight IS 'Its share per round of the round-robin.';
