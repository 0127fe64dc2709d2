-- exports.plus_seconds: a timestamp plus whole seconds, for exports.outbox.turn_at.
-- The current definition (created by migration 0015). A database changes only
-- through migrations: to change this, edit it here and run the new text from a new
-- migration (tests/integration/test_schema.py checks that the two agree).
-- Seconds only, so the sum does not depend on TimeZone: immutable, usable in a generated column.
CREATE OR REPLACE FUNCTION exports.plus_seconds(at timestamptz, seconds integer)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN at + make_interval(secs => seconds);
COMMENT ON FUNCTION exports.plus_seconds(timestamptz, integer) IS
    'at + seconds (immutable: a whole number of seconds does not depend on the time zone).';
