-- exports.failing: dead messages, and failed ones still trying, with their history.
-- The current definition (created by migration 0003). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
CREATE OR REPLACE VIEW exports.failing AS
SELECT q.id, q.topic, q.job_id, q.state, q.attempts, q.max_attempts, q.last_error,
       o.errors, q.ended_at, j.owner_id, j.kind
FROM exports.queue q
JOIN exports.outbox o USING (id)
LEFT JOIN exports.jobs j ON j.id = q.job_id
WHERE q.state = 'dead'
   OR (q.state IN ('retry_wait', 'ready', 'running') AND q.last_error IS NOT NULL);
COMMENT ON VIEW exports.failing IS
    'Dead messages and messages that failed at least once and are still trying.';
