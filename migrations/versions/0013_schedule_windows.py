"""Time windows and end conditions (issue 16): a windowed kind's jobs carry the window they
export; schedules say how their windows are cut (each slot's period, or everything since
the last success) and when they end (a date, a number of runs).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE exports.jobs
    ADD COLUMN window_start timestamptz,
    ADD COLUMN window_end timestamptz,
    ADD CONSTRAINT jobs_window_ordered CHECK (window_start < window_end);
COMMENT ON COLUMN exports.jobs.window_start IS
    'Windowed kinds: the first instant exported (inclusive); NULL: open start.';
COMMENT ON COLUMN exports.jobs.window_end IS
    'Windowed kinds: the instant the window ends (exclusive); NULL: open end.';

ALTER TABLE exports.schedules
    ADD COLUMN window_mode text CONSTRAINT schedules_window_mode_check
        CHECK (window_mode IN ('slot', 'since_last_success')),
    ADD COLUMN ends_at timestamptz,
    ADD COLUMN max_runs integer CONSTRAINT schedules_max_runs_check CHECK (max_runs > 0),
    ADD COLUMN runs integer NOT NULL DEFAULT 0,
    ADD COLUMN ended_at timestamptz;
COMMENT ON COLUMN exports.schedules.window_mode IS
    'Windowed kinds: slot = each job exports the previous slot up to its slot; '
    'since_last_success = from where the last succeeded job''s window ended. NULL otherwise.';
COMMENT ON COLUMN exports.schedules.ends_at IS 'No slot after this fires; NULL: no end date.';
COMMENT ON COLUMN exports.schedules.max_runs IS
    'The schedule ends after this many slots queued a job; NULL: no limit.';
COMMENT ON COLUMN exports.schedules.runs IS 'Slots that queued a job so far.';
COMMENT ON COLUMN exports.schedules.ended_at IS
    'When ends_at or max_runs was reached (it fires no more); NULL while it runs.';
ALTER TABLE exports.schedules DROP CONSTRAINT schedules_enabled_has_next_run;
ALTER TABLE exports.schedules ADD CONSTRAINT schedules_enabled_has_next_run
    CHECK ((enabled AND ended_at IS NULL) = (next_run_at IS NOT NULL));
"""

# Frozen copy of sql/views/schedules_local.sql as of this migration: state and end columns.
SCHEDULES_LOCAL = r"""
CREATE OR REPLACE VIEW exports.schedules_local AS
SELECT s.id, s.tenant, s.owner_id, s.kind, s.format, s.cron, s.timezone, s.enabled,
       s.next_run_at AT TIME ZONE s.timezone AS next_run_local,
       s.last_run_at AT TIME ZONE s.timezone AS last_run_local,
       s.next_run_at, s.last_run_at, s.last_job_id, j.state AS last_job_state,
       s.notify_email_masked AS notify_email, s.params, s.created_at, s.updated_at,
       CASE WHEN s.ended_at IS NOT NULL THEN 'ended'
            WHEN s.enabled THEN 'active' ELSE 'paused' END AS state,
       s.window_mode, s.ends_at AT TIME ZONE s.timezone AS ends_local, s.max_runs, s.runs,
       s.ended_at
FROM exports.schedules s
LEFT JOIN exports.jobs j ON j.id = s.last_job_id;
COMMENT ON VIEW exports.schedules_local IS
    'Schedules with their next and last run in their own time zone, the last job''s state, '
    'and whether they run: state active, paused or ended (ends_at or max_runs reached).';
"""
# As migration 0011 left it.
SCHEDULES_LOCAL_0011 = r"""
DROP VIEW exports.schedules_local;
CREATE VIEW exports.schedules_local AS
SELECT s.id, s.tenant, s.owner_id, s.kind, s.format, s.cron, s.timezone, s.enabled,
       s.next_run_at AT TIME ZONE s.timezone AS next_run_local,
       s.last_run_at AT TIME ZONE s.timezone AS last_run_local,
       s.next_run_at, s.last_run_at, s.last_job_id, j.state AS last_job_state,
       s.notify_email_masked AS notify_email, s.params, s.created_at, s.updated_at
FROM exports.schedules s
LEFT JOIN exports.jobs j ON j.id = s.last_job_id;
COMMENT ON VIEW exports.schedules_local IS
    'Schedules with their next and last run in their own time zone, and the last job''s state.';
"""

DOWNGRADE = r"""
UPDATE exports.schedules SET enabled = false WHERE ended_at IS NOT NULL;
ALTER TABLE exports.schedules DROP CONSTRAINT schedules_enabled_has_next_run;
ALTER TABLE exports.schedules ADD CONSTRAINT schedules_enabled_has_next_run
    CHECK (enabled = (next_run_at IS NOT NULL));
ALTER TABLE exports.schedules DROP COLUMN window_mode, DROP COLUMN ends_at,
    DROP COLUMN max_runs, DROP COLUMN runs, DROP COLUMN ended_at;
ALTER TABLE exports.jobs DROP COLUMN window_start, DROP COLUMN window_end;
"""


def upgrade() -> None:
    """Add the window and end-condition columns; show them in schedules_local."""
    op.execute(UPGRADE)
    op.execute(SCHEDULES_LOCAL)


def downgrade() -> None:
    """Drop them (an ended schedule becomes a paused one)."""
    op.execute(SCHEDULES_LOCAL_0011)
    op.execute(DOWNGRADE)
