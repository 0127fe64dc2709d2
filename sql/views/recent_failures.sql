-- exports.recent_failures: messages that failed in the last 24 hours, newest failure first.
-- The current definition (created by migration 0005). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
CREATE OR REPLACE VIEW exports.recent_failures AS
SELECT o.job_id, j.owner_id, j.kind, j.state AS job_state,
       o.id AS message_id, o.topic, q.state AS message_state,
       o.attempts, o.max_attempts, o.last_error,
       (o.errors -> -1 ->> 'at')::timestamptz AS failed_at,
       jsonb_array_length(o.errors) AS failures
FROM exports.outbox o
JOIN exports.queue q USING (id)
LEFT JOIN exports.jobs j ON j.id = o.job_id
WHERE o.errors <> '[]'::jsonb
  AND (o.errors -> -1 ->> 'at')::timestamptz > now() - interval '24 hours'
ORDER BY failed_at DESC, o.id DESC;

COMMENT ON VIEW exports.recent_failures IS
    'Messages whose latest failure was in the last 24 hours, newest first: the job, its '
    'attempts, the last error and when. Full history: exports.job_timeline.';
COMMENT ON COLUMN exports.recent_failures.job_state IS 'The job''s state now.';
COMMENT ON COLUMN exports.recent_failures.message_state IS
    'The message''s state now (exports.queue): still retrying, running, dead or done.';
COMMENT ON COLUMN exports.recent_failures.failed_at IS
    'When the latest failure happened (the last entry of outbox.errors).';
COMMENT ON COLUMN exports.recent_failures.failures IS
    'Failures in the message''s history (errors, lapsed leases, hand-backs).';
