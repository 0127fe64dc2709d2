"""API clients (tenants) with hashed bearer keys; an index for per-owner quotas.

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
-- key_hash is a plain sha256 (hex), not bcrypt/argon2: keys are 32 random bytes made by
-- secrets.token_urlsafe, so there is nothing to brute-force or look up in a dictionary, and
-- a slow hash would only add milliseconds to every request. A stolen table gives away no key.
CREATE TABLE exports.api_clients (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._-]{1,100}$'),
    tenant       text NOT NULL CHECK (tenant ~ '^[A-Za-z0-9._-]{1,100}$'),
    key_prefix   text NOT NULL UNIQUE,
    key_hash     text NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
COMMENT ON TABLE exports.api_clients IS
    'Who may call the /v1 API: one row per API key (exports-admin create-key/revoke-key).';
COMMENT ON COLUMN exports.api_clients.name IS 'Human name of the client, e.g. backend.';
COMMENT ON COLUMN exports.api_clients.tenant IS
    'The tenant the key acts for: exports.jobs.tenant of every job it creates and may see.';
COMMENT ON COLUMN exports.api_clients.key_prefix IS
    'Public part of the key (exp_<prefix>_...): finds the row and names the key in logs.';
COMMENT ON COLUMN exports.api_clients.key_hash IS
    'Hex sha256 of the whole key; the key itself is shown once at creation, never stored.';
COMMENT ON COLUMN exports.api_clients.created_at IS 'When the key was made.';
COMMENT ON COLUMN exports.api_clients.revoked_at IS
    'When the key was revoked; a revoked key is refused (401) from then on.';
COMMENT ON COLUMN exports.api_clients.last_used_at IS
    'Last successful authentication (updated at most once a minute).';

-- Per tenant+owner quota of queued/running exports: counting them stays an index lookup.
CREATE INDEX jobs_active_per_owner ON exports.jobs (tenant, owner_id)
    WHERE state IN ('queued', 'running');
"""

DOWNGRADE = r"""
DROP INDEX exports.jobs_active_per_owner;
DROP TABLE exports.api_clients;
"""


def upgrade() -> None:
    """Create exports.api_clients and the active-jobs-per-owner index."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop what upgrade created."""
    op.execute(DOWNGRADE)
