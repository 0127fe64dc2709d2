"""SES delivery/bounce/complaint feedback and the suppression list.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from alembic import op

revision = "0007"
down_revision = "0006"
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
