"""For ops and DBAs: worker registry, health views, retry_job/requeue_dead, expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op

revision = "0005"
down_revision = "0004"
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
