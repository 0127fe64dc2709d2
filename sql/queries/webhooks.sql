-- Webhook endpoints and their deliveries (app/notifications/webhooks.py is the only code
-- that runs these). Loaded by app/platform/db.py.

-- name: insert_webhook_endpoint
INSERT INTO exports.webhook_endpoints
    (tenant, url, description, events, enabled, secret, idempotency_key, request_fingerprint)
VALUES
    (%(tenant)s, %(url)s, %(description)s, %(events)s, %(enabled)s, %(secret)s,
     %(idempotency_key)s, %(request_fingerprint)s)
ON CONFLICT (tenant, idempotency_key) DO NOTHING
RETURNING *;

-- name: get_webhook_endpoint_by_key
SELECT * FROM exports.webhook_endpoints
WHERE tenant = %(tenant)s AND idempotency_key = %(idempotency_key)s;

-- name: get_webhook_endpoint
SELECT * FROM exports.webhook_endpoints WHERE tenant = %(tenant)s AND id = %(id)s;

-- name: list_webhook_endpoints
SELECT * FROM exports.webhook_endpoints
WHERE tenant = %(tenant)s
  AND (%(before_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(before_created_at)s::timestamptz, %(before_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: update_webhook_endpoint
-- Re-enabling by the app clears the service's reason for disabling it and the failing run.
UPDATE exports.webhook_endpoints
SET url = coalesce(%(url)s, url),
    description = coalesce(%(description)s, description),
    events = coalesce(%(events)s, events),
    enabled = coalesce(%(enabled)s, enabled),
    disabled_reason = CASE WHEN %(enabled)s THEN NULL ELSE disabled_reason END,
    failing_since = CASE WHEN %(enabled)s THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE tenant = %(tenant)s AND id = %(id)s
RETURNING *;

-- name: rotate_webhook_secret
UPDATE exports.webhook_endpoints
SET previous_secret = secret,
    previous_secret_expires_at = now() + make_interval(secs => %(overlap_seconds)s),
    secret = %(secret)s,
    updated_at = now()
WHERE tenant = %(tenant)s AND id = %(id)s
RETURNING *;

-- name: delete_webhook_endpoint
-- Its deliveries go with it (ON DELETE CASCADE); their outbox messages find nothing to do.
DELETE FROM exports.webhook_endpoints WHERE tenant = %(tenant)s AND id = %(id)s RETURNING id;

-- name: insert_webhook_deliveries
-- One delivery per enabled endpoint of the tenant subscribed to the event.
INSERT INTO exports.webhook_deliveries (endpoint_id, event_id, event_type, job_id)
SELECT e.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), %(event_type)s, %(job_id)s
FROM exports.webhook_endpoints e
WHERE e.tenant = %(tenant)s AND e.enabled AND %(event_type)s = ANY (e.events)
RETURNING id, job_id;

-- name: delivery_to_send
-- What the webhook.deliver handler needs: the delivery, its endpoint and its job's tenant.
SELECT d.*, e.url, e.enabled, e.secret, e.previous_secret, e.previous_secret_expires_at,
       e.tenant, e.failing_since
FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.id = %(id)s;

-- name: set_delivery_payload
-- The first attempt renders the body; later attempts send it unchanged.
UPDATE exports.webhook_deliveries SET payload = %(payload)s
WHERE id = %(id)s AND payload IS NULL
RETURNING payload;

-- name: record_delivery_attempt
UPDATE exports.webhook_deliveries
SET state = %(state)s,
    attempts = attempts + 1,
    last_status_code = %(status_code)s,
    last_error = %(error)s,
    last_duration_ms = %(duration_ms)s,
    next_attempt_at = %(next_attempt_at)s,
    delivered_at = CASE WHEN %(state)s = 'succeeded' THEN now() ELSE delivered_at END
WHERE id = %(id)s
RETURNING id;

-- name: record_endpoint_success
UPDATE exports.webhook_endpoints SET last_success_at = now(), failing_since = NULL
WHERE id = %(id)s
RETURNING id;

-- name: record_endpoint_failure
-- Starts the failing run on the first failure after a success; past `disable_after`
-- seconds of it the endpoint is disabled. Returns whether it was disabled now.
UPDATE exports.webhook_endpoints
SET failing_since = coalesce(failing_since, now()),
    enabled = CASE WHEN failing_since < now() - make_interval(secs => %(disable_after)s)
                   THEN false ELSE enabled END,
    disabled_reason = CASE WHEN failing_since < now() - make_interval(secs => %(disable_after)s)
                           THEN 'failing for 5 days with no success' ELSE disabled_reason END
WHERE id = %(id)s
RETURNING enabled;

-- name: disable_endpoint
UPDATE exports.webhook_endpoints
SET enabled = false, disabled_reason = %(reason)s, updated_at = now()
WHERE id = %(id)s
RETURNING id;

-- name: insert_test_delivery
INSERT INTO exports.webhook_deliveries (endpoint_id, event_id, event_type, job_id)
SELECT e.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'webhook.test', NULL
FROM exports.webhook_endpoints e
WHERE e.tenant = %(tenant)s AND e.id = %(id)s
RETURNING id, job_id;

-- name: list_webhook_deliveries
SELECT d.* FROM exports.webhook_deliveries d
JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE e.tenant = %(tenant)s AND d.endpoint_id = %(endpoint_id)s
  AND (%(before_created_at)s::timestamptz IS NULL
       OR (d.created_at, d.id) < (%(before_created_at)s::timestamptz, %(before_id)s::bigint))
ORDER BY d.created_at DESC, d.id DESC
LIMIT %(limit)s;

-- name: redeliver
-- A manual retry: the same delivery (so the same webhook-id and body), pending again.
UPDATE exports.webhook_deliveries d
SET state = 'pending', next_attempt_at = now()
FROM exports.webhook_endpoints e
WHERE d.id = %(id)s AND e.id = d.endpoint_id AND e.tenant = %(tenant)s
RETURNING d.*;

-- name: get_webhook_delivery
SELECT d.* FROM exports.webhook_deliveries d
JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE e.tenant = %(tenant)s AND d.id = %(id)s;
