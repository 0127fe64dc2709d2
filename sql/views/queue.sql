-- exports.queue: the outbox with a readable state per message.
-- The current definition (created by migration 0001, last changed by 0003). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
CREATE OR REPLACE VIEW exports.queue AS
SELECT o.id, o.topic, o.job_id,
       CASE
           WHEN o.dead_at IS NOT NULL THEN 'dead'
           WHEN o.done_at IS NOT NULL THEN 'done'
           WHEN o.visible_at > now() AND o.leased_by IS NOT NULL THEN 'running'
           WHEN o.visible_at > now() THEN 'retry_wait'
           ELSE 'ready'
       END AS state,
       o.attempts, o.max_attempts, o.visible_at, o.leased_by, o.last_error,
       o.created_at, coalesce(o.done_at, o.dead_at) AS ended_at, o.claimed_at
FROM exports.outbox o;

COMMENT ON VIEW exports.queue IS
    'The outbox with a readable state: ready, running, retry_wait, done or dead.';
