-- exports.cancel_job: what POST /v1/exports/{id}/cancel and exports-admin cancel run.
-- The current definition (created by migration 0003). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
CREATE OR REPLACE FUNCTION exports.cancel_job(job_tenant text, job_id uuid)
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
