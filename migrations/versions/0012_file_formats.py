"""File formats and options (issue 15): jsonl, jsonl.gz, xlsx and parquet; chosen columns,
time zone, CSV dialect, safe cells; exports stored in parts with a manifest.

Jobs made before this migration keep their meaning: every column, CSV as before (UTC was
already every service connection's TimeZone), one part.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OPTIONS = r"""
ALTER TABLE exports.{table}
    ADD COLUMN columns text[],
    ADD COLUMN csv_options jsonb,
    ADD COLUMN safe_cells boolean NOT NULL DEFAULT true,
    ADD COLUMN max_part_bytes bigint NOT NULL DEFAULT 1073741824
        CONSTRAINT {table}_max_part_bytes_check CHECK (max_part_bytes >= 5242880);
COMMENT ON COLUMN exports.{table}.columns IS
    'Output columns chosen, in file order; NULL: every column of the kind''s query.';
COMMENT ON COLUMN exports.{table}.csv_options IS
    'CSV dialect for csv and csv.gz: {{"delimiter": ",", "header": true, "bom": false}}; '
    'NULL for other formats.';
COMMENT ON COLUMN exports.{table}.safe_cells IS
    'CSV and XLSX: text cells starting with = + - @ tab or CR get a leading '' so '
    'spreadsheets do not run them as formulas.';
COMMENT ON COLUMN exports.{table}.max_part_bytes IS
    'An export bigger than this is stored as several files (parts) plus manifest.json.';
"""

UPGRADE = (
    OPTIONS.format(table="jobs")
    + OPTIONS.format(table="schedules")
    + r"""
ALTER TABLE exports.jobs DROP CONSTRAINT jobs_format_check;
ALTER TABLE exports.jobs ADD CONSTRAINT jobs_format_check
    CHECK (format IN ('csv', 'csv.gz', 'jsonl', 'jsonl.gz', 'xlsx', 'parquet'));
ALTER TABLE exports.schedules ADD CONSTRAINT schedules_format_check
    CHECK (format IN ('csv', 'csv.gz', 'jsonl', 'jsonl.gz', 'xlsx', 'parquet'));
COMMENT ON COLUMN exports.schedules.format IS
    'File format of every job: csv, csv.gz, jsonl, jsonl.gz, xlsx or parquet.';

ALTER TABLE exports.jobs
    ADD COLUMN timezone text NOT NULL DEFAULT 'UTC',
    ADD COLUMN result_parts jsonb;
COMMENT ON COLUMN exports.jobs.timezone IS
    'IANA time zone the export''s session ran in: timestamps and date arithmetic in the '
    'query, and timestamptz values in the file, are in it.';
COMMENT ON COLUMN exports.jobs.result_parts IS
    'The stored files, in order: [{"key", "rows", "bytes", "sha256"}]. With more than one, '
    'result_key and result_sha256 name the manifest.json that lists them.';
COMMENT ON COLUMN exports.jobs.result_key IS
    'Storage key of the finished file, or of its manifest.json when it has several parts.';
COMMENT ON COLUMN exports.jobs.result_bytes IS 'Bytes stored, every part together.';
"""
)

DOWNGRADE = r"""
ALTER TABLE exports.jobs DROP COLUMN timezone, DROP COLUMN result_parts;
ALTER TABLE exports.schedules DROP CONSTRAINT schedules_format_check;
ALTER TABLE exports.jobs DROP CONSTRAINT jobs_format_check;
ALTER TABLE exports.jobs ADD CONSTRAINT jobs_format_check CHECK (format IN ('csv', 'csv.gz'))
    NOT VALID;
COMMENT ON COLUMN exports.schedules.format IS 'File format of every job (csv, csv.gz, ...).';
COMMENT ON COLUMN exports.jobs.result_key IS 'Storage key of the finished file.';
COMMENT ON COLUMN exports.jobs.result_bytes IS NULL;
""" + "".join(
    f"""
ALTER TABLE exports.{table} DROP COLUMN columns, DROP COLUMN csv_options,
    DROP COLUMN safe_cells, DROP COLUMN max_part_bytes;
"""
    for table in ("jobs", "schedules")
)


def upgrade() -> None:
    """Add the option columns and widen the formats."""
    op.execute(UPGRADE)


def downgrade() -> None:
    """Drop them again (jobs in the new formats keep their format text, unchecked)."""
    op.execute(DOWNGRADE)
