/*---
description = "Test kind: the demo orders, sleeping between rows so the export runs for a while."

[params.pause]
type = "number"
required = true
description = "Seconds to sleep per row."
---*/
SELECT o.id, o.item, pg_sleep(%(pause)s::float8)::text AS slept
FROM exports_demo.orders AS o
WHERE o.owner_id = %(owner_id)s
ORDER BY o.id
