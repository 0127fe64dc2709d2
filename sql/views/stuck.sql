-- exports.stuck: work that should have moved and has not.
-- The current definition (created by migration 0003, last changed by 0009).
-- A database changes only through migrations: to change this, edit it here and run the
-- new text from a new migration (tests/integration/test_schema.py checks they agree).
CREATE OR REPLACE VIEW exports.stuck AS
SELECT q.*, t.deadline_seconds,
       CASE WHEN q.state = 'running' THEN now() - q.claimed_at END AS running_for,
       CASE WHEN q.state = 'running'
                 AND q.claimed_at < now() - make_interval(secs => t.deadline_seconds)
                THEN 'running past its deadline'
            WHEN q.state = 'ready' AND q.visible_at < now() - interval '5 minutes'
                THEN 'ready but not claimed for 5 minutes: are any pollers running?'
            ELSE 'attempt ' || q.attempts || ' of ' || q.max_attempts
                 || ': keeps failing or losing its poller' END AS why
FROM exports.queue q JOIN exports.topics t USING (topic)
WHERE q.state IN ('ready', 'running', 'retry_wait')
  AND ((q.state = 'running'
        AND q.claimed_at < now() - make_interval(secs => t.deadline_seconds))
       OR (q.state = 'ready' AND q.visible_at < now() - interval '5 minutes')
       -- Many attempts: twice retried and still not through.
       OR q.attempts >= 3);

COMMENT ON VIEW exports.stuck IS
    'Unfinished work that should have moved and has not, with why: attempts running past '
    'their topic deadline, ready messages nobody claims for 5 minutes, and messages on '
    'their third attempt or later.';
COMMENT ON COLUMN exports.stuck.running_for IS
    'How long the current attempt has been running; NULL when none is (ready, retry_wait).';
COMMENT ON COLUMN exports.stuck.why IS 'The first reason that applies.';
