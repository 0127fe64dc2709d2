-- SES feedback and the suppression list. See app/notifications/ses_feedback.py.

-- name: find_job_by_email_message_id
SELECT id, email_status FROM exports.jobs WHERE email_message_id = %(message_id)s;

-- name: suppress_address
-- Addresses are stored encrypted and found by their blind index (app/platform/crypto.py).
-- A row indexed under an older key (before rotate-keys ran) is the same address: it is
-- refreshed, and re-indexed under the current key.
WITH earlier AS (
    DELETE FROM exports.email_suppressions
    WHERE address_index = ANY (%(indexes)s::text[]) AND address_index <> %(address_index)s
    RETURNING first_seen_at)
INSERT INTO exports.email_suppressions AS s
    (address, address_index, address_masked, reason, detail, source_message_id, first_seen_at)
VALUES (%(address)s, %(address_index)s, %(address_masked)s, %(reason)s, %(detail)s,
        %(message_id)s, coalesce((SELECT min(first_seen_at) FROM earlier), now()))
ON CONFLICT (address_index) DO UPDATE
SET reason = EXCLUDED.reason,
    detail = EXCLUDED.detail,
    source_message_id = EXCLUDED.source_message_id,
    last_seen_at = now()
RETURNING address_index;

-- name: find_suppression
SELECT address_index, reason FROM exports.email_suppressions
WHERE address_index = ANY (%(indexes)s::text[]);

-- name: delete_suppression
DELETE FROM exports.email_suppressions WHERE address_index = ANY (%(indexes)s::text[])
RETURNING address_index;
