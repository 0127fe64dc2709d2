-- exports.schedules_local: schedules with their runs in their own time zone.
-- The current definition (created by migration 0004, last changed by 0013).
-- A database changes only through migrations: to change this, edit it here and run the
-- new text from a new migration (tests/integration/test_schema.py checks they agree).
CREATE OR REPLACE VIEW exports.schedules_local AS
SELECT s.id, s.tenant, s.owner_id, s.kind, s.format, s.cron, s.timezone, s.enabled,
       s.next_run_at AT TIME ZONE s.timezone AS next_run_local,
       s.last_run_at AT TIME ZONE s.timezone AS last_run_local,
       s.next_run_at, s.last_run_at, s.last_job_id, j.state AS last_job_state,
       s.notify_email_masked AS notify_email, s.params, s.created_at, s.updated_at,
       CASE WHEN s.ended_at IS NOT NULL THEN 'ended'
            WHEN s.enabled THEN 'active' ELSE 'paused' END AS state,
       s.window_mode, s.ends_at AT TIME ZONE s.timezone AS ends_local, s.max_runs, s.runs,
       s.ended_at
FROM exports.schedules s
LEFT JOIN exports.jobs j ON j.id = s.last_job_id;
COMMENT ON VIEW exports.schedules_local IS
    'Schedules with their next and last run in their own time zone, the last job''s state, '
    'and whether they run: state active, paused or ended (ends_at or max_runs reached).';
