/*---
description = "Test kind: a query with a mistake in it (no such column), a permanent failure."
---*/
SELECT o.id, o.no_such_column
FROM exports_demo.orders AS o
WHERE o.owner_id = %(owner_id)s
