"""For DBAs: when an attempt began, views of stuck and failing work, retry/cancel functions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE exports.outbox ADD COLUMN claimed_at timestamptz;
COMMENT ON COLUMN exports.outbox.claimed_at IS 'When the current (or last) attempt was claimed.';
-- Dead messages are few and kept for inspection: counting them (exports.failing,
-- /metrics) must not scan every finished row.
CREATE INDEX outbox_dead ON exports.outbox (topic) WHERE dead_at IS NOT NULL;

-- exports.queue gains how long the current attempt has been running.
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

CREATE VIEW exports.stuck AS
SELECT q.*, t.deadline_seconds,
       CASE WHEN q.state = 'running' THEN 'running past its deadline'
            ELSE 'ready but not claimed for 5 minutes: are any pollers running?' END AS why
FROM exports.queue q JOIN exports.topics t USING (topic)
WHERE (q.state = 'running'
       AND q.claimed_at < now() - make_interval(secs => t.deadline_seconds))
   OR (q.state = 'ready' AND q.visible_at < now() - interval '5 minutes');
COMMENT ON VIEW exports.stuck IS
    'Work that should have moved and has not: attempts past their topic deadline, and '
    'ready messages nobody claims.';

CREATE VIEW exports.failing AS
SELECT q.id, q.topic, q.job_id, q.state, q.attempts, q.max_attempts, q.last_error,
       o.errors, q.ended_at, j.owner_id, j.kind
FROM exports.queue q
JOIN exports.outbox o USING (id)
LEFT JOIN exports.jobs j ON j.id = q.job_id
WHERE q.state = 'dead'
   OR (q.state IN ('retry_wait', 'ready', 'running') AND q.last_error IS NOT NULL);
COMMENT ON VIEW exports.failing IS
    'Dead messages and messages that failed at least once and are still trying.';

CREATE FUNCTION exports.retry_message(message_id bigint, extra_attempts integer DEFAULT 3)
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

CREATE FUNCTION exports.cancel_job(job_tenant text, job_id uuid)
RETURNS SETOF exports.jobs LANGUAGE sql AS $$
    -- queued/running -> cancelled; a running export stops at its next progress write.
    -- Returns the cancelled job, or nothing if it had already ended.
    UPDATE exports.jobs
    SET state = 'cancelled', finished_at = now()
    WHERE tenant = job_tenant AND id = job_id AND state IN ('queued', 'running')
    RETURNING *;
$$;
COMMENT ON FUNCTION exports.cancel_job(text, uuid) IS
    'Cancel a queued or running export, as the API does: '
    'SELECT * FROM exports.cancel_job(''default'', ''<job id>'');';
"""

DOWNGRADE = r"""
DROP FUNCTION exports.cancel_job(text, uuid);
DROP FUNCTION exports.retry_message(bigint, integer);
DROP VIEW exports.failing;
DROP VIEW exports.stuck;
DROP VIEW exports.queue;
CREATE VIEW exports.queue AS
SELECT o.id, o.topic, o.job_id,
       CASE
           WHEN o.dead_at IS NOT NULL THEN 'dead'
           WHEN o.done_at IS NOT NULL THEN 'done'
           WHEN o.visible_at > now() AND o.leased_by IS NOT NULL THEN 'running'
           WHEN o.visible_at > now() THEN 'retry_wait'
           ELSE 'ready'
       END AS state,
       o.attempts, o.max_attempts, o.visible_at, o.leased_by, o.last_error,
       o.created_at, coalesce(o.done_at, o.dead_at) AS ended_at
FROM exports.outbox o;
COMMENT ON VIEW exports.queue IS
    'The outbox with a readable state: ready, running, retry_wait, done or dead.';
DROP INDEX exports.outbox_dead;
ALTER TABLE exports.outbox DROP COLUMN claimed_at;
"""


def upgrade() -> None:
    """Add outbox.claimed_at, the stuck/failing views and the retry/cancel functions."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Remove them again."""
    op.execute(DOWNGRADE)
