/*---
description = "Every order the user placed, newest first (demo data: exports-admin seed-demo)."

[params.since]
type = "date"
description = "Only orders placed on or after this day."

[params.status]
type = "string"
description = "Only orders in this status: placed, shipped, delivered or refunded."
---*/
SELECT id AS order_id,
       placed_at,
       status,
       item,
       quantity,
       amount_cents,
       currency,
       note
FROM exports_demo.orders
WHERE owner_id = %(owner_id)s
  AND (%(since)s::date IS NULL OR placed_at >= %(since)s::date)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY placed_at DESC, id DESC
