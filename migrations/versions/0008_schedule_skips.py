"""Schedules record a slot they skipped because the owner was at the export quota.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE exports.schedules ADD COLUMN last_skip_reason text
    CHECK (last_skip_reason IN ('owner_quota'));
COMMENT ON COLUMN exports.schedules.last_skip_reason IS
    'Why the slot at last_run_at queued no job (owner_quota: the owner already had '
    'EXPORTS_MAX_ACTIVE_PER_OWNER exports queued or running); NULL when it queued one.';
"""

DOWNGRADE = r"""
ALTER TABLE exports.schedules DROP COLUMN last_skip_reason;
"""


def upgrade() -> None:
    """Add exports.schedules.last_skip_reason."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop exports.schedules.last_skip_reason."""
    op.execute(DOWNGRADE)
