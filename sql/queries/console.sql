-- What the operator console (app/http/console.py) reads and writes beyond the DBA views and
-- functions: job pages across tenants, the overview's chart, the audit log. State changes
-- go through the same SQL functions the CLI and DBAs use (operations.sql).

-- name: console_jobs
-- One page of every tenant's jobs, newest first, filtered; keyset paging on (created_at,
-- id) below `before_created_at`/`before_id` (NULL: the first page), as list_jobs. Unset filters are NULL; the
-- plan is made for the values given (custom plans), so a set filter uses its index.
SELECT id, tenant, owner_id, kind, format, state, priority, attempts, created_at,
       finished_at, schedule_id, last_error
FROM exports.jobs
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
  AND (%(owner_id)s::text IS NULL OR owner_id = %(owner_id)s)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(schedule_id)s::uuid IS NULL OR schedule_id = %(schedule_id)s)
  AND (%(before_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: console_job_deliveries
-- The webhook deliveries of one job, oldest first, with their endpoint's URL.
SELECT d.id, e.url, d.event_type, d.state, d.attempts, d.last_status_code, d.last_error,
       d.next_attempt_at, d.created_at, d.delivered_at
FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.job_id = %(id)s
ORDER BY d.id;

-- name: console_finished_per_minute
-- Jobs that ended in each of the last 60 minutes (succeeded, failed), a row per minute
-- including the empty ones: the overview's chart. Reads the jobs_finished index.
SELECT m.minute,
       count(j.id) FILTER (WHERE j.state IN ('succeeded', 'expired')) AS succeeded,
       count(j.id) FILTER (WHERE j.state = 'failed') AS failed
FROM generate_series(date_trunc('minute', now()) - interval '59 minutes',
                     date_trunc('minute', now()), interval '1 minute') AS m (minute)
LEFT JOIN exports.jobs j
       ON j.finished_at >= m.minute AND j.finished_at < m.minute + interval '1 minute'
GROUP BY m.minute
ORDER BY m.minute;

-- name: console_dead_by_topic
-- Dead messages per topic: how many, and the oldest and newest death.
SELECT topic, count(*) AS dead, min(dead_at) AS first_dead_at, max(dead_at) AS last_dead_at
FROM exports.outbox WHERE dead_at IS NOT NULL
GROUP BY topic ORDER BY topic;

-- name: console_schedules
-- Every tenant's schedules with their last job, soonest next run first.
SELECT s.*, last.id AS last_job_id, last.state AS last_job_state,
       last.created_at AS last_job_at
FROM exports.schedules s
LEFT JOIN LATERAL (
    SELECT j.id, j.state, j.created_at FROM exports.jobs j
    WHERE j.schedule_id = s.id ORDER BY j.created_at DESC LIMIT 1) last ON true
ORDER BY s.next_run_at NULLS LAST, s.created_at
LIMIT %(limit)s;

-- name: record_operator_action
INSERT INTO exports.operator_actions
    (operator_key_prefix, operator_name, action, target, result)
VALUES (%(key_prefix)s, %(name)s, %(action)s, %(target)s, %(result)s)
RETURNING *;

-- name: operator_actions
-- The audit log, newest first.
SELECT * FROM exports.operator_actions ORDER BY at DESC, id DESC LIMIT %(limit)s;

-- name: operator_key
-- An operator session's key, if it still opens the console (not revoked, still operator).
SELECT key_prefix, name FROM exports.api_clients
WHERE key_prefix = %(key_prefix)s AND role = 'operator' AND revoked_at IS NULL;

-- name: console_schedule_tenant
SELECT tenant FROM exports.schedules WHERE id = %(id)s;

-- name: console_job_message
SELECT id FROM exports.outbox WHERE id = %(id)s AND job_id = %(job_id)s;
