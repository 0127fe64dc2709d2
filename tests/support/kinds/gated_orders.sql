/*---
description = "Test kind: the demo orders, but fails transiently while public.test_gate is closed."
---*/
SELECT o.id, o.item, o.amount_cents
FROM (SELECT public.test_gate_open() AS open) AS gate, exports_demo.orders AS o
WHERE gate.open AND o.owner_id = %(owner_id)s
ORDER BY o.id
