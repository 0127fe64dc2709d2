"""Encryption at rest (issue 14): email addresses and webhook secrets are stored as Fernet
tokens (app/platform/crypto.py, EXPORTS_ENCRYPTION_KEYS); addresses get a masked form for
DBAs (a***@example.com) and suppressions a blind index to be looked up by.

This migration encrypts the rows already there, with the first key of
EXPORTS_ENCRYPTION_KEYS (it must be set when there is anything to encrypt); the downgrade
decrypts them again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import os

from alembic import op
from cryptography.fernet import Fernet, MultiFernet

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE exports.jobs ADD COLUMN notify_email_masked text;
COMMENT ON COLUMN exports.jobs.notify_email IS
    'Where the link is emailed, encrypted (a Fernet token: app/platform/crypto.py); '
    'NULL: no email.';
COMMENT ON COLUMN exports.jobs.notify_email_masked IS
    'notify_email masked for people (a***@example.com).';
ALTER TABLE exports.schedules ADD COLUMN notify_email_masked text;
COMMENT ON COLUMN exports.schedules.notify_email IS
    'Where each job''s link is emailed, encrypted (a Fernet token); NULL: no email.';
COMMENT ON COLUMN exports.schedules.notify_email_masked IS
    'notify_email masked for people (a***@example.com).';

ALTER TABLE exports.email_suppressions DROP CONSTRAINT email_suppressions_pkey;
ALTER TABLE exports.email_suppressions DROP CONSTRAINT email_suppressions_address_check;
ALTER TABLE exports.email_suppressions
    ADD COLUMN address_index text,
    ADD COLUMN address_masked text;
COMMENT ON COLUMN exports.email_suppressions.address IS
    'The email address (lower-cased), encrypted (a Fernet token).';
COMMENT ON COLUMN exports.email_suppressions.address_index IS
    'Blind index of the lower-cased address (HMAC-SHA256 under a key derived from the '
    'encryption key): what lookups match. exports-admin unsuppress ADDRESS deletes by it.';
COMMENT ON COLUMN exports.email_suppressions.address_masked IS
    'The address masked for people (a***@example.com).';
COMMENT ON COLUMN exports.webhook_endpoints.secret IS
    'The whsec_ signing secret, encrypted (a Fernet token); shown to the app only when '
    'created or rotated.';
COMMENT ON COLUMN exports.webhook_endpoints.previous_secret IS
    'The secret before the last rotation, encrypted: deliveries are signed with both until '
    'previous_secret_expires_at (24 h after the rotation).';
"""

CONSTRAIN = r"""
ALTER TABLE exports.email_suppressions ALTER COLUMN address_index SET NOT NULL;
ALTER TABLE exports.email_suppressions ALTER COLUMN address_masked SET NOT NULL;
ALTER TABLE exports.email_suppressions ADD PRIMARY KEY (address_index);
"""

DOWNGRADE = r"""
ALTER TABLE exports.email_suppressions DROP CONSTRAINT email_suppressions_pkey;
ALTER TABLE exports.email_suppressions DROP COLUMN address_index, DROP COLUMN address_masked;
ALTER TABLE exports.email_suppressions ADD PRIMARY KEY (address);
ALTER TABLE exports.email_suppressions ADD CONSTRAINT email_suppressions_address_check
    CHECK (address = lower(address) AND address <> '');
ALTER TABLE exports.schedules DROP COLUMN notify_email_masked;
ALTER TABLE exports.jobs DROP COLUMN notify_email_masked;
"""

# Frozen copy of sql/views/schedules_local.sql as of this migration: masked addresses.
SCHEDULES_LOCAL = r"""
CREATE OR REPLACE VIEW exports.schedules_local AS
SELECT s.id, s.tenant, s.owner_id, s.kind, s.format, s.cron, s.timezone, s.enabled,
       s.next_run_at AT TIME ZONE s.timezone AS next_run_local,
       s.last_run_at AT TIME ZONE s.timezone AS last_run_local,
       s.next_run_at, s.last_run_at, s.last_job_id, j.state AS last_job_state,
       s.notify_email_masked AS notify_email, s.params, s.created_at, s.updated_at
FROM exports.schedules s
LEFT JOIN exports.jobs j ON j.id = s.last_job_id;
"""
SCHEDULES_LOCAL_0004 = SCHEDULES_LOCAL.replace(
    "s.notify_email_masked AS notify_email", "s.notify_email"
)
# The blind-index key is derived from a Fernet key with this context (app/platform/crypto.py).
INDEX_CONTEXT = b"exports.blind-index.v1"


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def _keys(needed: bool) -> list[str]:
    raw = os.environ.get("EXPORTS_ENCRYPTION_KEYS", "")
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if needed and not keys:
        raise RuntimeError(
            "EXPORTS_ENCRYPTION_KEYS must be set to encrypt the addresses and secrets already "
            "stored (the same keys the API and pollers will use)"
        )
    return keys


def _rows(sql: str) -> list:
    return op.get_bind().exec_driver_sql(sql).fetchall()


def _write(sql: str, values: list[dict]) -> None:
    if values:
        op.get_bind().exec_driver_sql(sql, values)


def upgrade() -> None:
    """Add the columns, encrypt what is stored, then constrain."""
    op.execute(UPGRADE)
    jobs = _rows("SELECT id, notify_email FROM exports.jobs WHERE notify_email IS NOT NULL")
    schedules = _rows(
        "SELECT id, notify_email FROM exports.schedules WHERE notify_email IS NOT NULL"
    )
    suppressions = _rows("SELECT address FROM exports.email_suppressions")
    endpoints = _rows("SELECT id, secret, previous_secret FROM exports.webhook_endpoints")
    keys = _keys(needed=bool(jobs or schedules or suppressions or endpoints))
    if keys:
        import hashlib
        import hmac

        fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        index_key = hmac.new(keys[0].encode(), INDEX_CONTEXT, hashlib.sha256).digest()

        def seal(text: str | None) -> str | None:
            return fernet.encrypt(text.encode()).decode() if text is not None else None

        for table, rows in (("jobs", jobs), ("schedules", schedules)):
            _write(
                f"UPDATE exports.{table} SET notify_email = %(token)s, "
                "notify_email_masked = %(masked)s WHERE id = %(id)s",
                [{"id": i, "token": seal(a), "masked": _mask(a)} for i, a in rows],
            )
        _write(
            "UPDATE exports.email_suppressions SET address = %(token)s, "
            "address_index = %(index)s, address_masked = %(masked)s WHERE address = %(address)s",
            [
                {
                    "address": a,
                    "token": seal(a),
                    "index": hmac.new(index_key, a.encode(), hashlib.sha256).hexdigest(),
                    "masked": _mask(a),
                }
                for (a,) in suppressions
            ],
        )
        _write(
            "UPDATE exports.webhook_endpoints SET secret = %(secret)s, "
            "previous_secret = %(previous)s WHERE id = %(id)s",
            [{"id": i, "secret": seal(s), "previous": seal(p)} for i, s, p in endpoints],
        )
    op.execute(CONSTRAIN)
    op.execute(SCHEDULES_LOCAL)


def downgrade() -> None:
    """Decrypt what is stored and drop the new columns."""
    op.execute(SCHEDULES_LOCAL_0004)
    jobs = _rows("SELECT id, notify_email FROM exports.jobs WHERE notify_email IS NOT NULL")
    schedules = _rows(
        "SELECT id, notify_email FROM exports.schedules WHERE notify_email IS NOT NULL"
    )
    suppressions = _rows("SELECT address_index, address FROM exports.email_suppressions")
    endpoints = _rows("SELECT id, secret, previous_secret FROM exports.webhook_endpoints")
    keys = _keys(needed=bool(jobs or schedules or suppressions or endpoints))
    if keys:
        fernet = MultiFernet([Fernet(k.encode()) for k in keys])

        def unseal(token: str | None) -> str | None:
            return fernet.decrypt(token.encode()).decode() if token is not None else None

        for table, rows in (("jobs", jobs), ("schedules", schedules)):
            _write(
                f"UPDATE exports.{table} SET notify_email = %(address)s WHERE id = %(id)s",
                [{"id": i, "address": unseal(t)} for i, t in rows],
            )
        _write(
            "UPDATE exports.email_suppressions SET address = %(address)s "
            "WHERE address_index = %(index)s",
            [{"index": i, "address": unseal(t)} for i, t in suppressions],
        )
        _write(
            "UPDATE exports.webhook_endpoints SET secret = %(secret)s, "
            "previous_secret = %(previous)s WHERE id = %(id)s",
            [{"id": i, "secret": unseal(s), "previous": unseal(p)} for i, s, p in endpoints],
        )
    op.execute(DOWNGRADE)
