-- The outbox work queue. Loaded by app/platform/db.py; every block starts with "-- name: <query name>".
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
-- `topics` NULL: any topic; else only those (the poller prefetches fast topics only).
-- The columns are app.queue.outbox.Message's fields, in order (rows become Message(*row)).
WITH next AS MATERIALIZED (
    SELECT id, visible_at FROM exports.outbox
    WHERE done_at IS NULL AND dead_at IS NULL AND visible_at <= now()
      AND (%(topics)s::text[] IS NULL OR topic = ANY (%(topics)s::text[]))
    ORDER BY visible_at, id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED),
claimed AS (
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
FROM exports.topics t
-- = ANY (ARRAY(...)), not a join with `next`: the planner would hash-join a sequential scan
-- of the whole outbox (done rows included) instead of looking the ids up in the index.
WHERE o.id = ANY (ARRAY(SELECT id FROM next)) AND t.topic = o.topic
RETURNING o.id, o.topic, o.job_id, o.payload, o.attempts, o.max_attempts, t.deadline_seconds)
-- Oldest first, as they were queued (UPDATE ... RETURNING has no order of its own).
SELECT claimed.* FROM claimed JOIN next USING (id) ORDER BY next.visible_at, next.id;

-- name: hand_back_messages
-- Graceful shutdown: the poller returns what it could not finish, visible now. Handing
-- back is not a failure, so it does not use up an attempt (max_attempts grows by one);
-- the history says who handed it back. Only rows still leased by this worker: a message
-- whose attempt already recorded its outcome (a retry sets leased_by NULL) keeps that
-- outcome and its back-off. Each topic's handler then undoes its own "running" state.
UPDATE exports.outbox o
SET visible_at = now(),
    leased_by = NULL,
    max_attempts = o.max_attempts + 1,
    last_error = 'handed back at shutdown by ' || o.leased_by,
    errors = o.errors || jsonb_build_object(
        'attempt', o.attempts, 'at', now(),
        'error', 'handed back at shutdown by ' || o.leased_by)
FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[]) AS held (id, attempts)
WHERE o.id = held.id AND o.attempts = held.attempts AND o.leased_by = %(worker)s
  AND o.done_at IS NULL AND o.dead_at IS NULL
RETURNING o.id;

-- name: extend_leases
-- Heartbeat: one statement for every message a poller has in flight. Returns the ids
-- still ours (same attempt): a missing id was re-claimed or killed by hand (dead). A
-- message that finished under our attempt while the heartbeat ran is still ours, not lost.
-- The only path is `id = ANY (ids)` through the primary key, and each row's attempt is
-- looked up by position: a join with unnest() gets (generic, prepared) plans that scan the
-- whole outbox. Both this and complete_messages visit the rows through the same index in
-- the same order, so the two multi-row updates wait for each other rather than deadlock.
UPDATE exports.outbox o
SET visible_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE o.id = ANY (%(ids)s::bigint[])
  AND o.attempts = (%(attempts)s::integer[])[array_position(%(ids)s::bigint[], o.id)]
  AND o.dead_at IS NULL
RETURNING o.id;

-- name: complete_message
UPDATE exports.outbox
SET done_at = now()
WHERE id = %(id)s AND attempts = %(attempt)s AND done_at IS NULL AND dead_at IS NULL
RETURNING id;

-- name: complete_messages
-- Batch completion: every message still held under the attempt we claimed is done, in one
-- statement. Returns the ids completed; a missing id was re-claimed (lease lost) or killed.
-- Primary-key lookups only (see extend_leases); the fence is re-checked on a
-- row that another transaction changed meanwhile. `coalesce(done_at, dead_at) IS NULL`, not
-- `done_at IS NULL AND dead_at IS NULL`: the latter matches the partial index
-- outbox_claimable, and prepared (generic) plans then scan all of it (125 ms at 40k rows).
UPDATE exports.outbox o
SET done_at = now()
WHERE o.id = ANY (%(ids)s::bigint[])
  AND o.attempts = (%(attempts)s::integer[])[array_position(%(ids)s::bigint[], o.id)]
  AND coalesce(o.done_at, o.dead_at) IS NULL
RETURNING o.id;

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

-- name: queue_metrics
-- For /metrics (cached a few seconds per process): per topic, unfinished messages by state
-- (ready, running, retry_wait), the age of the oldest ready one (queue lag) and the dead
-- ones. Reads only the partial indexes' rows (outbox_claimable, outbox_dead); every topic
-- of exports.topics gets a row, so an idle topic reports 0 rather than nothing.
SELECT t.topic,
       coalesce(u.ready, 0) AS ready,
       coalesce(u.running, 0) AS running,
       coalesce(u.retry_wait, 0) AS retry_wait,
       coalesce(u.oldest_ready_seconds, 0) AS oldest_ready_seconds,
       coalesce(d.dead, 0) AS dead
FROM exports.topics t
LEFT JOIN (
    SELECT topic,
           count(*) FILTER (WHERE visible_at <= now()) AS ready,
           count(*) FILTER (WHERE visible_at > now() AND leased_by IS NOT NULL) AS running,
           count(*) FILTER (WHERE visible_at > now() AND leased_by IS NULL) AS retry_wait,
           extract(epoch FROM now() - min(visible_at) FILTER (WHERE visible_at <= now()))::float8
               AS oldest_ready_seconds
    FROM exports.outbox
    WHERE done_at IS NULL AND dead_at IS NULL
    GROUP BY topic
) u USING (topic)
LEFT JOIN (
    SELECT topic, count(*) AS dead FROM exports.outbox WHERE dead_at IS NOT NULL GROUP BY topic
) d USING (topic)
ORDER BY t.topic;
