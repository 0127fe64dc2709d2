"""DBA objects, issue 13: exports.stuck shows running_for only for running work, and
exports.retry_message answers "nothing to do" with no rows instead of an error (as every
other function does). Table comments name the modules' new homes.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen copies of sql/views/stuck.sql and sql/functions/retry_message.sql as of this
# migration (tests/integration/test_schema.py checks the files still match the head).
UPGRADE = r"""
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

CREATE OR REPLACE FUNCTION exports.retry_message(
    message_id bigint, extra_attempts integer DEFAULT 3)
RETURNS SETOF exports.queue LANGUAGE plpgsql AS $$
-- Bring a dead message back: it runs as soon as a poller is free, with extra_attempts
-- more tries. Its job goes back to waiting (a failed export to queued, a failed email to
-- pending). The error history is kept.
DECLARE
    revived exports.outbox;
BEGIN
    UPDATE exports.outbox
    SET dead_at = NULL, visible_at = now(), leased_by = NULL,
        max_attempts = attempts + extra_attempts
    WHERE id = message_id AND dead_at IS NOT NULL
    RETURNING * INTO revived;
    IF NOT FOUND THEN
        RETURN;  -- unknown or not dead: nothing to do, no rows (like every other function)
    END IF;
    IF revived.topic = 'export.run' THEN
        UPDATE exports.jobs SET state = 'queued', finished_at = NULL, email_status = NULL
        WHERE id = revived.job_id AND state = 'failed';
        -- Its failure email, if one is still waiting, no longer applies.
        UPDATE exports.outbox SET done_at = now()
        WHERE job_id = revived.job_id AND topic = 'export.notify'
          AND done_at IS NULL AND dead_at IS NULL;
    ELSE
        UPDATE exports.jobs SET email_status = 'pending'
        WHERE id = revived.job_id AND email_status = 'failed';
    END IF;
    PERFORM pg_notify('exports_outbox', '');
    RETURN QUERY SELECT * FROM exports.queue WHERE id = message_id;
END $$;
COMMENT ON FUNCTION exports.retry_message(bigint, integer) IS
    'Revive a dead outbox message (and its job): SELECT * FROM exports.retry_message(42); '
    'no rows when it is unknown or not dead.';

COMMENT ON TABLE exports.jobs IS
    'One row per export request. State changes are made by app/exports/jobs.py only.';
COMMENT ON TABLE exports.schedules IS
    'Recurring exports: each slot of cron (read in timezone) queues one job. Changed by '
    'app/schedules/store.py; fired by the pollers'' scheduler.';
"""

DOWNGRADE = r"""
CREATE OR REPLACE VIEW exports.stuck AS
SELECT q.*, t.deadline_seconds,
       now() - q.claimed_at AS running_for,
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
    'How long ago the current (or last) attempt was claimed.';
COMMENT ON COLUMN exports.stuck.why IS 'The first reason that applies.';

CREATE OR REPLACE FUNCTION exports.retry_message(
    message_id bigint, extra_attempts integer DEFAULT 3)
RETURNS SETOF exports.queue LANGUAGE plpgsql AS $$
-- Bring a dead message back: it runs as soon as a poller is free, with extra_attempts
-- more tries. Its job goes back to waiting (a failed export to queued, a failed email to
-- pending). The error history is kept.
DECLARE
    revived exports.outbox;
BEGIN
    UPDATE exports.outbox
    SET dead_at = NULL, visible_at = now(), leased_by = NULL,
        max_attempts = attempts + extra_attempts
    WHERE id = message_id AND dead_at IS NOT NULL
    RETURNING * INTO revived;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox message % does not exist or is not dead', message_id;
    END IF;
    IF revived.topic = 'export.run' THEN
        UPDATE exports.jobs SET state = 'queued', finished_at = NULL, email_status = NULL
        WHERE id = revived.job_id AND state = 'failed';
        -- Its failure email, if one is still waiting, no longer applies.
        UPDATE exports.outbox SET done_at = now()
        WHERE job_id = revived.job_id AND topic = 'export.notify'
          AND done_at IS NULL AND dead_at IS NULL;
    ELSE
        UPDATE exports.jobs SET email_status = 'pending'
        WHERE id = revived.job_id AND email_status = 'failed';
    END IF;
    PERFORM pg_notify('exports_outbox', '');
    RETURN QUERY SELECT * FROM exports.queue WHERE id = message_id;
END $$;
COMMENT ON FUNCTION exports.retry_message(bigint, integer) IS
    'Revive a dead outbox message (and its job): SELECT * FROM exports.retry_message(42);';

COMMENT ON TABLE exports.jobs IS
    'One row per export request. State changes are made by app/jobs.py only.';
COMMENT ON TABLE exports.schedules IS
    'Recurring exports: each slot of cron (read in timezone) queues one job. Changed by '
    'app/schedules.py; fired by the pollers'' scheduler.';
"""


def upgrade() -> None:
    """The new stuck view and retry_message function."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Their 0005 and 0003 texts."""
    op.execute(DOWNGRADE)
