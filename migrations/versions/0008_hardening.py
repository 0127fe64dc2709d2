"""Hardening (issue 12): schedules record a slot skipped for the owner's quota; revoking an
API key NOTIFYs the API workers, which drop the keys they cached; tenants must be able to
name a storage folder.

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
-- A tenant is the first folder of its stored files: owner ids' alphabet, never . or ..
-- (app.storage.tenant_problem). NOT VALID: a key made before keeps working for reads; the
-- API refuses it new work (403 tenant-unusable).
ALTER TABLE exports.api_clients DROP CONSTRAINT api_clients_tenant_check;
ALTER TABLE exports.api_clients ADD CONSTRAINT api_clients_tenant_check
    CHECK (tenant ~ '^[A-Za-z0-9._:@+|-]{1,100}$' AND tenant NOT IN ('.', '..')) NOT VALID;

ALTER TABLE exports.schedules ADD COLUMN last_skip_reason text
    CHECK (last_skip_reason IN ('owner_quota'));
COMMENT ON COLUMN exports.schedules.last_skip_reason IS
    'Why the slot at last_run_at queued no job (owner_quota: the owner already had '
    'EXPORTS_MAX_ACTIVE_PER_OWNER exports queued or running); NULL when it queued one.';

-- Every API worker LISTENs on exports_api_keys and forgets the keys it trusted when a key
-- is revoked, by exports-admin or by hand: revocation then takes effect in milliseconds,
-- not after EXPORTS_API_KEY_CACHE_SECONDS. Delivered on commit.
CREATE FUNCTION exports.notify_api_key_revoked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exports_api_keys',
                      CASE TG_OP WHEN 'DELETE' THEN OLD.key_prefix ELSE NEW.key_prefix END);
    RETURN NULL;
END $$;
CREATE TRIGGER api_key_revoked
    AFTER UPDATE OF revoked_at OR DELETE ON exports.api_clients
    FOR EACH ROW EXECUTE FUNCTION exports.notify_api_key_revoked();
COMMENT ON FUNCTION exports.notify_api_key_revoked() IS
    'NOTIFY exports_api_keys with the key prefix when a key is revoked or deleted: API '
    'workers then stop trusting the keys they cached.';
"""

DOWNGRADE = r"""
DROP TRIGGER api_key_revoked ON exports.api_clients;
DROP FUNCTION exports.notify_api_key_revoked();
ALTER TABLE exports.schedules DROP COLUMN last_skip_reason;
ALTER TABLE exports.api_clients DROP CONSTRAINT api_clients_tenant_check;
ALTER TABLE exports.api_clients ADD CONSTRAINT api_clients_tenant_check
    CHECK (tenant ~ '^[A-Za-z0-9._-]{1,100}$') NOT VALID;
"""


def upgrade() -> None:
    """Add exports.schedules.last_skip_reason and the key revocation NOTIFY."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop them again."""
    op.execute(DOWNGRADE)
