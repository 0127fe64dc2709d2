-- exports.job_timeline: everything that happened to one job, in order.
--   SELECT * FROM exports.job_timeline WHERE job_id = '...';
-- The filter on job_id reaches every branch of the UNION, so this reads one job's rows.
-- The current definition (created by migration 0005, last changed by 0010).
-- A database changes only through migrations: to change this, edit it here and run the
-- new text from a new migration (tests/integration/test_schema.py checks they agree).
CREATE OR REPLACE VIEW exports.job_timeline AS
SELECT job_id, at, message_id, topic, attempt, event, detail
FROM (
    SELECT j.id AS job_id, j.created_at AS at, NULL::bigint AS message_id, NULL::text AS topic,
           NULL::integer AS attempt, 'job created' AS event,
           j.kind || ' as ' || j.format || ' for ' || j.owner_id AS detail, 1 AS seq
    FROM exports.jobs j
    UNION ALL
    SELECT j.id, j.started_at, NULL, NULL, j.attempts, 'job started', NULL, 2
    FROM exports.jobs j WHERE j.started_at IS NOT NULL
    UNION ALL
    SELECT j.id, j.finished_at, NULL, NULL, j.attempts, 'job ' || j.state, j.last_error, 8
    FROM exports.jobs j WHERE j.finished_at IS NOT NULL
    UNION ALL
    SELECT j.id, j.notified_at, NULL, NULL, NULL, 'email sent', j.email_message_id, 9
    FROM exports.jobs j WHERE j.notified_at IS NOT NULL
    UNION ALL
    SELECT o.job_id, o.created_at, o.id, o.topic, NULL, 'message queued', NULL, 3
    FROM exports.outbox o
    UNION ALL
    SELECT o.job_id, o.claimed_at, o.id, o.topic, o.attempts, 'last claimed',
           'by ' || o.leased_by, 4
    FROM exports.outbox o WHERE o.claimed_at IS NOT NULL
    UNION ALL
    -- The error history: one row per {attempt, at, error}.
    SELECT o.job_id, (e ->> 'at')::timestamptz, o.id, o.topic, (e ->> 'attempt')::integer,
           'failed', e ->> 'error', 5
    FROM exports.outbox o CROSS JOIN LATERAL jsonb_array_elements(o.errors) AS e
    UNION ALL
    SELECT o.job_id, o.done_at, o.id, o.topic, o.attempts, 'message done', NULL, 6
    FROM exports.outbox o WHERE o.done_at IS NOT NULL
    UNION ALL
    SELECT o.job_id, o.dead_at, o.id, o.topic, o.attempts, 'message dead', o.last_error, 7
    FROM exports.outbox o WHERE o.dead_at IS NOT NULL
    UNION ALL
    -- Webhook deliveries: how the last attempt to each endpoint went.
    SELECT d.job_id, coalesce(d.delivered_at, d.created_at), NULL, 'webhook.deliver',
           d.attempts, 'webhook ' || d.state,
           d.event_type || ' to ' || e.url
           || coalesce(' (' || d.last_status_code || ')', '')
           || coalesce(': ' || d.last_error, ''), 10
    FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
) AS events
ORDER BY at, seq, message_id;

COMMENT ON VIEW exports.job_timeline IS
    'One job''s history, oldest first: the job''s own events and each of its outbox '
    'messages (queued, last claimed, every failure from outbox.errors, done or dead). '
    'Use: SELECT * FROM exports.job_timeline WHERE job_id = ''<job id>''. Messages pruned '
    'by maintenance are gone from it.';
COMMENT ON COLUMN exports.job_timeline.message_id IS 'The outbox message; NULL for job events.';
COMMENT ON COLUMN exports.job_timeline.attempt IS 'Attempt the event belongs to, where known.';
COMMENT ON COLUMN exports.job_timeline.event IS
    'job created/started/<final state>, email sent, message queued/last claimed/failed/'
    'done/dead, webhook pending/succeeded/retrying/failed.';
COMMENT ON COLUMN exports.job_timeline.detail IS 'Error text, poller, or what was asked for.';
