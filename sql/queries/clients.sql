-- API clients and their keys (app/tenancy/clients.py). Keys are stored only as sha256 hashes.

-- name: insert_api_client
INSERT INTO exports.api_clients (name, tenant, role, key_prefix, key_hash)
VALUES (%(name)s, %(tenant)s, %(role)s, %(key_prefix)s, %(key_hash)s)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: get_api_client_by_prefix
SELECT * FROM exports.api_clients WHERE key_prefix = %(key_prefix)s;

-- name: touch_api_client
-- At most one write a minute per key, not one per request.
UPDATE exports.api_clients SET last_used_at = now()
WHERE id = %(id)s AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
RETURNING id;

-- name: revoke_api_client
-- Revoking twice keeps the first time.
UPDATE exports.api_clients SET revoked_at = coalesce(revoked_at, now())
WHERE key_prefix = %(key_prefix)s
RETURNING *;

-- name: list_api_clients
SELECT * FROM exports.api_clients ORDER BY created_at, name;
