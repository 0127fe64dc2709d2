"""For ops and DBAs: worker registry, health views, retry_job/requeue_dead, expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- UNLOGGED: heartbeats rewrite these rows every few seconds and the table is rebuilt by
-- the pollers themselves after a crash, so it is not worth WAL (nor replication).
CREATE UNLOGGED TABLE exports.workers (
    id                text PRIMARY KEY,
    hostname          text NOT NULL,
    pid               integer NOT NULL,
    version           text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    in_flight         integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE exports.workers IS
    'Pollers that are (or recently were) running, one row each, refreshed by heartbeats. '
    'UNLOGGED: emptied after a PostgreSQL crash; live pollers register again.';
COMMENT ON COLUMN exports.workers.id IS
    'The poller''s worker id: the value it writes into exports.outbox.leased_by.';
COMMENT ON COLUMN exports.workers.hostname IS 'Host (or ECS task) the poller runs on.';
COMMENT ON COLUMN exports.workers.pid IS 'Process id of the poller on that host.';
COMMENT ON COLUMN exports.workers.version IS 'Version of the exports package the poller runs.';
COMMENT ON COLUMN exports.workers.started_at IS 'When the poller registered.';
COMMENT ON COLUMN exports.workers.last_heartbeat_at IS
    'Last sign of life; a row not refreshed for several lease lengths is a dead poller.';
COMMENT ON COLUMN exports.workers.in_flight IS
    'Messages the poller was working on at its last heartbeat.';

-- Maintenance looks for succeeded jobs past expires_at on every run: an index of just
-- those, instead of a scan of every job ever made.
CREATE INDEX jobs_expiring ON exports.jobs (expires_at, id) WHERE state = 'succeeded';
"""

# The DBA views and functions as this migration created them (the text of sql/views and
# sql/functions when it was written), frozen: later changes to those files are new
# migrations (0009 on), so an old migration creates today what it always created.
SQL_OBJECTS = [
    r"""
-- exports.queue_health: one row per topic, how its queue is doing right now.
-- Created by migration 0005, which reads this file. Editing it changes nothing in a
-- database that is already migrated: write a new migration that runs the new text.
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
-- Only unfinished messages (the outbox_claimable index): done rows are most of the table.
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
""",
    r"""
-- exports.stuck: work that should have moved and has not.
-- Created by migration 0005 (replacing 0003's narrower view), which reads this file.
-- Editing it changes nothing in a database that is already migrated: write a new
-- migration that runs the new text.
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
""",
    r"""
-- exports.recent_failures: messages that failed in the last 24 hours, newest failure first.
-- Created by migration 0005, which reads this file. Editing it changes nothing in a
-- database that is already migrated: write a new migration that runs the new text.
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
""",
    r"""
-- exports.job_timeline: everything that happened to one job, in order.
--   SELECT * FROM exports.job_timeline WHERE job_id = '...';
-- The filter on job_id reaches every branch of the UNION, so this reads one job's rows.
-- Created by migration 0005, which reads this file. Editing it changes nothing in a
-- database that is already migrated: write a new migration that runs the new text.
CREATE OR REPLACE VIEW exports.job_timeline AS
SELECT job_id, at, message_id, topic, attempt, event, detail
FROM (
    SELECT j.id AS job_id, j.created_at AS at, NULL::bigint AS message_id, NULL::text AS topic,
           NULL::integer AS attempt, 'job created' AS event,
           j.kind || ' as ' || j.format || ' for ' || j.owner_id AS detail, 1 AS seq
    FROM exports.jobs j
    UNION ALL
    SELECT j.id, j.started_at, NULL, NULL, j.attempts, 'job started', NULL, 2
    FROM exports.jobs j WHERE j.started_at IS NOT NULL
    UNION ALL
    SELECT j.id, j.finished_at, NULL, NULL, j.attempts, 'job ' || j.state, j.last_error, 8
    FROM exports.jobs j WHERE j.finished_at IS NOT NULL
    UNION ALL
    SELECT j.id, j.notified_at, NULL, NULL, NULL, 'email sent', j.email_message_id, 9
    FROM exports.jobs j WHERE j.notified_at IS NOT NULL
    UNION ALL
    SELECT o.job_id, o.created_at, o.id, o.topic, NULL, 'message queued', NULL, 3
    FROM exports.outbox o
    UNION ALL
    SELECT o.job_id, o.claimed_at, o.id, o.topic, o.attempts, 'last claimed',
           'by ' || o.leased_by, 4
    FROM exports.outbox o WHERE o.claimed_at IS NOT NULL
    UNION ALL
    -- The error history: one row per {attempt, at, error}.
    SELECT o.job_id, (e ->> 'at')::timestamptz, o.id, o.topic, (e ->> 'attempt')::integer,
           'failed', e ->> 'error', 5
    FROM exports.outbox o CROSS JOIN LATERAL jsonb_array_elements(o.errors) AS e
    UNION ALL
    SELECT o.job_id, o.done_at, o.id, o.topic, o.attempts, 'message done', NULL, 6
    FROM exports.outbox o WHERE o.done_at IS NOT NULL
    UNION ALL
    SELECT o.job_id, o.dead_at, o.id, o.topic, o.attempts, 'message dead', o.last_error, 7
    FROM exports.outbox o WHERE o.dead_at IS NOT NULL
) AS events
ORDER BY at, seq, message_id;

COMMENT ON VIEW exports.job_timeline IS
    'One job''s history, oldest first: the job''s own events and each of its outbox '
    'messages (queued, last claimed, every failure from outbox.errors, done or dead). '
    'Use: SELECT * FROM exports.job_timeline WHERE job_id = ''<job id>''. Messages pruned '
    'by maintenance are gone from it.';
COMMENT ON COLUMN exports.job_timeline.message_id IS 'The outbox message; NULL for job events.';
COMMENT ON COLUMN exports.job_timeline.attempt IS 'Attempt the event belongs to, where known.';
COMMENT ON COLUMN exports.job_timeline.event IS
    'job created/started/<final state>, email sent, message queued/last claimed/failed/'
    'done/dead.';
COMMENT ON COLUMN exports.job_timeline.detail IS 'Error text, poller, or what was asked for.';
""",
    r"""
-- exports.retry_job: run a failed or cancelled export again.
-- Created by migration 0005, which reads this file. Editing it changes nothing in a
-- database that is already migrated: write a new migration that runs the new text.
CREATE OR REPLACE FUNCTION exports.retry_job(job_id uuid, max_attempts integer DEFAULT NULL)
RETURNS SETOF exports.jobs LANGUAGE sql AS $$
    -- Retryable: 'failed' (gave up) and 'cancelled' (undo a cancel, e.g. one made during an
    -- incident) -- and only once the job's export.run messages have all settled, so a
    -- cancelled export a poller is still stopping is refused until it has stopped.
    -- Not retryable: 'queued'/'running' (already going), 'succeeded'/'expired' (done: a new
    -- export is a new request through the API).
    --
    -- The job goes back to 'queued' with a fresh export.run message, as a new request
    -- would. The message starts counting at the job's attempt number, so the attempt fence
    -- (jobs.attempts only grows) holds: no poller of an earlier run can take the job back.
    -- A failure email still waiting to go out no longer applies and is withdrawn.
    -- Returns the re-queued job; no row when the job does not exist or is not retryable.
    WITH job AS (
        UPDATE exports.jobs j
        SET state = 'queued', finished_at = NULL, email_status = NULL,
            progress_rows = 0, progress_bytes = 0
        WHERE j.id = retry_job.job_id
          AND j.state IN ('failed', 'cancelled')
          AND NOT EXISTS (
              SELECT FROM exports.outbox o
              WHERE o.job_id = j.id AND o.topic = 'export.run'
                AND o.done_at IS NULL AND o.dead_at IS NULL)
        RETURNING j.*),
    withdrawn AS (
        UPDATE exports.outbox o
        SET done_at = now()
        FROM job
        WHERE o.job_id = job.id AND o.topic = 'export.notify'
          AND o.done_at IS NULL AND o.dead_at IS NULL
        RETURNING o.id),
    queued AS (
        INSERT INTO exports.outbox (topic, job_id, attempts, max_attempts)
        SELECT 'export.run', job.id, job.attempts,
               job.attempts + coalesce(retry_job.max_attempts, 5)
        FROM job
        RETURNING id)
    SELECT * FROM job;
$$;

COMMENT ON FUNCTION exports.retry_job(uuid, integer) IS
    'Run a failed or cancelled export again (back to queued, a fresh export.run message with '
    'max_attempts tries, default 5); returns the job, or no row if it is not retryable: '
    'SELECT * FROM exports.retry_job(''<job id>'');';
""",
    r"""
-- exports.requeue_dead: after the cause is fixed, bring a topic's dead messages back.
-- Created by migration 0005, which reads this file. Editing it changes nothing in a
-- database that is already migrated: write a new migration that runs the new text.
CREATE OR REPLACE FUNCTION exports.requeue_dead(
    topic text, since timestamptz, extra_attempts integer DEFAULT 3)
RETURNS SETOF exports.queue LANGUAGE plpgsql AS $$
-- Messages of `topic` (NULL: every topic) that died at or after `since` (NULL: ever) are
-- ready again at once, with `extra_attempts` more tries, as exports.retry_message does for
-- one message. The attempt counter itself is not reset to 0: it is the fence token every
-- write is checked against (jobs.attempts only grows), so a fresh budget is given by
-- raising max_attempts instead. The error history is kept.
--
-- Only messages whose revival still makes sense, so a second call revives nothing:
--   export.run:    the job's latest export.run message, while the job is 'failed' (it goes
--                  back to 'queued'; its pending failure email is withdrawn);
--   export.notify: the job's latest email, while the job's email_status is 'failed' (it goes
--                  back to 'pending').
-- Returns the revived messages (exports.queue rows).
DECLARE
    revived bigint[] := '{}';
    ids bigint[];
BEGIN
    IF extra_attempts IS NULL OR extra_attempts < 1 THEN
        RAISE EXCEPTION 'extra_attempts must be at least 1, not %', extra_attempts;
    END IF;
    IF requeue_dead.topic NOT IN ('export.run', 'export.notify') THEN
        RAISE EXCEPTION 'requeue_dead knows topics export.run and export.notify, not %',
            requeue_dead.topic;
    END IF;

    IF requeue_dead.topic IS NULL OR requeue_dead.topic = 'export.run' THEN
        -- Lock the jobs first (and re-check their state once locked), so a concurrent
        -- retry_job of the same job either happens before (and this skips it) or waits.
        WITH failed AS (
            SELECT j.id FROM exports.jobs j
            WHERE j.state = 'failed'
              AND j.id IN (SELECT d.job_id FROM exports.outbox d
                           WHERE d.topic = 'export.run' AND d.dead_at IS NOT NULL
                             AND d.dead_at >= coalesce(requeue_dead.since, '-infinity'))
            FOR UPDATE OF j),
        run AS (
            UPDATE exports.outbox o
            SET dead_at = NULL, visible_at = now(), leased_by = NULL,
                max_attempts = o.attempts + requeue_dead.extra_attempts
            FROM failed
            WHERE o.job_id = failed.id
              AND o.topic = 'export.run' AND o.dead_at IS NOT NULL
              AND o.dead_at >= coalesce(requeue_dead.since, '-infinity')
              AND o.id = (SELECT max(l.id) FROM exports.outbox l
                          WHERE l.job_id = o.job_id AND l.topic = 'export.run')
            RETURNING o.id, o.job_id),
        requeued AS (
            UPDATE exports.jobs j
            SET state = 'queued', finished_at = NULL, email_status = NULL
            FROM run
            WHERE j.id = run.job_id AND j.state = 'failed'
            RETURNING j.id),
        withdrawn AS (
            UPDATE exports.outbox o
            SET done_at = now()
            FROM run
            WHERE o.job_id = run.job_id AND o.topic = 'export.notify'
              AND o.done_at IS NULL AND o.dead_at IS NULL
            RETURNING o.id)
        SELECT coalesce(array_agg(run.id), '{}') INTO ids FROM run;
        revived := revived || ids;
    END IF;

    IF requeue_dead.topic IS NULL OR requeue_dead.topic = 'export.notify' THEN
        WITH unsent AS (
            SELECT j.id FROM exports.jobs j
            WHERE j.email_status = 'failed'
              AND j.id IN (SELECT d.job_id FROM exports.outbox d
                           WHERE d.topic = 'export.notify' AND d.dead_at IS NOT NULL
                             AND d.dead_at >= coalesce(requeue_dead.since, '-infinity'))
            FOR UPDATE OF j),
        mail AS (
            UPDATE exports.outbox o
            SET dead_at = NULL, visible_at = now(), leased_by = NULL,
                max_attempts = o.attempts + requeue_dead.extra_attempts
            FROM unsent
            WHERE o.job_id = unsent.id
              AND o.topic = 'export.notify' AND o.dead_at IS NOT NULL
              AND o.dead_at >= coalesce(requeue_dead.since, '-infinity')
              AND o.id = (SELECT max(l.id) FROM exports.outbox l
                          WHERE l.job_id = o.job_id AND l.topic = 'export.notify')
            RETURNING o.id, o.job_id),
        requeued AS (
            UPDATE exports.jobs j
            SET email_status = 'pending'
            FROM mail
            WHERE j.id = mail.job_id AND j.email_status = 'failed'
            RETURNING j.id)
        SELECT coalesce(array_agg(mail.id), '{}') INTO ids FROM mail;
        revived := revived || ids;
    END IF;

    IF cardinality(revived) > 0 THEN
        PERFORM pg_notify('exports_outbox', '');  -- wake pollers (no INSERT fired the trigger)
    END IF;
    RETURN QUERY SELECT q.* FROM exports.queue q WHERE q.id = ANY (revived) ORDER BY q.id;
END $$;

COMMENT ON FUNCTION exports.requeue_dead(text, timestamptz, integer) IS
    'Make dead messages of a topic (NULL: all) that died since a time ready again with '
    'extra_attempts more tries, reviving their jobs; returns them: '
    'SELECT * FROM exports.requeue_dead(''export.run'', now() - interval ''1 day'');';
""",
]

# 0003's exports.stuck; sql/views/stuck.sql widens it (new columns, so drop and create).
STUCK_0003 = r"""
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
"""

DOWNGRADE = (
    r"""
DROP FUNCTION exports.requeue_dead(text, timestamptz, integer);
DROP FUNCTION exports.retry_job(uuid, integer);
DROP VIEW exports.job_timeline;
DROP VIEW exports.recent_failures;
DROP VIEW exports.queue_health;
DROP VIEW exports.stuck;
"""
    + STUCK_0003
    + r"""
DROP INDEX exports.jobs_expiring;
DROP TABLE exports.workers;
"""
)


def upgrade() -> None:
    """Create the worker registry, DBA views and functions."""
    op.execute(UPGRADE)
    op.execute("DROP VIEW exports.stuck")
    for text in SQL_OBJECTS:
        op.execute(text)


def downgrade() -> None:
    """Drop what upgrade created."""
    op.execute(DOWNGRADE)
