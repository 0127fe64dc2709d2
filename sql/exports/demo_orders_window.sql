/*---
description = "The user's orders placed in a period, oldest first: schedules export each period once (e.g. last week's orders every Monday). Without a window: the last 7 days."
window = true
window_default_days = 7

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
  AND (%(window_start)s::timestamptz IS NULL OR placed_at >= %(window_start)s::timestamptz)
  AND (%(window_end)s::timestamptz IS NULL OR placed_at < %(window_end)s::timestamptz)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY placed_at, id
