-- Per-tenant overrides of how pollers share work (exports.tenant_limits). Loaded by
-- app/platform/db.py; every block starts with "-- name: <query name>".

-- name: set_tenant_limit
-- Fields not given (NULL) keep their value; a new row gets the defaults for them.
INSERT INTO exports.tenant_limits AS l (tenant, max_running, weight, note)
VALUES (%(tenant)s, %(max_running)s, coalesce(%(weight)s, 1), %(note)s)
ON CONFLICT (tenant) DO UPDATE
SET max_running = coalesce(%(max_running)s, l.max_running),
    weight = coalesce(%(weight)s, l.weight),
    note = coalesce(%(note)s, l.note),
    updated_at = now()
RETURNING *;

-- name: clear_tenant_limit
DELETE FROM exports.tenant_limits WHERE tenant = %(tenant)s RETURNING *;

-- name: tenant_limits
SELECT * FROM exports.tenant_limits ORDER BY tenant;
