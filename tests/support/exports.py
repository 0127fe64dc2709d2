"""Small helpers for tests that drive exports: submit, read back jobs, files and emails."""

from __future__ import annotations

import email
import email.policy
import gzip
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
from flask.testing import FlaskClient

from app.platform.settings import Settings

TERMINAL = ("succeeded", "failed", "cancelled", "expired")


def submit(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    """POST an export (demo_orders for user-1 as csv.gz unless overridden); the job JSON."""
    body: dict[str, Any] = {"owner_id": "user-1", "kind": "demo_orders", "format": "csv.gz"}
    body.update(overrides)
    response = client.post("/v1/exports", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def job_row(db: psycopg.Connection, job_id: str | uuid.UUID) -> dict[str, Any]:
    """The job's row as the database has it."""
    row = db.execute("SELECT * FROM exports.jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return row


def messages(db: psycopg.Connection, job_id: str | uuid.UUID) -> list[dict[str, Any]]:
    """The job's outbox messages, oldest first."""
    return db.execute(
        "SELECT * FROM exports.outbox WHERE job_id = %s ORDER BY id", (job_id,)
    ).fetchall()


def job_ended(db: psycopg.Connection, job_id: str | uuid.UUID) -> dict[str, Any] | None:
    """The job row once it reached a terminal state, else None (for wait_until)."""
    row = job_row(db, job_id)
    return row if row["state"] in TERMINAL else None


def all_settled(db: psycopg.Connection) -> bool:
    """True when no outbox message is waiting or running."""
    row = db.execute(
        "SELECT count(*) AS n FROM exports.outbox WHERE done_at IS NULL AND dead_at IS NULL"
    ).fetchone()
    return row is not None and row["n"] == 0


def stored_file(settings: Settings, key: str) -> Path:
    """Where the file backend keeps `key`."""
    return Path(settings.storage_url.removeprefix("file://")) / key


def emails(settings: Settings) -> list[EmailMessage]:
    """Every email the file mail backend wrote, oldest first."""
    folder = Path(settings.mail_url.removeprefix("file://"))
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    ]


def email_text(message: EmailMessage) -> str:
    """The plain-text body of an email."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def expected_csv(db: psycopg.Connection, query: str, params: dict[str, Any]) -> bytes:
    """What COPY ... (FORMAT csv, HEADER) of `query` gives right now: the reference output."""
    with db.cursor() as cur, cur.copy(
        f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER)", params
    ) as copy:
        return b"".join(bytes(chunk) for chunk in copy)


def decompressed(data: bytes, fmt: str) -> bytes:
    """The CSV bytes of an export file."""
    return gzip.decompress(data) if fmt.endswith(".gz") else data
