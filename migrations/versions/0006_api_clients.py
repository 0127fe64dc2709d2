"""API clients (tenants) with hashed bearer keys.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

revision = "0006"
down_revision = "0005"
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
