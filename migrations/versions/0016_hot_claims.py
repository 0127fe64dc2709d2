"""Claims become HOT updates: a claim changes no indexed column, so PostgreSQL rewrites the
row in its page and adds no index entries (docs/decisions.md, "Fair claiming").

- `outbox.turn_at` is no longer generated from `visible_at` (which a claim moves to the
  lease's end): a trigger sets it when a message is queued or made ready again (retry,
  hand-back, requeue: `leased_by` NULL), and a claim or heartbeat leaves it alone.
- `outbox_leased` goes: `leased_by` in its predicate made every claim a non-HOT update.
  While a limit is in force, claims note the leases of limited topics (export.run) in the
  small table `exports.limited_leases`, and count a tenant's running exports there.
- fillfactor 70: room in each page for the claimed version of its rows.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Keeps the values: no rewrite.
ALTER TABLE exports.outbox ALTER COLUMN turn_at DROP EXPRESSION;

CREATE FUNCTION exports.outbox_take_turn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.turn_at := exports.plus_seconds(NEW.visible_at, NEW.priority_wait_seconds);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION exports.outbox_take_turn() IS
    'Trigger: a message queued or made ready again takes its turn, visible_at + '
    'priority_wait_seconds.';
-- Every insert, including the previous release's (it does not know the column).
CREATE TRIGGER outbox_turn_on_insert BEFORE INSERT ON exports.outbox
    FOR EACH ROW EXECUTE FUNCTION exports.outbox_take_turn();
-- Retry, hand-back and the DBA functions set leased_by NULL with a new visible_at; claims
-- and heartbeats keep leased_by set, and the WHEN (checked without calling the function)
-- leaves their turn_at, and with it the row's index entries, unchanged.
CREATE TRIGGER outbox_turn_on_requeue
    BEFORE UPDATE OF visible_at, priority_wait_seconds ON exports.outbox
    FOR EACH ROW WHEN (NEW.leased_by IS NULL) EXECUTE FUNCTION exports.outbox_take_turn();
ALTER TABLE exports.outbox ALTER COLUMN turn_at SET NOT NULL;
COMMENT ON COLUMN exports.outbox.turn_at IS
    'The order within the tenant: visible_at + priority_wait_seconds when queued or made '
    'ready again (trigger outbox_take_turn), kept while leased. A bulk message waits behind '
    'newer interactive ones for at most its priority_wait_seconds (aging).';

DROP INDEX exports.outbox_leased;
CREATE TABLE exports.limited_leases (
    message_id bigint PRIMARY KEY REFERENCES exports.outbox (id) ON DELETE CASCADE,
    tenant text COLLATE "C" NOT NULL,
    attempts integer NOT NULL,
    leased_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX limited_leases_tenant ON exports.limited_leases (tenant);
COMMENT ON TABLE exports.limited_leases IS
    'Leases of messages of limited topics (topics.limited_per_tenant), noted by claims while '
    'a limit is in force (exports.tenant_limits, EXPORTS_MAX_RUNNING_PER_TENANT): what a '
    'tenant''s max_running is counted against. A row counts while its outbox row is still '
    'leased under the same attempt; claims forget the others.';
COMMENT ON COLUMN exports.limited_leases.message_id IS 'The leased exports.outbox message.';
COMMENT ON COLUMN exports.limited_leases.tenant IS 'Its tenant (as exports.outbox.tenant).';
COMMENT ON COLUMN exports.limited_leases.attempts IS
    'The attempt leased: a later attempt of the message is a new lease.';
COMMENT ON COLUMN exports.limited_leases.leased_at IS 'When the claim noted it.';

-- New pages only; existing ones get the room as vacuum frees it.
ALTER TABLE exports.outbox SET (fillfactor = 70);
"""

DOWNGRADE = r"""
ALTER TABLE exports.outbox RESET (fillfactor);
DROP TABLE exports.limited_leases;
DROP TRIGGER outbox_turn_on_requeue ON exports.outbox;
DROP TRIGGER outbox_turn_on_insert ON exports.outbox;
DROP FUNCTION exports.outbox_take_turn();
-- A column cannot become generated again in PostgreSQL 15: add it anew (a rewrite).
ALTER TABLE exports.outbox DROP COLUMN turn_at;
ALTER TABLE exports.outbox ADD COLUMN turn_at timestamptz
    GENERATED ALWAYS AS (exports.plus_seconds(visible_at, priority_wait_seconds)) STORED;
COMMENT ON COLUMN exports.outbox.turn_at IS
    'visible_at + priority_wait_seconds: the order within the tenant. A bulk message waits '
    'behind newer interactive ones for at most its priority_wait_seconds (aging).';
CREATE INDEX outbox_tenant_turn ON exports.outbox (tenant, topic, turn_at, id)
    WHERE done_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_leased ON exports.outbox (tenant)
    WHERE leased_by IS NOT NULL AND done_at IS NULL AND dead_at IS NULL;
"""


def upgrade() -> None:
    """turn_at kept by a trigger, outbox_leased replaced by limited_leases, fillfactor 70."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Back to a generated turn_at and the outbox_leased index."""
    op.execute(DOWNGRADE)
