"""For ops and DBAs: worker registry, health views, retry_job/requeue_dead, expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from pathlib import Path

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- UNLOGGED: heartbeats rewrite these rows every few seconds and the table is rebuilt by
-- the pollers themselves after a crash, so it is not worth WAL (nor replication).
CREATE UNLOGGED TABLE exports.workers (
    id                text PRIMARY KEY,
    hostname          text NOT NULL,
    pid               integer NOT NULL,
    version           text NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    in_flight         integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE exports.workers IS
    'Pollers that are (or recently were) running, one row each, refreshed by heartbeats. '
    'UNLOGGED: emptied after a PostgreSQL crash; live pollers register again.';
COMMENT ON COLUMN exports.workers.id IS
    'The poller''s worker id: the value it writes into exports.outbox.leased_by.';
COMMENT ON COLUMN exports.workers.hostname IS 'Host (or ECS task) the poller runs on.';
COMMENT ON COLUMN exports.workers.pid IS 'Process id of the poller on that host.';
COMMENT ON COLUMN exports.workers.version IS 'Version of the exports package the poller runs.';
COMMENT ON COLUMN exports.workers.started_at IS 'When the poller registered.';
COMMENT ON COLUMN exports.workers.last_heartbeat_at IS
    'Last sign of life; a row not refreshed for several lease lengths is a dead poller.';
COMMENT ON COLUMN exports.workers.in_flight IS
    'Messages the poller was working on at its last heartbeat.';

-- Maintenance looks for succeeded jobs past expires_at on every run: an index of just
-- those, instead of a scan of every job ever made.
CREATE INDEX jobs_expiring ON exports.jobs (expires_at, id) WHERE state = 'succeeded';
"""

# The DBA views and functions are kept as files people read (sql/views, sql/functions) and
# are read from the repository when this migration runs. Editing one of those files later
# does NOT change a migrated database: add a new migration that runs the new text (and keeps
# a copy of the old text for its downgrade). Re-running this migration (downgrade, upgrade)
# uses the files as they are at that time.
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
VIEWS = ["queue_health", "stuck", "recent_failures", "job_timeline"]
FUNCTIONS = ["retry_job", "requeue_dead"]

# 0003's exports.stuck; sql/views/stuck.sql widens it (new columns, so drop and create).
STUCK_0003 = r"""
CREATE VIEW exports.stuck AS
SELECT q.*, t.deadline_seconds,
       CASE WHEN q.state = 'running' THEN 'running past its deadline'
            ELSE 'ready but not claimed for 5 minutes: are any pollers running?' END AS why
FROM exports.queue q JOIN exports.topics t USING (topic)
WHERE (q.state = 'running'
       AND q.claimed_at < now() - make_interval(secs => t.deadline_seconds))
   OR (q.state = 'ready' AND q.visible_at < now() - interval '5 minutes');
COMMENT ON VIEW exports.stuck IS
    'Work that should have moved and has not: attempts past their topic deadline, and '
    'ready messages nobody claims.';
"""

DOWNGRADE = (
    r"""
DROP FUNCTION exports.requeue_dead(text, timestamptz, integer);
DROP FUNCTION exports.retry_job(uuid, integer);
DROP VIEW exports.job_timeline;
DROP VIEW exports.recent_failures;
DROP VIEW exports.queue_health;
DROP VIEW exports.stuck;
"""
    + STUCK_0003
    + r"""
DROP INDEX exports.jobs_expiring;
DROP TABLE exports.workers;
"""
)


def _sql_files() -> list[str]:
    """The text of every view and function file, in creation order."""
    return [(SQL_DIR / "views" / f"{name}.sql").read_text() for name in VIEWS] + [
        (SQL_DIR / "functions" / f"{name}.sql").read_text() for name in FUNCTIONS
    ]


def upgrade() -> None:
    """Create the worker registry, DBA views and functions."""
    op.execute(UPGRADE)
    op.execute("DROP VIEW exports.stuck")
    for text in _sql_files():
        op.execute(text)


def downgrade() -> None:
    """Drop what upgrade created."""
    op.execute(DOWNGRADE)
