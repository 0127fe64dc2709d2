"""The operator console (issue 19): operator keys, and an audit table of what operators did.

- `api_clients.role`: `tenant` (the /v1 API, for its tenant) or `operator` (the console,
  every tenant); an operator key has no tenant.
- `operator_actions`: every action taken in the console, who, on what, with what result.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE exports.api_clients
    ADD COLUMN role text NOT NULL DEFAULT 'tenant'
        CONSTRAINT api_clients_role_check CHECK (role IN ('tenant', 'operator')),
    ALTER COLUMN tenant DROP NOT NULL,
    ADD CONSTRAINT api_clients_tenant_role_check CHECK ((tenant IS NULL) = (role = 'operator'));
COMMENT ON COLUMN exports.api_clients.role IS
    'tenant: calls the /v1 API for its tenant; operator: opens the console (/console/), '
    'sees every tenant, cannot call /v1 (exports-admin create-key --operator).';
COMMENT ON COLUMN exports.api_clients.tenant IS
    'The tenant the key acts for: exports.jobs.tenant of every job it creates and may see; '
    'NULL for operator keys.';

CREATE TABLE exports.operator_actions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    operator_key_prefix text NOT NULL,
    operator_name text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    result text NOT NULL
);
CREATE INDEX operator_actions_at ON exports.operator_actions (at DESC, id DESC);
COMMENT ON TABLE exports.operator_actions IS
    'The console''s audit log: one row per action an operator took (cancel, retry, requeue, '
    'pause, ...), written in the same transaction as the action itself.';
COMMENT ON COLUMN exports.operator_actions.at IS 'When the action was taken.';
COMMENT ON COLUMN exports.operator_actions.operator_key_prefix IS
    'The operator key''s public prefix (exports.api_clients.key_prefix).';
COMMENT ON COLUMN exports.operator_actions.operator_name IS 'The key''s client name.';
COMMENT ON COLUMN exports.operator_actions.action IS
    'What was done: cancel_job, retry_job, requeue_dead, pause_schedule, resume_schedule.';
COMMENT ON COLUMN exports.operator_actions.target IS
    'What it was done to: a job id, a schedule id, or topic and since for requeue_dead.';
COMMENT ON COLUMN exports.operator_actions.result IS
    'What came of it: done, the count affected, or why nothing changed.';

-- The console lists every tenant's jobs newest first, and charts the last hour's endings.
CREATE INDEX jobs_all_newest ON exports.jobs (created_at DESC, id DESC);
CREATE INDEX jobs_finished ON exports.jobs (finished_at) WHERE finished_at IS NOT NULL;
"""

DOWNGRADE = r"""
DROP INDEX exports.jobs_finished;
DROP INDEX exports.jobs_all_newest;
DROP TABLE exports.operator_actions;
DELETE FROM exports.api_clients WHERE role = 'operator';
ALTER TABLE exports.api_clients
    DROP CONSTRAINT api_clients_tenant_role_check,
    ALTER COLUMN tenant SET NOT NULL,
    DROP COLUMN role;
COMMENT ON COLUMN exports.api_clients.tenant IS
    'The tenant the key acts for: exports.jobs.tenant of every job it creates and may see.';
"""


def upgrade() -> None:
    """Operator keys and the audit table."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Without the console: operator keys are deleted (they had no tenant)."""
    op.execute(DOWNGRADE)
