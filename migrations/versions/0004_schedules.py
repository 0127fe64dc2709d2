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
SELECT 1;
"""

DOWNGRADE = r"""
SELECT 1;
"""


def upgrade() -> None:
    """Placeholder: filled in by its issue."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Placeholder: filled in by its issue."""
    op.execute(DOWNGRADE)
