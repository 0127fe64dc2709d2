/*---
description = "Test kind: a query that fails for every owner when it runs (division by zero), a permanent failure. It describes fine: the catalog binds no owner then."
---*/
SELECT o.id, o.item
FROM exports_demo.orders AS o
WHERE o.owner_id = %(owner_id)s
  AND 1 / (length(%(owner_id)s) - length(%(owner_id)s)) = 0
