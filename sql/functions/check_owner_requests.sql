-- exports.check_owner_requests: what POST /v1/exports (and a schedule's run) asks before
-- queueing an export. The current definition (created by migration 0018). A database
-- changes only through migrations: to change this, edit it here and run the new text from a
-- new migration (tests/integration/test_schema.py checks that the two agree). Its lock is
-- the one queries/jobs.sql lock_owner_requests takes (schedules count under it): same key.
CREATE OR REPLACE FUNCTION exports.check_owner_requests(
    tenant text,
    owner_id text,
    request_fingerprint text,
    idempotency_key text,
    dedupe_seconds double precision,
    count_active boolean,
    OUT earlier_job_id uuid,
    OUT active_jobs bigint)
LANGUAGE plpgsql AS $$
-- Serializes one tenant+owner's requests until commit, then: the earlier job this request
-- repeats (the one its idempotency key names, else, with dedupe_seconds > 0, the same
-- request of the last dedupe_seconds that is still wanted: a cancelled or failed job is not
-- reused), and, if count_active, how many of the owner's jobs are queued or running.
-- Each statement runs after the lock is granted with its own snapshot (READ COMMITTED), so
-- it sees what the previous holder of the lock committed: two concurrent requests cannot
-- both see a free slot, or both miss the twin the other is creating. A hash collision of
-- the lock only makes two owners wait for each other briefly. One call, one round trip.
DECLARE
    -- The arguments, by short names: they share their names with columns of exports.jobs.
    the_tenant text := check_owner_requests.tenant;
    the_owner text := check_owner_requests.owner_id;
BEGIN
    PERFORM pg_advisory_xact_lock(
        hashtextextended('exports.request:' || the_tenant || ':' || the_owner, 0));
    IF check_owner_requests.idempotency_key IS NOT NULL THEN
        SELECT j.id INTO earlier_job_id FROM exports.jobs j
        WHERE j.tenant = the_tenant AND j.owner_id = the_owner
          AND j.idempotency_key = check_owner_requests.idempotency_key;
    ELSIF dedupe_seconds > 0 THEN
        SELECT j.id INTO earlier_job_id FROM exports.jobs j
        WHERE j.tenant = the_tenant AND j.owner_id = the_owner
          AND j.request_fingerprint = check_owner_requests.request_fingerprint
          AND j.created_at > now() - make_interval(secs => dedupe_seconds)
          AND j.state IN ('queued', 'running', 'succeeded')
        ORDER BY j.created_at DESC, j.id DESC
        LIMIT 1;
    END IF;
    active_jobs := 0;
    IF count_active THEN
        -- Uses the partial index jobs_active_per_owner.
        SELECT count(*) INTO active_jobs FROM exports.jobs j
        WHERE j.tenant = the_tenant AND j.owner_id = the_owner
          AND j.state IN ('queued', 'running');
    END IF;
END $$;
COMMENT ON FUNCTION exports.check_owner_requests(
    text, text, text, text, double precision, boolean) IS
    'Lock one tenant+owner''s export requests until commit; then the job this request repeats '
    '(idempotency key, else a recent twin) and the owner''s active job count. '
    'What request_export asks before inserting: SELECT * FROM '
    'exports.check_owner_requests(''default'', ''user-1'', NULL, ''key-1'', 0, true);';
