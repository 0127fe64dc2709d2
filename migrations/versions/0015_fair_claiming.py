"""Fair to every tenant (issue 17): outbox rows carry their tenant, owner and priority so a
claim can take ready work round-robin across tenants, in each tenant's priority order, and
keep a tenant's running exports under its limit (exports.tenant_limits).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Seconds only, so the sum does not depend on TimeZone: immutable, usable in a generated column.
CREATE OR REPLACE FUNCTION exports.plus_seconds(at timestamptz, seconds integer)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN at + make_interval(secs => seconds);
COMMENT ON FUNCTION exports.plus_seconds(timestamptz, integer) IS
    'at + seconds (immutable: a whole number of seconds does not depend on the time zone).';

ALTER TABLE exports.jobs
    ADD COLUMN priority text NOT NULL DEFAULT 'interactive'
        CONSTRAINT jobs_priority_check CHECK (priority IN ('interactive', 'scheduled', 'bulk'));
COMMENT ON COLUMN exports.jobs.priority IS
    'interactive (API requests), scheduled (fired by a schedule) or bulk (asked for by the '
    'request, for backfills): the order within the tenant''s line, with aging.';

-- COLLATE "C" (byte order): the claim's walk compares tenant names in the database and the
-- poller's cursor compares them in Python; under a linguistic collation (en_US: 'ab' <
-- 'a-c', but 'a-c' < 'ab' by bytes) the two orders would disagree and the rotation skip
-- or repeat tenants.
ALTER TABLE exports.outbox
    ADD COLUMN tenant text COLLATE "C" NOT NULL DEFAULT 'default',
    ADD COLUMN owner_id text,
    ADD COLUMN priority text NOT NULL DEFAULT 'interactive'
        CONSTRAINT outbox_priority_check CHECK (priority IN ('interactive', 'scheduled', 'bulk')),
    ADD COLUMN priority_wait_seconds integer NOT NULL DEFAULT 0
        CONSTRAINT outbox_priority_wait_seconds_check CHECK (priority_wait_seconds >= 0),
    ADD COLUMN turn_at timestamptz
        GENERATED ALWAYS AS (exports.plus_seconds(visible_at, priority_wait_seconds)) STORED;

UPDATE exports.outbox o SET tenant = j.tenant, owner_id = j.owner_id
FROM exports.jobs j WHERE j.id = o.job_id;
UPDATE exports.outbox o SET tenant = e.tenant
FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE o.job_id IS NULL AND o.topic = 'webhook.deliver'
  AND d.id = (o.payload ->> 'delivery_id')::bigint;
-- The default stays for the previous release's API and pollers, which insert messages
-- without a tenant until the deploy has replaced them (deploy/README.md: each migration
-- must allow that); this code always names it. A later migration can drop it.

COMMENT ON COLUMN exports.outbox.tenant IS
    'The tenant whose work this is (its job''s, or its webhook endpoint''s): claims take ready '
    'messages round-robin across tenants. Byte order (COLLATE "C").';
COMMENT ON COLUMN exports.outbox.owner_id IS
    'Its job''s owner (NULL without a job): within a tenant, claims alternate between owners.';
COMMENT ON COLUMN exports.outbox.priority IS 'Its job''s priority (interactive without a job).';
COMMENT ON COLUMN exports.outbox.priority_wait_seconds IS
    'How far behind interactive work the priority puts it, fixed when queued: 0, '
    'EXPORTS_PRIORITY_MAX_WAIT/2 for scheduled, EXPORTS_PRIORITY_MAX_WAIT for bulk (only '
    'for export.run; notifications of a finished export never wait).';
COMMENT ON COLUMN exports.outbox.turn_at IS
    'visible_at + priority_wait_seconds: the order within the tenant. A bulk message waits '
    'behind newer interactive ones for at most its priority_wait_seconds (aging).';

-- The fair claim walks tenants (skip scan on the leading column) and takes each tenant's
-- ready messages of each topic in turn order.
CREATE INDEX outbox_tenant_turn ON exports.outbox (tenant, topic, turn_at, id)
    WHERE done_at IS NULL AND dead_at IS NULL;
-- It replaces the first-in-first-out claim's index: one index less to update per claim.
-- Whatever reads all unfinished messages (queue_health, the metrics) reads this one.
DROP INDEX exports.outbox_claimable;
-- What a tenant has leased now, counted against its max_running at every claim.
CREATE INDEX outbox_leased ON exports.outbox (tenant)
    WHERE leased_by IS NOT NULL AND done_at IS NULL AND dead_at IS NULL;

ALTER TABLE exports.topics ADD COLUMN limited_per_tenant boolean NOT NULL DEFAULT false;
UPDATE exports.topics SET limited_per_tenant = true WHERE topic = 'export.run';
COMMENT ON COLUMN exports.topics.limited_per_tenant IS
    'Its leased messages count against a tenant''s max_running (exports.tenant_limits, '
    'EXPORTS_MAX_RUNNING_PER_TENANT): true for export.run only.';

CREATE TABLE exports.tenant_limits (
    tenant text COLLATE "C" PRIMARY KEY,  -- as exports.outbox.tenant, which it is joined to
    max_running integer CONSTRAINT tenant_limits_max_running_check CHECK (max_running >= 0),
    weight integer NOT NULL DEFAULT 1
        CONSTRAINT tenant_limits_weight_check CHECK (weight BETWEEN 1 AND 100),
    note text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE exports.tenant_limits IS
    'Per-tenant overrides of how pollers share work; a tenant without a row gets the defaults. '
    'Takes effect at the next claim: UPDATE it to slow a tenant down or to speed it up.';
COMMENT ON COLUMN exports.tenant_limits.max_running IS
    'Most export.run messages of the tenant leased at once, over every poller; NULL: '
    'EXPORTS_MAX_RUNNING_PER_TENANT; 0: no limit.';
COMMENT ON COLUMN exports.tenant_limits.weight IS
    'Messages the tenant gets per round of the round-robin (1 to 100; default 1).';
COMMENT ON COLUMN exports.tenant_limits.note IS 'Why the override exists (who asked, ticket).';
COMMENT ON COLUMN exports.tenant_limits.updated_at IS 'When the row was last changed.';
"""

# Frozen copy of sql/views/tenant_queue_health.sql as of this migration.
TENANT_QUEUE_HEALTH = r"""
CREATE OR REPLACE VIEW exports.tenant_queue_health AS
SELECT o.tenant,
       count(*) FILTER (WHERE o.visible_at <= now()) AS ready,
       count(*) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NOT NULL) AS leased,
       count(*) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NOT NULL
                          AND t.limited_per_tenant) AS running,
       count(*) FILTER (WHERE o.visible_at > now() AND o.leased_by IS NULL) AS retrying,
       now() - min(o.visible_at) FILTER (WHERE o.visible_at <= now()) AS oldest_ready_age,
       l.max_running,
       coalesce(l.weight, 1) AS weight
FROM exports.outbox o
JOIN exports.topics t ON t.topic = o.topic
LEFT JOIN exports.tenant_limits l ON l.tenant = o.tenant
WHERE o.done_at IS NULL AND o.dead_at IS NULL
GROUP BY o.tenant, l.max_running, l.weight;

COMMENT ON VIEW exports.tenant_queue_health IS
    'Per tenant with unfinished messages: its backlog, what it runs now and its limits. '
    'Which tenant floods the queue: SELECT * FROM exports.tenant_queue_health '
    'ORDER BY ready DESC LIMIT 10;';
COMMENT ON COLUMN exports.tenant_queue_health.ready IS
    'Unfinished and visible: waiting for a poller (or for the tenant''s max_running).';
COMMENT ON COLUMN exports.tenant_queue_health.leased IS
    'Claimed by a poller whose lease still holds (every topic).';
COMMENT ON COLUMN exports.tenant_queue_health.running IS
    'Leased messages of limited topics (export.run): what max_running counts.';
COMMENT ON COLUMN exports.tenant_queue_health.retrying IS
    'Failed, waiting for its back-off to pass.';
COMMENT ON COLUMN exports.tenant_queue_health.oldest_ready_age IS
    'How long the tenant''s oldest ready message has waited.';
COMMENT ON COLUMN exports.tenant_queue_health.max_running IS
    'The tenant''s override (exports.tenant_limits); NULL: EXPORTS_MAX_RUNNING_PER_TENANT.';
COMMENT ON COLUMN exports.tenant_queue_health.weight IS 'Its share per round of the round-robin.';
"""

# Frozen copy of sql/functions/retry_job.sql as of this migration: the new message carries
# the job's tenant, owner and priority (an operator's retry does not wait behind others).
RETRY_JOB = r"""
CREATE OR REPLACE FUNCTION exports.retry_job(job_id uuid, max_attempts integer DEFAULT NULL)
RETURNS SETOF exports.jobs LANGUAGE sql AS $$
    -- Retryable: 'failed' (gave up) and 'cancelled' (undo a cancel, e.g. one made during an
    -- incident) -- and only once the job's export.run messages have all settled, so a
    -- cancelled export a poller is still stopping is refused until it has stopped.
    -- Not retryable: 'queued'/'running' (already going), 'succeeded'/'expired' (done: a new
    -- export is a new request through the API).
    --
    -- The job goes back to 'queued' with a fresh export.run message, as a new request
    -- would. The message starts counting at the job's attempt number, so the attempt fence
    -- (jobs.attempts only grows) holds: no poller of an earlier run can take the job back.
    -- It keeps the job's tenant, owner and priority label but does not wait behind newer
    -- work: someone asked for it again. A failure email still waiting to go out no longer
    -- applies and is withdrawn. Returns the re-queued job; no row when the job does not
    -- exist or is not retryable.
    WITH job AS (
        UPDATE exports.jobs j
        SET state = 'queued', finished_at = NULL, email_status = NULL,
            progress_rows = 0, progress_bytes = 0
        WHERE j.id = retry_job.job_id
          AND j.state IN ('failed', 'cancelled')
          AND NOT EXISTS (
              SELECT FROM exports.outbox o
              WHERE o.job_id = j.id AND o.topic = 'export.run'
                AND o.done_at IS NULL AND o.dead_at IS NULL)
        RETURNING j.*),
    withdrawn AS (
        UPDATE exports.outbox o
        SET done_at = now()
        FROM job
        WHERE o.job_id = job.id AND o.topic = 'export.notify'
          AND o.done_at IS NULL AND o.dead_at IS NULL
        RETURNING o.id),
    queued AS (
        INSERT INTO exports.outbox
            (topic, job_id, attempts, max_attempts, tenant, owner_id, priority)
        SELECT 'export.run', job.id, job.attempts,
               job.attempts + coalesce(retry_job.max_attempts, 5),
               job.tenant, job.owner_id, job.priority
        FROM job
        RETURNING id)
    SELECT * FROM job;
$$;

COMMENT ON FUNCTION exports.retry_job(uuid, integer) IS
    'Run a failed or cancelled export again (back to queued, a fresh export.run message with '
    'max_attempts tries, default 5); returns the job, or no row if it is not retryable: '
    'SELECT * FROM exports.retry_job(''<job id>'');';
"""

# 0005's exports.retry_job, restored by downgrade.
RETRY_JOB_0005 = RETRY_JOB.replace(
    """        INSERT INTO exports.outbox
            (topic, job_id, attempts, max_attempts, tenant, owner_id, priority)
        SELECT 'export.run', job.id, job.attempts,
               job.attempts + coalesce(retry_job.max_attempts, 5),
               job.tenant, job.owner_id, job.priority""",
    """        INSERT INTO exports.outbox (topic, job_id, attempts, max_attempts)
        SELECT 'export.run', job.id, job.attempts,
               job.attempts + coalesce(retry_job.max_attempts, 5)""",
)

DOWNGRADE = r"""
CREATE INDEX outbox_claimable ON exports.outbox (visible_at, id)
    WHERE done_at IS NULL AND dead_at IS NULL;
DROP VIEW exports.tenant_queue_health;
DROP TABLE exports.tenant_limits;
ALTER TABLE exports.topics DROP COLUMN limited_per_tenant;
ALTER TABLE exports.outbox
    DROP COLUMN turn_at, DROP COLUMN priority_wait_seconds, DROP COLUMN priority,
    DROP COLUMN owner_id, DROP COLUMN tenant;
ALTER TABLE exports.jobs DROP COLUMN priority;
DROP FUNCTION exports.plus_seconds(timestamptz, integer);
"""


def upgrade() -> None:
    """Add tenants, owners and priorities to the outbox; limits; the per-tenant view."""
    op.execute(UPGRADE)
    op.execute(TENANT_QUEUE_HEALTH)
    op.execute(RETRY_JOB)


def downgrade() -> None:
    """Back to first-in-first-out claiming across everyone."""
    op.execute(RETRY_JOB_0005)
    op.execute(DOWNGRADE)
