-- Job state changes. Loaded by app/platform/db.py; every block starts with "-- name: <query name>".
-- Writes made by a poller are fenced on jobs.attempts (the export.run attempt that owns the
-- job): a poller whose lease lapsed updates zero rows and must drop its work.

-- name: insert_job_with_message
-- A new export request: the job and its export.run outbox message in one statement (one
-- round trip instead of two; the enqueue path is bound by round trips and the commit).
-- With an idempotency key, a repeat inserts nothing, neither job nor message, and returns
-- no row (see get_job_by_key). The outbox row's shape is repeated from
-- outbox.sql insert_message, which stays the one way for every other caller to queue a
-- message: a data-modifying CTE cannot call it. Keep the two in step. The outbox's
-- statement-level NOTIFY trigger fires even when the message insert adds no row (a replay):
-- an idle poller then polls once and finds nothing.
WITH job AS (
    INSERT INTO exports.jobs
        (tenant, owner_id, kind, params, format, columns, timezone, csv_options, safe_cells,
         max_part_bytes, window_start, window_end, notify_email, notify_email_masked,
         notify_webhook, idempotency_key, request_fingerprint, schedule_id, priority)
    VALUES
        (%(tenant)s, %(owner_id)s, %(kind)s, %(params)s, %(format)s, %(columns)s,
         %(timezone)s, %(csv_options)s, %(safe_cells)s, %(max_part_bytes)s,
         %(window_start)s, %(window_end)s, %(notify_email)s, %(notify_email_masked)s,
         %(notify_webhook)s, %(idempotency_key)s, %(request_fingerprint)s, %(schedule_id)s,
         %(priority)s)
    ON CONFLICT (tenant, owner_id, idempotency_key) DO NOTHING
    RETURNING *),
message AS (
    INSERT INTO exports.outbox
        (topic, job_id, payload, max_attempts, tenant, owner_id, priority,
         priority_wait_seconds)
    SELECT %(topic)s, job.id, %(payload)s, %(max_attempts)s, job.tenant, job.owner_id,
           job.priority, %(priority_wait_seconds)s
    FROM job
    RETURNING id)
SELECT job.* FROM job;

-- name: get_job_by_key
SELECT * FROM exports.jobs
WHERE tenant = %(tenant)s AND owner_id = %(owner_id)s AND idempotency_key = %(idempotency_key)s;

-- name: lock_owner_requests
-- Serializes new requests of one tenant+owner until commit (schedules.sql counts schedules
-- under it). The same lock as exports.check_owner_requests takes: keep the key the same.
-- A hash collision only makes two owners wait for each other briefly.
SELECT pg_advisory_xact_lock(
    hashtextextended('exports.request:' || %(tenant)s || ':' || %(owner_id)s, 0));

-- name: check_owner_requests
-- The owner's lock, then the job this request repeats and the active count: see
-- sql/functions/check_owner_requests.sql.
SELECT * FROM exports.check_owner_requests(
    %(tenant)s, %(owner_id)s, %(request_fingerprint)s, %(idempotency_key)s,
    %(dedupe_seconds)s, %(count_active)s);

-- name: get_job
SELECT * FROM exports.jobs WHERE tenant = %(tenant)s AND id = %(id)s;

-- name: get_job_by_id
-- Any tenant: for the poller and for signed download links, which name the job themselves.
SELECT * FROM exports.jobs WHERE id = %(id)s;

-- name: list_jobs
-- Newest first; the cursor is the (created_at, id) of the last row of the previous page.
SELECT * FROM exports.jobs
WHERE tenant = %(tenant)s
  AND (%(owner_id)s::text IS NULL OR owner_id = %(owner_id)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(schedule_id)s::uuid IS NULL OR schedule_id = %(schedule_id)s)
  AND (%(before_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: cancel_job
-- The same function DBAs call (migrations/versions/0003): one definition of cancelling.
SELECT * FROM exports.cancel_job(%(tenant)s, %(id)s);

-- name: start_export
-- The export.run message for this job was claimed as attempt `attempt`: the job is ours,
-- unless a later attempt already took it (attempts only grow, so a stalled older attempt
-- arriving late cannot take the job back). None: ended, or not ours.
UPDATE exports.jobs
SET state = 'running', attempts = %(attempt)s, started_at = coalesce(started_at, now()),
    progress_rows = 0, progress_bytes = 0
WHERE id = %(id)s AND state IN ('queued', 'running') AND attempts < %(attempt)s
RETURNING *;

-- name: record_progress
UPDATE exports.jobs
SET progress_rows = %(rows)s, progress_bytes = %(bytes)s
WHERE id = %(id)s AND attempts = %(attempt)s AND state = 'running'
RETURNING id;

-- name: finish_export
UPDATE exports.jobs
SET state = 'succeeded', finished_at = now(),
    progress_rows = %(rows)s, progress_bytes = %(bytes)s,
    result_key = %(key)s, result_rows = %(rows)s, result_bytes = %(bytes)s,
    result_sha256 = %(sha256)s, result_content_type = %(content_type)s,
    result_parts = %(parts)s,
    expires_at = now() + make_interval(secs => %(retention_seconds)s),
    last_error = NULL
WHERE id = %(id)s AND attempts = %(attempt)s AND state = 'running'
RETURNING *;

-- name: requeue_export
-- A transient failure: the job waits for its next attempt. Runs in the transaction whose
-- fenced outbox write proved the caller still holds the job's export.run message.
UPDATE exports.jobs
SET state = 'queued', last_error = %(error)s
WHERE id = %(id)s AND state = 'running'
RETURNING id;

-- name: fail_export
-- Given up. Fenced like requeue_export; a job cancelled meanwhile stays cancelled.
UPDATE exports.jobs
SET state = 'failed', finished_at = now(), last_error = %(error)s
WHERE id = %(id)s AND state IN ('queued', 'running')
RETURNING *;

-- name: requeue_handed_back
-- The poller handed the job's export.run message back at shutdown (outbox.hand_back, in
-- this transaction): the job waits as queued again, unless a later attempt owns it.
UPDATE exports.jobs
SET state = 'queued'
WHERE id = %(id)s AND attempts = %(attempt)s AND state = 'running'
RETURNING id;

-- name: expiring_jobs
-- Maintenance: succeeded jobs whose retention is over, oldest first, after a keyset
-- position (expires_at, id), so a job whose file cannot be deleted does not block the rest.
SELECT * FROM exports.jobs
WHERE state = 'succeeded' AND expires_at <= now()
  AND (%(after_expires_at)s::timestamptz IS NULL
       OR (expires_at, id) > (%(after_expires_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY expires_at, id
LIMIT %(limit)s;

-- name: lock_expiring_job
-- The job, locked for expiring, if it is still a succeeded job past expires_at (a DBA may
-- have extended it meanwhile; another maintenance run may hold it: SKIP LOCKED).
SELECT * FROM exports.jobs
WHERE id = %(id)s AND state = 'succeeded' AND expires_at <= now()
FOR UPDATE SKIP LOCKED;

-- name: expire_job
-- The file is deleted: the job is expired and its links answer 410. Everything else
-- (result, timestamps, email) stays for the record.
UPDATE exports.jobs SET state = 'expired'
WHERE id = %(id)s AND state = 'succeeded'
RETURNING *;
