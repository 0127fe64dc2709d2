-- The worker registry (exports.workers): which pollers are alive, and what they hold.
-- Loaded by app/platform/db.py; every block starts with "-- name: <query name>".

-- name: register_worker
-- A poller starting. Re-registering the same id (it never happens by design: ids carry a
-- random part) just refreshes the row.
INSERT INTO exports.workers (id, hostname, pid, version, started_at, last_heartbeat_at, in_flight)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(version)s, %(started_at)s, now(), %(in_flight)s)
ON CONFLICT (id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, version = EXCLUDED.version,
    started_at = EXCLUDED.started_at, last_heartbeat_at = now(), in_flight = EXCLUDED.in_flight
RETURNING id;

-- name: worker_heartbeat
-- A sign of life. An upsert, so a poller whose row is gone comes back by itself: the table
-- is UNLOGGED (emptied by a PostgreSQL crash) and maintenance removes pollers that were
-- silent for long (e.g. cut off from the database).
INSERT INTO exports.workers (id, hostname, pid, version, started_at, last_heartbeat_at, in_flight)
VALUES (%(id)s, %(hostname)s, %(pid)s, %(version)s, %(started_at)s, now(), %(in_flight)s)
ON CONFLICT (id) DO UPDATE
SET last_heartbeat_at = now(), in_flight = EXCLUDED.in_flight
RETURNING id;

-- name: deregister_worker
-- A clean stop.
DELETE FROM exports.workers WHERE id = %(id)s RETURNING id;

-- name: delete_stale_workers
-- Maintenance: pollers silent for `stale_seconds` died without deregistering (killed, OOM,
-- host lost). Their leases have long lapsed; the row would only mislead.
DELETE FROM exports.workers
WHERE last_heartbeat_at < now() - make_interval(secs => %(stale_seconds)s)
RETURNING id;

-- name: try_maintenance_lock
-- One maintenance run at a time across every poller: a transaction-level advisory lock,
-- released by commit, rollback or a lost connection (a killed poller holds nothing).
SELECT pg_try_advisory_xact_lock(hashtextextended('exports.maintenance', 0)) AS acquired;
