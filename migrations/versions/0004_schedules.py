"""Recurring exports: exports.schedules, jobs.schedule_id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE exports.schedules (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant              text NOT NULL DEFAULT 'default',
    owner_id            text NOT NULL,
    kind                text NOT NULL,
    params              jsonb NOT NULL DEFAULT '{}'::jsonb,
    format              text NOT NULL,
    notify_email        text,
    cron                text NOT NULL,
    timezone            text NOT NULL,
    enabled             boolean NOT NULL DEFAULT true,
    next_run_at         timestamptz,
    last_run_at         timestamptz,
    last_job_id         uuid REFERENCES exports.jobs (id) ON DELETE SET NULL,
    idempotency_key     text,
    request_fingerprint text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_idempotency_key_unique UNIQUE (tenant, owner_id, idempotency_key),
    CONSTRAINT schedules_enabled_has_next_run CHECK (enabled = (next_run_at IS NOT NULL))
);
-- The scheduler's only hot query: "what is due, and when is the next one?"
CREATE INDEX schedules_due ON exports.schedules (next_run_at) WHERE enabled;
CREATE INDEX schedules_owner_newest
    ON exports.schedules (tenant, owner_id, created_at DESC, id DESC);
CREATE INDEX schedules_newest ON exports.schedules (tenant, created_at DESC, id DESC);

COMMENT ON TABLE exports.schedules IS
    'Recurring exports: each slot of cron (read in timezone) queues one job. Changed by '
    'app/schedules.py; fired by the pollers'' scheduler.';
COMMENT ON COLUMN exports.schedules.tenant IS 'The API client (app) that owns the schedule.';
COMMENT ON COLUMN exports.schedules.owner_id IS 'The end user whose data each job exports.';
COMMENT ON COLUMN exports.schedules.kind IS 'Export kind of every job (sql/exports/<kind>.sql).';
COMMENT ON COLUMN exports.schedules.params IS 'Validated parameters copied into every job.';
COMMENT ON COLUMN exports.schedules.format IS 'File format of every job (csv, csv.gz, ...).';
COMMENT ON COLUMN exports.schedules.notify_email IS
    'Where each job''s link is emailed; NULL: no email.';
COMMENT ON COLUMN exports.schedules.cron IS
    '5-field cron expression (minute hour day-of-month month day-of-week), local time.';
COMMENT ON COLUMN exports.schedules.timezone IS
    'IANA time zone the cron expression is read in, e.g. Europe/Berlin.';
COMMENT ON COLUMN exports.schedules.enabled IS
    'false: paused (next_run_at NULL). Re-enabling starts from the next slot, no catch-up.';
COMMENT ON COLUMN exports.schedules.next_run_at IS
    'UTC instant of the next slot to fire; due when <= now(). Missed slots fire once.';
COMMENT ON COLUMN exports.schedules.last_run_at IS 'UTC instant of the last slot fired.';
COMMENT ON COLUMN exports.schedules.last_job_id IS 'The job the last slot queued.';
COMMENT ON COLUMN exports.schedules.idempotency_key IS
    'Idempotency-Key of the creating request; unique per tenant and owner.';
COMMENT ON COLUMN exports.schedules.request_fingerprint IS
    'sha256 of the canonical creating request; a reused key with another body is a 409.';
COMMENT ON COLUMN exports.schedules.created_at IS 'When the schedule was created.';
COMMENT ON COLUMN exports.schedules.updated_at IS 'Last change by the API (not by firing).';

ALTER TABLE exports.jobs ADD CONSTRAINT jobs_schedule_fk
    FOREIGN KEY (schedule_id) REFERENCES exports.schedules (id) ON DELETE SET NULL;
CREATE INDEX jobs_schedule ON exports.jobs (schedule_id) WHERE schedule_id IS NOT NULL;

-- Wake the pollers' schedulers (LISTEN exports_schedules) when a schedule's timing may
-- have changed, so a schedule due sooner than they planned is not slept through.
CREATE FUNCTION exports.notify_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exports_schedules', '');
    RETURN NULL;
END $$;
COMMENT ON FUNCTION exports.notify_schedules() IS
    'Trigger function: NOTIFY exports_schedules (the pollers'' schedulers re-plan).';
CREATE TRIGGER schedules_notify AFTER INSERT OR UPDATE OF next_run_at, enabled
    ON exports.schedules FOR EACH STATEMENT EXECUTE FUNCTION exports.notify_schedules();

CREATE VIEW exports.schedules_local AS
SELECT s.id, s.tenant, s.owner_id, s.kind, s.format, s.cron, s.timezone, s.enabled,
       s.next_run_at AT TIME ZONE s.timezone AS next_run_local,
       s.last_run_at AT TIME ZONE s.timezone AS last_run_local,
       s.next_run_at, s.last_run_at, s.last_job_id, j.state AS last_job_state,
       s.notify_email, s.params, s.created_at, s.updated_at
FROM exports.schedules s
LEFT JOIN exports.jobs j ON j.id = s.last_job_id;
COMMENT ON VIEW exports.schedules_local IS
    'Schedules with their next and last run in their own time zone, and the last job''s state.';
"""

DOWNGRADE = r"""
DROP VIEW exports.schedules_local;
DROP TRIGGER schedules_notify ON exports.schedules;
DROP FUNCTION exports.notify_schedules();
DROP INDEX exports.jobs_schedule;
ALTER TABLE exports.jobs DROP CONSTRAINT jobs_schedule_fk;
DROP TABLE exports.schedules;
"""


def upgrade() -> None:
    """Create exports.schedules and tie jobs.schedule_id to it."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop exports.schedules; jobs keep their schedule_id values, unconstrained."""
    op.execute(DOWNGRADE)
