-- The email channel's delivery state (exports.jobs.email_status): app/notifications/email.py
-- is the only code that runs these. Loaded by app/platform/db.py.

-- name: mark_email_pending
-- The job just ended: if its owner asked for an email, it is owed (the caller then queues
-- the export.notify message through app/queue/outbox.py). No row: no email.
UPDATE exports.jobs
SET email_status = 'pending', email_status_detail = NULL
WHERE id = %(id)s AND notify_email IS NOT NULL
RETURNING id;

-- name: record_email_sent
UPDATE exports.jobs
SET notified_at = now(), email_message_id = %(message_id)s, email_status = 'sent',
    email_status_at = now(), email_status_detail = NULL
WHERE id = %(id)s
RETURNING id;

-- name: record_email_failed
UPDATE exports.jobs
SET email_status = 'failed', email_status_at = now(), email_status_detail = %(detail)s
WHERE id = %(id)s
RETURNING id;

-- name: record_email_feedback
-- Outcomes only move forward (sent < delivered < bounced < complained): SNS delivers out of
-- order and retries, and a late Delivery must not hide a Complaint. Other statuses stay.
UPDATE exports.jobs
SET email_status = %(status)s, email_status_at = now(), email_status_detail = %(detail)s
WHERE id = %(id)s
  AND array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], email_status)
      < array_position(ARRAY['sent', 'delivered', 'bounced', 'complained'], %(status)s::text)
RETURNING id;

-- name: record_email_suppressed
UPDATE exports.jobs
SET email_status = 'suppressed', email_status_at = now(), email_status_detail = %(detail)s
WHERE id = %(id)s
RETURNING id;
