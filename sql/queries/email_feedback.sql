-- SES feedback (bounces, complaints, deliveries) and the suppression list. See app/notifications/ses_feedback.py.

-- name: find_job_by_email_message_id
SELECT id, email_status FROM exports.jobs WHERE email_message_id = %(message_id)s;

-- name: record_email_feedback
-- Outcomes only move forward (sent < delivered < bounced < complained): SNS delivers out of
-- order and retries, and a late Delivery must not hide a Complaint. Other statuses stay.
UPDATE exports.jobs
SET email_status = %(status)s, email_status_at = now(), email_status_detail = %(detail)s
WHERE id = %(id)s
  AND array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], email_status)
      < array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], %(status)s::text)
RETURNING id;

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

-- name: record_email_suppressed
UPDATE exports.jobs
SET email_status = 'suppressed', email_status_at = now(), email_status_detail = %(detail)s
WHERE id = %(id)s
RETURNING id;
