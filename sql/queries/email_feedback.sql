-- SES feedback and the suppression list. See app/notifications/ses_feedback.py.

-- name: find_job_by_email_message_id
SELECT id, email_status FROM exports.jobs WHERE email_message_id = %(message_id)s;

-- name: suppress_address
INSERT INTO exports.email_suppressions AS s (address, reason, detail, source_message_id)
VALUES (%(address)s, %(reason)s, %(detail)s, %(message_id)s)
ON CONFLICT (address) DO UPDATE
SET reason = EXCLUDED.reason,
    detail = EXCLUDED.detail,
    source_message_id = EXCLUDED.source_message_id,
    last_seen_at = now()
RETURNING address;

-- name: find_suppression
SELECT address, reason FROM exports.email_suppressions WHERE address = %(address)s;
