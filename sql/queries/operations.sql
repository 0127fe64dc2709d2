-- Operator and maintenance queries (exports-admin, poller maintenance). Loaded by app/platform/db.py;
-- every block starts with "-- name: <query name>". State changes call the SQL functions
-- DBAs use from psql (sql/functions/), so there is one definition of each.

-- name: prune_outbox_batch
-- One batch of finished messages (done or dead) that ended before the cutoff. Oldest ids
-- first along the primary key, so a batch stops scanning once it has found enough; SKIP
-- LOCKED leaves alone any row a DBA is looking at FOR UPDATE.
WITH doomed AS (
    SELECT id FROM exports.outbox
    WHERE (done_at < %(cutoff)s OR dead_at < %(cutoff)s)
    ORDER BY id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED)
DELETE FROM exports.outbox o
USING doomed
WHERE o.id = doomed.id;

-- name: retry_job
-- The same function DBAs call (sql/functions/retry_job.sql). No row: not retryable.
SELECT * FROM exports.retry_job(%(id)s, %(max_attempts)s);

-- name: requeue_dead
-- The same function DBAs call (sql/functions/requeue_dead.sql): the revived messages.
SELECT * FROM exports.requeue_dead(%(topic)s, %(since)s, %(extra_attempts)s);

-- name: requeue_message
-- The same function DBAs call (sql/functions/retry_message.sql): one dead message (and its
-- job) back; no row when it is unknown or not dead.
SELECT * FROM exports.retry_message(%(id)s, %(extra_attempts)s);

-- name: queue_health
SELECT * FROM exports.queue_health ORDER BY topic;

-- name: tenant_queue_health
-- The tenants with the biggest backlogs first: who is flooding the queue.
SELECT * FROM exports.tenant_queue_health
ORDER BY ready DESC, leased DESC, tenant
LIMIT %(limit)s;

-- name: stuck_messages
SELECT * FROM exports.stuck ORDER BY id;

-- name: recent_failures
SELECT * FROM exports.recent_failures LIMIT %(limit)s;

-- name: job_timeline
SELECT * FROM exports.job_timeline WHERE job_id = %(id)s;

-- name: admin_job_messages
SELECT q.*, o.errors FROM exports.queue q JOIN exports.outbox o USING (id)
WHERE q.job_id = %(id)s ORDER BY q.id;

-- name: admin_jobs_by_state
-- Jobs created in the last `hours` hours, counted by state (a bounded scan on a big table).
SELECT state, count(*) AS jobs
FROM exports.jobs
WHERE created_at > now() - make_interval(hours => %(hours)s)
GROUP BY state ORDER BY state;

-- name: admin_list_jobs
-- Every tenant's jobs, newest first: the operator's view (the API's list_jobs is per tenant).
SELECT * FROM exports.jobs
WHERE (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(owner_id)s::text IS NULL OR owner_id = %(owner_id)s)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: admin_list_workers
SELECT id, hostname, pid, version, started_at, last_heartbeat_at,
       now() - last_heartbeat_at AS since_heartbeat, in_flight
FROM exports.workers ORDER BY last_heartbeat_at DESC;

-- name: admin_list_webhook_endpoints
-- Every tenant's webhook endpoints (or one tenant's), newest first; never the secrets.
SELECT id, tenant, url, events, enabled, disabled_reason, last_success_at, failing_since,
       created_at
FROM exports.webhook_endpoints
WHERE (%(tenant)s::text IS NULL OR tenant = %(tenant)s)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: admin_webhook_deliveries
-- Deliveries of every tenant, newest first, optionally of one state and endpoint.
SELECT d.id, e.tenant, d.endpoint_id, e.url, d.event_id, d.event_type, d.job_id, d.state,
       d.attempts, d.last_status_code, d.last_error, d.next_attempt_at, d.created_at
FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE (%(state)s::text IS NULL OR d.state = %(state)s)
  AND (%(endpoint_id)s::uuid IS NULL OR d.endpoint_id = %(endpoint_id)s)
ORDER BY d.created_at DESC, d.id DESC
LIMIT %(limit)s;

-- name: admin_delivery_tenant
SELECT e.tenant FROM exports.webhook_deliveries d
JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.id = %(id)s;
