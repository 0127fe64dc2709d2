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
-- What SES said happened to the email after it accepted it (POST /v1/ses-events), and
-- 'suppressed': the mailer did not send because the address is on the suppression list.
ALTER TABLE exports.jobs DROP CONSTRAINT jobs_email_status_check;
ALTER TABLE exports.jobs ADD CONSTRAINT jobs_email_status_check
    CHECK (email_status IN ('pending', 'sent', 'failed',
                            'delivered', 'bounced', 'complained', 'suppressed'));
ALTER TABLE exports.jobs
    ADD COLUMN email_status_at timestamptz,
    ADD COLUMN email_status_detail text;
-- SES events name the email by its message id only.
CREATE INDEX jobs_email_message_id ON exports.jobs (email_message_id)
    WHERE email_message_id IS NOT NULL;

COMMENT ON COLUMN exports.jobs.email_status IS
    'pending: notify message queued; sent: accepted by the mail backend; failed: gave up; '
    'delivered / bounced / complained: what SES reported afterwards (POST /v1/ses-events); '
    'suppressed: not sent because the address is in exports.email_suppressions.';
COMMENT ON COLUMN exports.jobs.email_status_at IS
    'When email_status last changed because of SES feedback or suppression.';
COMMENT ON COLUMN exports.jobs.email_status_detail IS
    'Why, without the address: e.g. "bounce Permanent/General", "complaint abuse".';

CREATE TABLE exports.email_suppressions (
    address           text PRIMARY KEY CHECK (address = lower(address) AND address <> ''),
    reason            text NOT NULL CHECK (reason IN ('bounce', 'complaint')),
    detail            text,
    first_seen_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz NOT NULL DEFAULT now(),
    source_message_id text NOT NULL
);
COMMENT ON TABLE exports.email_suppressions IS
    'Addresses never to email again: they hard-bounced or complained. The poller checks it '
    'before every send. Delete a row to allow an address again.';
COMMENT ON COLUMN exports.email_suppressions.address IS 'The email address, lower-cased.';
COMMENT ON COLUMN exports.email_suppressions.reason IS
    'bounce (a Permanent bounce) or complaint; the latest event''s.';
COMMENT ON COLUMN exports.email_suppressions.detail IS
    'SES''s bounce sub-type or complaint feedback type of the latest event.';
COMMENT ON COLUMN exports.email_suppressions.first_seen_at IS 'When it was first suppressed.';
COMMENT ON COLUMN exports.email_suppressions.last_seen_at IS 'The latest bounce or complaint.';
COMMENT ON COLUMN exports.email_suppressions.source_message_id IS
    'SES message id of the email whose bounce or complaint suppressed it (the latest).';
"""

DOWNGRADE = r"""
DROP TABLE exports.email_suppressions;
DROP INDEX exports.jobs_email_message_id;
ALTER TABLE exports.jobs DROP COLUMN email_status_at, DROP COLUMN email_status_detail;
-- Fold the new statuses into the old ones: SES had accepted the email, or it was not sent.
ALTER TABLE exports.jobs DROP CONSTRAINT jobs_email_status_check;
UPDATE exports.jobs SET email_status = 'sent'
WHERE email_status IN ('delivered', 'bounced', 'complained');
UPDATE exports.jobs SET email_status = 'failed' WHERE email_status = 'suppressed';
ALTER TABLE exports.jobs ADD CONSTRAINT jobs_email_status_check
    CHECK (email_status IN ('pending', 'sent', 'failed'));
COMMENT ON COLUMN exports.jobs.email_status IS
    'pending: notify message queued; sent: delivered to the mail backend; failed: gave up.';
"""


def upgrade() -> None:
    """Job email outcomes from SES feedback, and the suppression list."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop the suppression list and feedback columns; map new statuses to sent/failed."""
    op.execute(DOWNGRADE)
