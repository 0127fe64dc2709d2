/*---
description = "Test kind: `rows` numbered lines of 64 hex digits (half-compressible), to make exports big enough for several parts."

[params.rows]
type = "number"
required = true
description = "How many lines."
---*/
SELECT g AS n, md5(g::text) || md5((g * 7)::text) AS noise
FROM generate_series(1, %(rows)s::integer) AS g
WHERE %(owner_id)s::text IS NOT NULL
ORDER BY g
