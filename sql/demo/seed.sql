-- Fill exports_demo.orders with %(rows)s fake orders spread over owners user-1 .. user-N.
-- Notes include commas, quotes and line breaks so CSV quoting is exercised.
INSERT INTO exports_demo.orders
    (owner_id, placed_at, status, item, quantity, amount_cents, currency, note)
SELECT 'user-' || (1 + i %% %(owners)s),
       timestamptz '2024-01-01 00:00:00+00' + make_interval(mins => i * 7),
       (ARRAY['placed', 'shipped', 'delivered', 'refunded'])[1 + i %% 4],
       (ARRAY['Notebook', 'Pen, blue', 'Mug "Ceramic"', 'Desk lamp', 'Backpack'])[1 + i %% 5],
       1 + i %% 3,
       499 + (i * 37) %% 20000,
       'EUR',
       CASE WHEN i %% 10 = 0 THEN E'gift wrap,\nleave at "door"' END
FROM generate_series(1, %(rows)s) AS i;
