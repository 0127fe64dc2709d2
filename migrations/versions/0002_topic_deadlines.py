"""Per-topic execution deadlines in a table DBAs can read and change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE exports.topics (
    topic            text PRIMARY KEY,
    deadline_seconds integer NOT NULL CHECK (deadline_seconds > 0),
    description      text NOT NULL
);
COMMENT ON TABLE exports.topics IS
    'Outbox topics and how long one attempt of each may run. Read at every claim, so an '
    'UPDATE here applies to the next attempt of every poller.';
COMMENT ON COLUMN exports.topics.deadline_seconds IS
    'Longest an attempt may run: the export query''s statement_timeout, and after it the '
    'poller stops extending the lease and fails the work instead of retrying forever.';

INSERT INTO exports.topics (topic, deadline_seconds, description) VALUES
    ('export.run', 1800, 'Run the kind''s query, stream it to storage, finish the job.'),
    ('export.notify', 60, 'Email the owner that the export is ready (or failed).');

ALTER TABLE exports.outbox DROP CONSTRAINT outbox_topic_check;
ALTER TABLE exports.outbox ADD CONSTRAINT outbox_topic_fkey
    FOREIGN KEY (topic) REFERENCES exports.topics (topic);
"""

DOWNGRADE = r"""
ALTER TABLE exports.outbox DROP CONSTRAINT outbox_topic_fkey;
ALTER TABLE exports.outbox ADD CONSTRAINT outbox_topic_check
    CHECK (topic IN ('export.run', 'export.notify'));
DROP TABLE exports.topics;
"""


def upgrade() -> None:
    """Add exports.topics and make outbox.topic reference it."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Back to the CHECK constraint on outbox.topic."""
    op.execute(DOWNGRADE)
