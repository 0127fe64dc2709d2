/*---
description = "Test kind: the demo orders, sleeping between rows so the export runs for a while."

[params.pause]
type = "number"
required = true
description = "Seconds to sleep per row."
---*/
-- The padding makes rows wide: the server sends COPY data in 8 KiB bursts, and a slow
-- export should reach the poller (and report progress) as it goes, like a real big one.
SELECT o.id, o.item, pg_sleep(%(pause)s::float8)::text AS slept, repeat('x', 1000) AS padding
FROM exports_demo.orders AS o
WHERE o.owner_id = %(owner_id)s
ORDER BY o.id
