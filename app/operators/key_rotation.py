"""Re-encrypt every stored secret under the first of EXPORTS_ENCRYPTION_KEYS, in batches.

Run by `exports-admin rotate-keys` after a new key was put first (and the API and pollers
restarted with it). Every batch is its own transaction; running it again is harmless (a
value already under the first key is rewritten the same way), so it can be stopped and
started. Once it has run, the old key can be dropped from EXPORTS_ENCRYPTION_KEYS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from app.platform import crypto
from app.platform.db import fetch_all, fetch_one

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class Rotated:
    """How many values of each kind were re-encrypted."""

    job_emails: int
    schedule_emails: int
    webhook_endpoints: int
    suppressions: int


def rotate_keys(conn: Connection, *, batch: int = DEFAULT_BATCH) -> Rotated:
    """Re-encrypt job and schedule addresses, webhook secrets and suppressions (re-indexed
    too), committing after every batch."""
    vault = crypto.vault()

    def job_email(row: dict[str, Any]) -> None:
        fetch_one(conn, "reseal_job_email", id=row["id"], token=vault.rotate(row["token"]))

    def schedule_email(row: dict[str, Any]) -> None:
        fetch_one(conn, "reseal_schedule_email", id=row["id"], token=vault.rotate(row["token"]))

    def endpoint(row: dict[str, Any]) -> None:
        previous = row["previous_secret"]
        fetch_one(
            conn,
            "reseal_endpoint_secrets",
            id=row["id"],
            secret=vault.rotate(row["secret"]),
            previous=vault.rotate(previous) if previous is not None else None,
        )

    def suppression(row: dict[str, Any]) -> None:
        address = vault.decrypt(row["token"])
        fetch_one(
            conn,
            "reseal_suppression",
            id=row["id"],
            token=vault.encrypt(address),
            new_index=vault.blind_index(address),
        )

    return Rotated(
        job_emails=_in_batches(
            conn, lambda a: fetch_all(conn, "jobs_with_email", after=a, limit=batch), job_email
        ),
        schedule_emails=_in_batches(
            conn,
            lambda a: fetch_all(conn, "schedules_with_email", after=a, limit=batch),
            schedule_email,
        ),
        webhook_endpoints=_in_batches(
            conn,
            lambda a: fetch_all(conn, "endpoints_with_secrets", after=a, limit=batch),
            endpoint,
        ),
        # Re-indexing changes the keyset position of a row, so the rows are listed first.
        suppressions=_each(conn, fetch_all(conn, "suppressions_to_reseal"), suppression, batch),
    )


def _each(
    conn: Connection,
    rows: list[dict[str, Any]],
    reseal: Callable[[dict[str, Any]], None],
    batch: int,
) -> int:
    """Reseal `rows`, committing every `batch` of them."""
    for start in range(0, len(rows), batch):
        for row in rows[start : start + batch]:
            reseal(row)
        conn.commit()
    return len(rows)


def _in_batches(
    conn: Connection,
    read: Callable[[Any], list[dict[str, Any]]],
    reseal: Callable[[dict[str, Any]], None],
) -> int:
    """Read a batch after the last row's id, reseal each row, commit; until none is left."""
    done = 0
    after = None
    while rows := read(after):
        for row in rows:
            reseal(row)
        conn.commit()
        done += len(rows)
        after = rows[-1]["id"]
    return done
