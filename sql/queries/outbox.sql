-- The outbox work queue. Loaded by app/platform/db.py; every block starts with "-- name: <query name>".
-- After a claim, every write is fenced on (id, attempts): zero rows updated means the lease
-- was lost to another poller and the caller must stop.

-- name: insert_message
-- The AFTER INSERT trigger NOTIFYs exports_outbox when the transaction commits. A job's
-- message carries the job's tenant, owner and priority label (a follow-up of a finished
-- export never waits behind newer work); a message without a job names its tenant.
INSERT INTO exports.outbox
    (topic, job_id, payload, max_attempts, tenant, owner_id, priority)
SELECT %(topic)s, %(job_id)s, %(payload)s, %(max_attempts)s,
       coalesce(j.tenant, %(tenant)s), j.owner_id, coalesce(j.priority, 'interactive')
FROM (SELECT) AS one LEFT JOIN exports.jobs j ON j.id = %(job_id)s
RETURNING id;

-- name: lock_for_tenant_limits
-- Taken first in a claim's transaction when any tenant's running exports are limited
-- (EXPORTS_MAX_RUNNING_PER_TENANT, or a row of exports.tenant_limits): claims then run one
-- at a time fleet-wide, so each one's count of what a tenant has leased includes every
-- claim committed before it (READ COMMITTED: the claim's own statement sees them). Without
-- limits nothing is taken and claims run side by side (SKIP LOCKED).
SELECT pg_advisory_xact_lock(hashtextextended('exports.claim', 0))
WHERE %(max_running)s > 0 OR EXISTS (SELECT FROM exports.tenant_limits WHERE max_running > 0);

-- name: claim_fair
-- The heart of the queue: lease up to `batch` ready messages nobody else holds, shared
-- round-robin across tenants (docs/decisions.md, "Fair claiming"). Short transaction; the
-- work happens outside it. Every step is index probes on outbox_tenant_turn (tenant, topic,
-- turn_at, id), a few per tenant looked at, never a scan of a tenant's backlog:
--   walk:       tenants with unfinished messages, in descending name order starting
--               below `after_tenant` (the poller's cursor, '' at first) and wrapping round:
--               a skip scan, one probe per tenant, read only as far as `tenants` needs.
--   tenants:    the first `batch` of them with something this claim may take, with it
--               (locked SKIP LOCKED): its first ready message of `topics` in turn order
--               (turn_at = visible_at + its priority's wait when queued), of a topic
--               without a limit or with room under the tenant's max_running
--               (topics.limited_per_tenant: what the tenant has leased is counted here, in
--               the statement).
--   more:       with fewer tenants than `batch`, each one's next messages up to its share,
--               ceil(batch / tenants) x weight, per topic; limited ones up to its room.
--   next:       round by round: each tenant's first message, then each one's second, ...
--               (`weight` a round); within a tenant, its owners take turns among its
--               share. The first `batch`.
-- A message that is claimable while still leased_by someone was not handed back: that
-- poller's lease ran out (killed, crashed, cut off), and the history records it.
-- The UPDATE changes no indexed column (turn_at stays while leased): a HOT update, no new
-- index entries; leased messages keep their place in the index and the probes' visible_at
-- test steps over them.
-- `topics` NULL: any topic; else only those (the poller prefetches fast topics only).
-- The columns are app.queue.outbox.Message's fields, in order (rows become Message(*row)).
WITH RECURSIVE
topic_rules AS MATERIALIZED (
    SELECT topic, limited_per_tenant AS limited FROM exports.topics
    WHERE %(topics)s::text[] IS NULL OR topic = ANY (%(topics)s::text[])),
walk (tenant, wrapped, step) AS (
    -- Downwards: a probe lands at the end of a tenant's range, among its newest entries,
    -- not at the start where the entries its claimed messages left behind wait for vacuum.
    SELECT %(after_tenant)s::text COLLATE "C", false, 0
  UNION ALL
    SELECT n.tenant, n.wrapped, w.step + 1
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT max(o.tenant) AS tenant FROM exports.outbox o
        WHERE o.done_at IS NULL AND o.dead_at IS NULL AND o.tenant < w.tenant) later
    CROSS JOIN LATERAL (
        SELECT CASE WHEN later.tenant IS NOT NULL THEN later.tenant
                    WHEN NOT w.wrapped THEN (
                        SELECT max(o.tenant) FROM exports.outbox o
                        WHERE o.done_at IS NULL AND o.dead_at IS NULL) END AS tenant,
               w.wrapped OR later.tenant IS NULL AS wrapped) n
    WHERE n.tenant IS NOT NULL AND NOT (n.wrapped AND n.tenant < %(after_tenant)s)),
tenants AS MATERIALIZED (
    -- Every subquery here has a LIMIT or OFFSET, so none is flattened into a join: per
    -- walked tenant, a few index probes, and the walk is read only as far as needed.
    SELECT w.tenant, share.weight, share.room, head.id AS head_id, head.owner_id AS head_owner,
           head.turn_at AS head_turn, head.topic AS head_topic
    FROM walk w
    CROSS JOIN LATERAL (
        SELECT coalesce(l.weight, 1) AS weight,
               -- Counted only when this claim may take a limited topic: the tenant's
               -- rows of exports.limited_leases whose lease still holds (no index on the
               -- outbox may name leased_by, or claims would not be HOT updates).
               CASE WHEN coalesce(l.max_running, %(max_running)s) > 0
                         AND EXISTS (SELECT FROM topic_rules WHERE limited) THEN
                   coalesce(l.max_running, %(max_running)s) - (
                       SELECT count(*) FROM exports.limited_leases k
                       JOIN exports.outbox r ON r.id = k.message_id
                       WHERE k.tenant = w.tenant AND r.attempts = k.attempts
                         AND r.leased_by IS NOT NULL AND r.visible_at > now()
                         AND r.done_at IS NULL AND r.dead_at IS NULL)
               END AS room
        FROM (SELECT) AS one
        LEFT JOIN exports.tenant_limits l ON l.tenant = w.tenant
        OFFSET 0) share
    -- Its first claimable message: the first of each topic it may take, the earliest wins.
    CROSS JOIN LATERAL (
        SELECT first.* FROM topic_rules r
        CROSS JOIN LATERAL (
            SELECT o.id, o.owner_id, o.turn_at, o.topic FROM exports.outbox o
            WHERE o.tenant = w.tenant AND o.topic = r.topic
              AND (NOT r.limited OR share.room IS NULL OR share.room > 0)
              AND o.done_at IS NULL AND o.dead_at IS NULL AND o.visible_at <= now()
            ORDER BY o.turn_at, o.id
            LIMIT 1
            FOR UPDATE SKIP LOCKED) first
        ORDER BY first.turn_at, first.id
        LIMIT 1) head
    WHERE w.step > 0
    LIMIT %(batch)s),
more AS MATERIALIZED (
    -- When tenants are fewer than `batch`: each one's share beyond its first message, per
    -- topic, limited topics no more than its room.
    SELECT o.id, t.tenant, o.owner_id, o.turn_at, t.weight
    FROM tenants t
    CROSS JOIN LATERAL (
        SELECT ceil(%(batch)s::numeric / (SELECT count(*) FROM tenants))::int * t.weight
            AS k) share
    CROSS JOIN topic_rules r
    CROSS JOIN LATERAL (
        SELECT o.id, o.owner_id, o.turn_at
        FROM exports.outbox o
        WHERE share.k > 1
          AND o.tenant = t.tenant AND o.topic = r.topic
          -- In the head's topic, start after the head: what lies before it is not ready.
          AND (o.turn_at, o.id) > (
              CASE WHEN r.topic = t.head_topic THEN t.head_turn ELSE '-infinity' END,
              CASE WHEN r.topic = t.head_topic THEN t.head_id ELSE 0 END)
          AND o.done_at IS NULL AND o.dead_at IS NULL AND o.visible_at <= now()
        ORDER BY o.turn_at, o.id
        LIMIT CASE WHEN r.limited AND t.room IS NOT NULL THEN greatest(0, least(share.k, t.room))
                   ELSE share.k END
              - CASE WHEN r.topic = t.head_topic THEN 1 ELSE 0 END
        FOR UPDATE SKIP LOCKED) o),
candidates AS (
    SELECT head_id AS id, tenant, head_owner AS owner_id, head_turn AS turn_at, weight
    FROM tenants
    UNION ALL
    SELECT * FROM more),
by_owner AS (
    SELECT id, tenant, turn_at, weight,
           row_number() OVER (PARTITION BY tenant, owner_id ORDER BY turn_at, id) AS owner_turn
    FROM candidates),
next AS MATERIALIZED (
    SELECT id, round FROM (
        SELECT id, turn_at,
               ceil(row_number() OVER (PARTITION BY tenant ORDER BY owner_turn, turn_at, id)
                    / weight::numeric) AS round
        FROM by_owner) ranked
    ORDER BY round, turn_at, id
    LIMIT %(batch)s),
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
WHERE o.id = ANY (ARRAY(SELECT id FROM next)) AND t.topic = o.topic
RETURNING o.id, o.topic, o.job_id, o.payload, o.attempts, o.max_attempts, t.deadline_seconds,
          o.tenant, o.turn_at, t.limited_per_tenant AS limited),
-- While any limit is in force, the leases of limited topics are noted for the count above,
-- and the notes of the tenants this claim takes from whose lease ended (done, retried,
-- handed back, lapsed) are forgotten, so a tenant's rows stay about what it runs now (an
-- ended note counts for nothing meanwhile; it goes when its tenant is claimed from again,
-- or with its outbox row). Without limits neither happens.
limits_in_force AS (
    SELECT %(max_running)s > 0 OR EXISTS (SELECT FROM exports.tenant_limits WHERE max_running > 0)
        AS yes),
forgotten AS (
    DELETE FROM exports.limited_leases k
    WHERE (SELECT yes FROM limits_in_force)
      AND k.tenant = ANY (ARRAY(SELECT tenant FROM tenants))
      AND k.message_id <> ALL (ARRAY(SELECT id FROM next))  -- noted anew below
      -- A subquery per note (a primary-key probe), not an anti-join over the outbox.
      AND (SELECT r.leased_by IS NOT NULL AND r.attempts = k.attempts
                  AND r.visible_at > now() AND r.done_at IS NULL AND r.dead_at IS NULL
           FROM exports.outbox r WHERE r.id = k.message_id
           LIMIT 1) IS NOT TRUE),
noted AS (
    INSERT INTO exports.limited_leases (message_id, tenant, attempts)
    SELECT id, tenant, attempts FROM claimed WHERE limited AND (SELECT yes FROM limits_in_force)
    ON CONFLICT (message_id) DO UPDATE SET attempts = excluded.attempts, leased_at = now())
-- In the order the round-robin chose (UPDATE ... RETURNING has no order of its own).
SELECT claimed.id, claimed.topic, claimed.job_id, claimed.payload, claimed.attempts,
       claimed.max_attempts, claimed.deadline_seconds, claimed.tenant
FROM claimed JOIN next USING (id) ORDER BY next.round, claimed.turn_at, claimed.id;

-- name: claim_fifo
-- First in, first out across everyone, ignoring tenants, priorities and limits: what
-- claims were before fair claiming, kept (EXPORTS_CLAIM_ORDER=fifo) as the reference the
-- noisy-neighbour benchmark measures fairness against. Not for production. The lease and
-- its columns as in claim_fair.
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
RETURNING o.id, o.topic, o.job_id, o.payload, o.attempts, o.max_attempts, t.deadline_seconds,
          o.tenant)
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
-- outbox_tenant_turn, and prepared (generic) plans then scan all of it (125 ms at 40k rows).
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
-- ones. Reads only the partial indexes' rows (outbox_tenant_turn, outbox_dead); every topic
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

-- name: tenant_queue_metrics
-- For /metrics: the `top` tenants by backlog (ready, then running) one by one, every other
-- tenant summed as 'other', so the label set stays bounded however many tenants there are.
WITH ranked AS (
    SELECT h.*, row_number() OVER (ORDER BY h.ready DESC, h.leased DESC, h.tenant) AS place
    FROM exports.tenant_queue_health h)
SELECT CASE WHEN place <= %(top)s THEN tenant ELSE 'other' END AS tenant,
       sum(ready)::bigint AS ready,
       sum(leased)::bigint AS running,
       sum(retrying)::bigint AS retry_wait,
       coalesce(extract(epoch FROM max(oldest_ready_age)), 0)::float8 AS oldest_ready_seconds
FROM ranked
GROUP BY 1
ORDER BY 1;
