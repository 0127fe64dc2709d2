-- Re-encrypting stored secrets under the current key (app/operators/key_rotation.py).
-- Each batch reads rows by primary key after a keyset position, and writes them back.

-- name: jobs_with_email
SELECT id, notify_email AS token FROM exports.jobs
WHERE notify_email IS NOT NULL AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
ORDER BY id LIMIT %(limit)s;

-- name: reseal_job_email
UPDATE exports.jobs SET notify_email = %(token)s WHERE id = %(id)s RETURNING id;

-- name: schedules_with_email
SELECT id, notify_email AS token FROM exports.schedules
WHERE notify_email IS NOT NULL AND (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
ORDER BY id LIMIT %(limit)s;

-- name: reseal_schedule_email
UPDATE exports.schedules SET notify_email = %(token)s WHERE id = %(id)s RETURNING id;

-- name: endpoints_with_secrets
SELECT id, secret, previous_secret FROM exports.webhook_endpoints
WHERE (%(after)s::uuid IS NULL OR id > %(after)s::uuid)
ORDER BY id LIMIT %(limit)s;

-- name: reseal_endpoint_secrets
UPDATE exports.webhook_endpoints SET secret = %(secret)s, previous_secret = %(previous)s
WHERE id = %(id)s RETURNING id;

-- name: suppressions_to_reseal
-- All of them at once: re-indexing moves a row's key, so no keyset walk (the list is small).
SELECT address_index AS id, address AS token FROM exports.email_suppressions
ORDER BY address_index;

-- name: reseal_suppression
-- Re-encrypted and re-indexed under the current key (the index is the primary key).
UPDATE exports.email_suppressions SET address = %(token)s, address_index = %(new_index)s
WHERE address_index = %(id)s RETURNING address_index;
