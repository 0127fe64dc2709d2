"""Schema `exports`: jobs, the outbox work queue, and a DBA view over the queue.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE SCHEMA exports;
COMMENT ON SCHEMA exports IS 'Export jobs and their transactional outbox (see DESIGN.md).';

CREATE TABLE exports.jobs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant              text NOT NULL DEFAULT 'default',
    owner_id            text NOT NULL,
    kind                text NOT NULL,
    params              jsonb NOT NULL DEFAULT '{}'::jsonb,
    format              text NOT NULL CHECK (format IN ('csv', 'csv.gz')),
    notify_email        text,
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
                                         'cancelled', 'expired')),
    attempts            integer NOT NULL DEFAULT 0,
    idempotency_key     text,
    request_fingerprint text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    progress_rows       bigint NOT NULL DEFAULT 0,
    progress_bytes      bigint NOT NULL DEFAULT 0,
    result_key          text,
    result_rows         bigint,
    result_bytes        bigint,
    result_sha256       text,
    result_content_type text,
    expires_at          timestamptz,
    last_error          text,
    notified_at         timestamptz,
    email_message_id    text,
    email_status        text CHECK (email_status IN ('pending', 'sent', 'failed')),
    schedule_id         uuid,
    CONSTRAINT jobs_idempotency_key_unique UNIQUE (tenant, owner_id, idempotency_key),
    CONSTRAINT jobs_succeeded_has_result CHECK (state <> 'succeeded' OR result_key IS NOT NULL),
    CONSTRAINT jobs_finished_has_time
        CHECK (state IN ('queued', 'running') OR finished_at IS NOT NULL)
);
CREATE INDEX jobs_owner_newest ON exports.jobs (tenant, owner_id, created_at DESC, id DESC);
CREATE INDEX jobs_newest ON exports.jobs (tenant, created_at DESC, id DESC);

COMMENT ON TABLE exports.jobs IS
    'One row per export request. State changes are made by app/jobs.py only.';
COMMENT ON COLUMN exports.jobs.tenant IS 'The API client (app) that asked for the export.';
COMMENT ON COLUMN exports.jobs.owner_id IS
    'The end user whose data is exported; always bound into the export query.';
COMMENT ON COLUMN exports.jobs.kind IS 'Export kind: the file name of a query in sql/exports/.';
COMMENT ON COLUMN exports.jobs.params IS 'Validated parameters for the kind''s query.';
COMMENT ON COLUMN exports.jobs.state IS
    'queued -> running -> succeeded | failed; queued/running -> cancelled; succeeded -> expired.';
COMMENT ON COLUMN exports.jobs.attempts IS
    'Attempt number of the export.run message that last started this job; writes are fenced on it.';
COMMENT ON COLUMN exports.jobs.idempotency_key IS
    'Idempotency-Key header of the creating request; unique per tenant and owner.';
COMMENT ON COLUMN exports.jobs.request_fingerprint IS
    'sha256 of the canonical request body; a reused key with another body is a 409.';
COMMENT ON COLUMN exports.jobs.progress_rows IS 'Rows written so far by the running export.';
COMMENT ON COLUMN exports.jobs.progress_bytes IS 'Bytes uploaded so far by the running export.';
COMMENT ON COLUMN exports.jobs.result_key IS 'Storage key of the finished file.';
COMMENT ON COLUMN exports.jobs.result_sha256 IS
    'Hex sha256 of the stored object (after compression).';
COMMENT ON COLUMN exports.jobs.expires_at IS 'When the file and its download links stop working.';
COMMENT ON COLUMN exports.jobs.email_message_id IS
    'Message id the mail backend gave for the email.';
COMMENT ON COLUMN exports.jobs.email_status IS
    'pending: notify message queued; sent: delivered to the mail backend; failed: gave up.';
COMMENT ON COLUMN exports.jobs.schedule_id IS 'The schedule that created this job, if any.';

CREATE TABLE exports.outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text NOT NULL CHECK (topic IN ('export.run', 'export.notify')),
    job_id       uuid REFERENCES exports.jobs (id) ON DELETE CASCADE,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    visible_at   timestamptz NOT NULL DEFAULT now(),
    leased_by    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    dead_at      timestamptz,
    last_error   text,
    errors       jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(errors) = 'array'),
    CONSTRAINT outbox_done_or_dead CHECK (done_at IS NULL OR dead_at IS NULL)
) WITH (
    -- A hot queue: every claim, heartbeat and finish rewrites the row. Free space on each
    -- page lets those be HOT updates, and eager autovacuum keeps dead tuples from piling up.
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
CREATE INDEX outbox_claimable ON exports.outbox (visible_at, id)
    WHERE done_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_job ON exports.outbox (job_id);

COMMENT ON TABLE exports.outbox IS
    'Work queue. One row per step of a job; pollers claim rows with FOR UPDATE SKIP LOCKED.';
COMMENT ON COLUMN exports.outbox.topic IS 'Which handler runs it: export.run or export.notify.';
COMMENT ON COLUMN exports.outbox.attempts IS
    'Times claimed. Every write after a claim is fenced on it, so a poller whose lease lapsed '
    'cannot change anything.';
COMMENT ON COLUMN exports.outbox.visible_at IS
    'The lease: a claimed row is invisible until then; a crashed poller''s work reappears '
    'when it passes. For a failed row, when the next retry may start.';
COMMENT ON COLUMN exports.outbox.leased_by IS 'Poller holding (or that last held) the lease.';
COMMENT ON COLUMN exports.outbox.done_at IS 'Finished successfully (or nothing left to do).';
COMMENT ON COLUMN exports.outbox.dead_at IS 'Given up: permanent error or max_attempts reached.';
COMMENT ON COLUMN exports.outbox.errors IS 'History of failures: [{attempt, at, error}, ...].';

-- Wake pollers (LISTEN exports_outbox) whenever work is added, by the API or by hand.
CREATE FUNCTION exports.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exports_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON exports.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION exports.notify_outbox();

CREATE VIEW exports.queue AS
SELECT o.id, o.topic, o.job_id,
       CASE
           WHEN o.dead_at IS NOT NULL THEN 'dead'
           WHEN o.done_at IS NOT NULL THEN 'done'
           WHEN o.visible_at > now() AND o.leased_by IS NOT NULL THEN 'running'
           WHEN o.visible_at > now() THEN 'retry_wait'
           ELSE 'ready'
       END AS state,
       o.attempts, o.max_attempts, o.visible_at, o.leased_by, o.last_error,
       o.created_at, coalesce(o.done_at, o.dead_at) AS ended_at
FROM exports.outbox o;
COMMENT ON VIEW exports.queue IS
    'The outbox with a readable state: ready, running, retry_wait, done or dead.';
"""

DOWNGRADE = """
DROP SCHEMA exports CASCADE;
"""


def upgrade() -> None:
    """Create schema `exports`."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop schema `exports` and everything in it."""
    op.execute(DOWNGRADE)
