-- exports.requeue_dead: after the cause is fixed, bring a topic's dead messages back.
-- The current definition (created by migration 0005). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
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
