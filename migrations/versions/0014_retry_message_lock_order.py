"""exports.retry_message locks outbox rows before the job row, like a poller sending the
failure email does: the other order could deadlock with it (seen in CI).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Frozen copy of sql/functions/retry_message.sql as of this migration.
RETRY_MESSAGE = r"""
CREATE OR REPLACE FUNCTION exports.retry_message(
    message_id bigint, extra_attempts integer DEFAULT 3)
RETURNS SETOF exports.queue LANGUAGE plpgsql AS $$
-- Bring a dead message back: it runs as soon as a poller is free, with extra_attempts
-- more tries. Its job goes back to waiting (a failed export to queued, a failed email to
-- pending). The error history is kept.
DECLARE
    revived exports.outbox;
BEGIN
    UPDATE exports.outbox
    SET dead_at = NULL, visible_at = now(), leased_by = NULL,
        max_attempts = attempts + extra_attempts
    WHERE id = message_id AND dead_at IS NOT NULL
    RETURNING * INTO revived;
    IF NOT FOUND THEN
        RETURN;  -- unknown or not dead: nothing to do, no rows (like every other function)
    END IF;
    IF revived.topic = 'export.run' THEN
        -- Its failure email, if one is still waiting, no longer applies. Outbox rows before
        -- the job row, the order a poller sending that email locks them in: the other
        -- order deadlocked with it.
        UPDATE exports.outbox SET done_at = now()
        WHERE job_id = revived.job_id AND topic = 'export.notify'
          AND done_at IS NULL AND dead_at IS NULL;
        UPDATE exports.jobs SET state = 'queued', finished_at = NULL, email_status = NULL
        WHERE id = revived.job_id AND state = 'failed';
    ELSE
        UPDATE exports.jobs SET email_status = 'pending'
        WHERE id = revived.job_id AND email_status = 'failed';
    END IF;
    PERFORM pg_notify('exports_outbox', '');
    RETURN QUERY SELECT * FROM exports.queue WHERE id = message_id;
END $$;
COMMENT ON FUNCTION exports.retry_message(bigint, integer) IS
    'Revive a dead outbox message (and its job): SELECT * FROM exports.retry_message(42); '
    'no rows when it is unknown or not dead.';
"""


def upgrade() -> None:
    """Replace the function (same signature, same result)."""
    op.execute(RETRY_MESSAGE)


# As migration 0009 left it: the job row first.
RETRY_MESSAGE_0009 = RETRY_MESSAGE.replace(
    """        -- Its failure email, if one is still waiting, no longer applies. Outbox rows before
        -- the job row, the order a poller sending that email locks them in: the other
        -- order deadlocked with it.
        UPDATE exports.outbox SET done_at = now()
        WHERE job_id = revived.job_id AND topic = 'export.notify'
          AND done_at IS NULL AND dead_at IS NULL;
        UPDATE exports.jobs SET state = 'queued', finished_at = NULL, email_status = NULL
        WHERE id = revived.job_id AND state = 'failed';""",
    """        UPDATE exports.jobs SET state = 'queued', finished_at = NULL, email_status = NULL
        WHERE id = revived.job_id AND state = 'failed';
        -- Its failure email, if one is still waiting, no longer applies.
        UPDATE exports.outbox SET done_at = now()
        WHERE job_id = revived.job_id AND topic = 'export.notify'
          AND done_at IS NULL AND dead_at IS NULL;""",
)
assert RETRY_MESSAGE_0009 != RETRY_MESSAGE


def downgrade() -> None:
    """The function as it was."""
    op.execute(RETRY_MESSAGE_0009)
