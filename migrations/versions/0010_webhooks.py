"""Webhooks (issue 14): per-tenant endpoints, one delivery per event and endpoint, the
webhook.deliver topic, and the app's choice of channels per export (notify.webhook).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE exports.webhook_endpoints (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant                      text NOT NULL,
    url                         text NOT NULL CHECK (url ~ '^https?://'),
    description                 text NOT NULL DEFAULT '',
    events                      text[] NOT NULL,
    enabled                     boolean NOT NULL DEFAULT true,
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    disabled_reason             text,
    last_success_at             timestamptz,
    failing_since               timestamptz,
    idempotency_key             text,
    request_fingerprint         text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX webhook_endpoints_tenant
    ON exports.webhook_endpoints (tenant, created_at DESC, id DESC);
COMMENT ON TABLE exports.webhook_endpoints IS
    'Where a tenant''s app wants to be told that an export ended (POST /v1/webhook-endpoints). '
    'Changed by app/notifications/webhooks.py.';
COMMENT ON COLUMN exports.webhook_endpoints.events IS
    'Event types it receives: export.succeeded, export.failed, export.cancelled, export.expired.';
COMMENT ON COLUMN exports.webhook_endpoints.secret IS
    'The whsec_ signing secret (Standard Webhooks); shown to the app only when created or rotated.';
COMMENT ON COLUMN exports.webhook_endpoints.previous_secret IS
    'The secret before the last rotation: deliveries are signed with both until '
    'previous_secret_expires_at (24 h after the rotation).';
COMMENT ON COLUMN exports.webhook_endpoints.disabled_reason IS
    'Why the service disabled it (410 Gone, or failing for 5 days); NULL when the app did.';
COMMENT ON COLUMN exports.webhook_endpoints.failing_since IS
    'When deliveries started failing with no success since; 5 days of it disable the endpoint.';

CREATE TABLE exports.webhook_deliveries (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id       uuid NOT NULL REFERENCES exports.webhook_endpoints (id) ON DELETE CASCADE,
    event_id          text NOT NULL,
    event_type        text NOT NULL,
    job_id            uuid REFERENCES exports.jobs (id) ON DELETE CASCADE,
    payload           jsonb,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'succeeded', 'retrying', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_status_code  integer,
    last_error        text,
    last_duration_ms  integer,
    next_attempt_at   timestamptz DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_endpoint
    ON exports.webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_job ON exports.webhook_deliveries (job_id);
COMMENT ON TABLE exports.webhook_deliveries IS
    'One event to one endpoint: what is sent, and how sending it went. Each is delivered by '
    'a webhook.deliver outbox message queued in the transaction that ended the job.';
COMMENT ON COLUMN exports.webhook_deliveries.event_id IS
    'The webhook-id header: the same for every attempt (and a manual retry), the receiver''s '
    'deduplication key.';
COMMENT ON COLUMN exports.webhook_deliveries.payload IS
    'The body sent: {type, timestamp, data: the job as GET /v1/exports/{id} showed it}, '
    'rendered at the first attempt and sent unchanged by every later one (NULL until then).';
COMMENT ON COLUMN exports.webhook_deliveries.state IS
    'pending: not tried yet; retrying: failed, will try again at next_attempt_at; '
    'succeeded: a 2xx; failed: gave up (out of attempts, 410, or the endpoint is disabled).';

ALTER TABLE exports.jobs ADD COLUMN notify_webhook boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN exports.jobs.notify_webhook IS
    'Whether the tenant''s webhook endpoints hear of this job (notify.webhook in the request).';
ALTER TABLE exports.schedules ADD COLUMN notify_webhook boolean NOT NULL DEFAULT true;
COMMENT ON COLUMN exports.schedules.notify_webhook IS
    'notify.webhook of every job the schedule queues.';

INSERT INTO exports.topics (topic, deadline_seconds, description) VALUES
    ('webhook.deliver', 60,
     'POST one event to one webhook endpoint (10 s per request, then the retry schedule).');

-- Frozen copies of sql/views/webhook_failures.sql and sql/views/job_timeline.sql.
CREATE OR REPLACE VIEW exports.webhook_failures AS
SELECT d.id AS delivery_id, e.tenant, e.id AS endpoint_id, e.url, e.enabled,
       e.disabled_reason, d.event_id, d.event_type, d.job_id, d.state, d.attempts,
       d.last_status_code, d.last_error, d.next_attempt_at, d.created_at
FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.state IN ('retrying', 'failed')
ORDER BY d.created_at DESC, d.id DESC;

COMMENT ON VIEW exports.webhook_failures IS
    'Webhook deliveries that failed for good or are waiting to retry, newest first: which '
    'endpoint (and whether it is still enabled), which event, the last status and error.';

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
"""

DOWNGRADE = r"""
DROP VIEW exports.webhook_failures;
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
    'done/dead.';
COMMENT ON COLUMN exports.job_timeline.detail IS 'Error text, poller, or what was asked for.';
DELETE FROM exports.outbox WHERE topic = 'webhook.deliver';
DELETE FROM exports.topics WHERE topic = 'webhook.deliver';
ALTER TABLE exports.schedules DROP COLUMN notify_webhook;
ALTER TABLE exports.jobs DROP COLUMN notify_webhook;
DROP TABLE exports.webhook_deliveries;
DROP TABLE exports.webhook_endpoints;
"""


def upgrade() -> None:
    """Create the webhook tables and topic."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop them (and any undelivered webhook messages)."""
    op.execute(DOWNGRADE)
