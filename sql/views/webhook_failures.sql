-- exports.webhook_failures: webhook deliveries that failed or are retrying, with their
-- endpoint and tenant, newest first.
-- The current definition (created by migration 0010).
-- A database changes only through migrations: to change this, edit it here and run the
-- new text from a new migration (tests/integration/test_schema.py checks they agree).
CREATE OR REPLACE VIEW exports.webhook_failures AS
SELECT d.id AS delivery_id, e.tenant, e.id AS endpoint_id, e.url, e.enabled,
       e.disabled_reason, d.event_id, d.event_type, d.job_id, d.state, d.attempts,
       d.last_status_code, d.last_error, d.next_attempt_at, d.created_at
FROM exports.webhook_deliveries d JOIN exports.webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.state IN ('retrying', 'failed')
ORDER BY d.created_at DESC, d.id DESC;

COMMENT ON VIEW exports.webhook_failures IS
    'Webhook deliveries that failed for good or are waiting to retry, newest first: which '
    'endpoint (and whether it is still enabled), which event, the last status and error.';
