/*---
description = "Test kind: one row per hard case of every type the formats must carry (NULLs, empty strings, Unicode, quotes, newlines, big numbers, timestamps around a DST change, formulas)."
---*/
SELECT v.id::integer AS id,
       v.big::bigint AS big,
       v.small::smallint AS small,
       v.price::numeric(12,2) AS price,
       v.huge::numeric AS huge,
       v.ratio::float8 AS ratio,
       v.flag::boolean AS flag,
       v.day::date AS day,
       v.at::timestamptz AS at,
       v.local_at::timestamp AS local_at,
       v.note::text AS note,
       v.tags::text[] AS tags,
       v.doc::jsonb AS doc
FROM (VALUES
    (1, 9007199254740993::bigint, -3::smallint, 1234.50::numeric(12,2),
     12345678901234567890.123456789::numeric, 0.1::float8, true, DATE '2024-03-31',
     TIMESTAMPTZ '2024-03-31 00:30:00Z', TIMESTAMP '2024-03-31 02:30:00', '=SUM(A1:A9)',
     ARRAY['a', 'b,c'], '{"k": [1, "x"], "n": null}'::jsonb),
    (2, -42, 7, -0.01, -1, -2.5e-10, false, DATE '1999-12-31',
     TIMESTAMPTZ '2024-03-31 01:30:00Z', TIMESTAMP '1999-12-31 23:59:59.5',
     E'Grüße 👋 "quoted", tab\there\nnew line', ARRAY[]::text[], '{"emoji": "👋"}'),
    (3, 0, 0, 0, 0, 1e300, true, DATE '2024-02-29', TIMESTAMPTZ '2024-10-27 00:30:00Z',
     TIMESTAMP '2024-10-27 02:30:00', '', ARRAY['x'], '[]'),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (5, 1, 1, 1, 1, 1, true, DATE '2024-01-01', TIMESTAMPTZ '2024-10-27 01:30:00Z',
     TIMESTAMP '2024-01-01 00:00:00', '-5 apples', ARRAY[NULL, 'y'], '"text"'),
    (6, 2, 2, 2, 2, 2, false, DATE '2024-01-02', TIMESTAMPTZ '2024-06-01 12:00:00.123456Z',
     TIMESTAMP '2024-01-02 00:00:00', '+1 and @cmd', NULL, 'null'),
    (7, 3, 3, 3, 3, 3, true, DATE '2024-01-03', TIMESTAMPTZ '2024-01-01 00:00:00Z',
     TIMESTAMP '2024-01-03 00:00:00', E'\tstarts with a tab', ARRAY['z'], '{}'),
    (8, 4, 4, 4, 4, 4, true, DATE '2024-01-04', TIMESTAMPTZ '2024-01-01 00:00:00Z',
     TIMESTAMP '2024-01-04 00:00:00', '@SUM(1)', ARRAY['w'], '1')
) AS v(id, big, small, price, huge, ratio, flag, day, at, local_at, note, tags, doc)
WHERE %(owner_id)s::text IS NOT NULL
ORDER BY v.id
