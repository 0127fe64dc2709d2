-- Recurring exports. Loaded by app/platform/db.py; every block starts with "-- name: <query name>".
-- app/schedules/store.py computes slots (cron + time zone); these queries only store them.

-- name: insert_schedule
-- With an idempotency key, a repeat inserts nothing (see get_schedule_by_key).
INSERT INTO exports.schedules
    (tenant, owner_id, kind, params, format, columns, csv_options, safe_cells, max_part_bytes,
     notify_email, notify_email_masked, notify_webhook, cron, timezone, enabled, next_run_at,
     window_mode, ends_at, max_runs, ended_at, idempotency_key, request_fingerprint)
VALUES
    (%(tenant)s, %(owner_id)s, %(kind)s, %(params)s, %(format)s, %(columns)s,
     %(csv_options)s, %(safe_cells)s, %(max_part_bytes)s, %(notify_email)s,
     %(notify_email_masked)s, %(notify_webhook)s, %(cron)s, %(timezone)s, %(enabled)s,
     %(next_run_at)s, %(window_mode)s, %(ends_at)s, %(max_runs)s, %(ended_at)s,
     %(idempotency_key)s, %(request_fingerprint)s)
ON CONFLICT (tenant, owner_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: get_schedule_by_key
SELECT * FROM exports.schedules
WHERE tenant = %(tenant)s AND owner_id = %(owner_id)s AND idempotency_key = %(idempotency_key)s;

-- name: count_owner_schedules
-- EXPORTS_MAX_SCHEDULES_PER_OWNER, counted under lock_owner_requests (jobs.sql).
SELECT count(*) AS schedules FROM exports.schedules
WHERE tenant = %(tenant)s AND owner_id = %(owner_id)s;

-- name: get_schedule
SELECT * FROM exports.schedules WHERE tenant = %(tenant)s AND id = %(id)s;

-- name: lock_schedule
-- A PATCH reads, recomputes and writes under this lock, so a poller firing the schedule
-- at the same moment either goes first or sees the new timing.
SELECT * FROM exports.schedules WHERE tenant = %(tenant)s AND id = %(id)s FOR UPDATE;

-- name: list_schedules
-- Newest first; the cursor is the (created_at, id) of the last row of the previous page.
SELECT * FROM exports.schedules
WHERE tenant = %(tenant)s
  AND (%(owner_id)s::text IS NULL OR owner_id = %(owner_id)s)
  AND (%(before_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: update_schedule
UPDATE exports.schedules
SET cron = %(cron)s, timezone = %(timezone)s, params = %(params)s, enabled = %(enabled)s,
    next_run_at = %(next_run_at)s, ends_at = %(ends_at)s, max_runs = %(max_runs)s,
    ended_at = %(ended_at)s, updated_at = now()
WHERE id = %(id)s
RETURNING *;

-- name: delete_schedule
-- Its jobs stay: jobs.schedule_id becomes NULL (ON DELETE SET NULL).
DELETE FROM exports.schedules WHERE tenant = %(tenant)s AND id = %(id)s RETURNING id;

-- name: claim_due_schedules
-- Due schedules nobody else is firing. The caller queues their jobs and advances
-- next_run_at in this same transaction, so a slot fires once however many pollers race.
SELECT * FROM exports.schedules
WHERE enabled AND next_run_at <= %(now)s
ORDER BY next_run_at, id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: advance_schedules
-- The schedules of one firing batch (claimed above, in this transaction), in one statement:
-- ids[i] moves to next_run_ats[i] and records its slot and job.
-- last_skip_reasons[i] says why a slot queued no job (NULL: it queued last_job_ids[i]).
-- A slot that queued a job counts as a run; ended[i]: that was the last (ends_at/max_runs).
UPDATE exports.schedules AS s
SET next_run_at = f.next_run_at, last_run_at = f.last_run_at, last_job_id = f.last_job_id,
    last_skip_reason = f.last_skip_reason,
    runs = s.runs + (f.last_job_id IS NOT NULL)::int,
    ended_at = CASE WHEN f.ended THEN now() END
FROM unnest(%(ids)s::uuid[], %(next_run_ats)s::timestamptz[], %(last_run_ats)s::timestamptz[],
            %(last_job_ids)s::uuid[], %(last_skip_reasons)s::text[], %(ended)s::boolean[])
     AS f(id, next_run_at, last_run_at, last_job_id, last_skip_reason, ended)
WHERE s.id = f.id
RETURNING s.id;

-- name: last_success_window_end
-- Where a since_last_success schedule's next window starts: the end of the window of its
-- latest succeeded job (also one that has expired since: its rows were delivered).
SELECT window_end FROM exports.jobs
WHERE schedule_id = %(schedule_id)s AND state IN ('succeeded', 'expired')
ORDER BY window_end DESC NULLS LAST
LIMIT 1;

-- name: next_due_schedule
-- The scheduler's plan: the database's clock, and when the next schedule is due.
SELECT clock_timestamp() AS now,
       (SELECT min(next_run_at) FROM exports.schedules WHERE enabled) AS next_run_at;

-- name: schedules_overdue
-- For /metrics: enabled schedules whose slot passed more than %(seconds)s ago unfired (no
-- poller running its scheduler, or all stuck). Reads the schedules_due index.
SELECT count(*) AS overdue FROM exports.schedules
WHERE enabled AND next_run_at < now() - make_interval(secs => %(seconds)s);
