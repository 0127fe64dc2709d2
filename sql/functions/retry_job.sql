-- exports.retry_job: run a failed or cancelled export again.
-- The current definition (created by migration 0005, changed by 0015). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
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
    -- It keeps the job's tenant, owner and priority label but does not wait behind newer
    -- work: someone asked for it again. A failure email still waiting to go out no longer
    -- applies and is withdrawn. Returns the re-queued job; no row when the job does not
    -- exist or is not retryable.
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
        INSERT INTO exports.outbox
            (topic, job_id, attempts, max_attempts, tenant, owner_id, priority)
        SELECT 'export.run', job.id, job.attempts,
               job.attempts + coalesce(retry_job.max_attempts, 5),
               job.tenant, job.owner_id, job.priority
        FROM job
        RETURNING id)
    SELECT * FROM job;
$$;

COMMENT ON FUNCTION exports.retry_job(uuid, integer) IS
    'Run a failed or cancelled export again (back to queued, a fresh export.run message with '
    'max_attempts tries, default 5); returns the job, or no row if it is not retryable: '
    'SELECT * FROM exports.retry_job(''<job id>'');';
