-- The outbox work queue. Loaded by app/db.py; every block starts with "-- name: <query name>".
-- After a claim, every write is fenced on (id, attempts): zero rows updated means the lease
-- was lost to another poller and the caller must stop.

-- name: insert_message
-- The AFTER INSERT trigger NOTIFYs exports_outbox when the transaction commits.
INSERT INTO exports.outbox (topic, job_id, payload, max_attempts)
VALUES (%(topic)s, %(job_id)s, %(payload)s, %(max_attempts)s)
RETURNING id;

-- name: claim_batch
-- The heart of the queue: take up to `batch` ready messages nobody else holds and lease
-- them (visible_at moves into the future). Short transaction; the work happens outside it.
-- A message that is claimable while still leased_by someone was not handed back: that
-- poller's lease ran out (killed, crashed, cut off), and the history records it.
WITH next AS MATERIALIZED (
    SELECT id FROM exports.outbox
    WHERE done_at IS NULL AND dead_at IS NULL AND visible_at <= now()
    ORDER BY visible_at, id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED)
UPDATE exports.outbox o
SET attempts = o.attempts + 1,
    visible_at = now() + make_interval(secs => %(lease_seconds)s),
    leased_by = %(worker)s,
    claimed_at = now(),
    last_error = CASE WHEN o.leased_by IS NULL THEN o.last_error
                      ELSE 'lease expired: ' || o.leased_by || ' stopped heartbeating' END,
    errors = CASE WHEN o.leased_by IS NULL THEN o.errors
                  ELSE o.errors || jsonb_build_object(
                      'attempt', o.attempts, 'at', o.visible_at,
                      'error', 'lease expired: ' || o.leased_by || ' stopped heartbeating') END
FROM next, exports.topics t
WHERE o.id = next.id AND t.topic = o.topic
RETURNING o.id, o.topic, o.job_id, o.payload, o.attempts, o.max_attempts, t.deadline_seconds;

-- name: extend_leases
-- Heartbeat: one statement for every message a poller has in flight. Returns the ids
-- still ours (same attempt): a missing id was re-claimed or killed by hand (dead). A
-- message that finished under our attempt while the heartbeat ran is still ours, not lost.
UPDATE exports.outbox o
SET visible_at = now() + make_interval(secs => %(lease_seconds)s)
FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS held (id, attempts)
WHERE o.id = held.id AND o.attempts = held.attempts AND o.dead_at IS NULL
RETURNING o.id;

-- name: complete_message
UPDATE exports.outbox
SET done_at = now()
WHERE id = %(id)s AND attempts = %(attempt)s AND done_at IS NULL AND dead_at IS NULL
RETURNING id;

-- name: retry_message
-- Transient failure: record it and make the message visible again after a back-off.
UPDATE exports.outbox
SET visible_at = now() + make_interval(secs => %(delay_seconds)s),
    leased_by = NULL,
    last_error = %(error)s,
    errors = errors || jsonb_build_object('attempt', attempts, 'at', now(), 'error', %(error)s::text)
WHERE id = %(id)s AND attempts = %(attempt)s AND done_at IS NULL AND dead_at IS NULL
RETURNING id;

-- name: bury_message
-- Permanent failure or attempts exhausted: the message is dead and stays for inspection.
UPDATE exports.outbox
SET dead_at = now(),
    last_error = %(error)s,
    errors = errors || jsonb_build_object('attempt', attempts, 'at', now(), 'error', %(error)s::text)
WHERE id = %(id)s AND attempts = %(attempt)s AND done_at IS NULL AND dead_at IS NULL
RETURNING id;

-- name: queue_gauges
-- For /metrics: unfinished messages by topic and readable state (uses outbox_claimable).
SELECT topic,
       CASE WHEN visible_at <= now() THEN 'ready'
            WHEN leased_by IS NOT NULL THEN 'running'
            ELSE 'retry_wait' END AS state,
       count(*) AS messages
FROM exports.outbox
WHERE done_at IS NULL AND dead_at IS NULL
GROUP BY 1, 2;

-- name: queue_lag
SELECT topic, extract(epoch FROM now() - min(visible_at)) AS seconds
FROM exports.outbox
WHERE done_at IS NULL AND dead_at IS NULL AND visible_at <= now()
GROUP BY topic;

-- name: dead_messages
SELECT topic, count(*) AS messages FROM exports.outbox WHERE dead_at IS NOT NULL GROUP BY topic;
