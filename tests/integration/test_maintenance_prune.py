"""prune_outbox: finished messages past retention go, in batches; everything else stays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg
import pytest

from app.exports.topics import EXPORT_NOTIFY
from app.queue import outbox
from app.queue.outbox import prune_outbox
from tests.support.operations import claim, failed_job, queued_job

WEEK = dt.timedelta(days=7)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A transactional connection, like the poller's pool hands out."""
    with psycopg.connect(database_url) as connection:
        yield connection


def outbox_ids(db: psycopg.Connection) -> set[int]:
    return {r["id"] for r in db.execute("SELECT id FROM exports.outbox").fetchall()}


def age(db: psycopg.Connection, column: str, days: int, where: str = "true") -> set[int]:
    """Set `column` (done_at or dead_at) of the rows where it is set to `days` ago."""
    rows = db.execute(
        f"UPDATE exports.outbox SET {column} = now() - make_interval(days => %s)"
        f" WHERE {column} IS NOT NULL AND {where} RETURNING id",
        (days,),
    ).fetchall()
    return {r["id"] for r in rows}


def finished_messages(db: psycopg.Connection, n: int) -> None:
    """`n` jobs whose export failed: n dead export.run and n done (withdrawn) emails."""
    for _ in range(n):
        job = failed_job(db)
        outbox.complete_message(db, claim(db, job.id, EXPORT_NOTIFY))


def test_prune_deletes_only_done_and_dead_rows_older_than_retention(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    finished_messages(db, 2)
    old = age(db, "done_at", 8) | age(db, "dead_at", 10)
    finished_messages(db, 1)  # finished just now: within retention
    waiting = queued_job(db)
    # Unfinished but ancient (created and visible long ago): never pruned.
    db.execute(
        "UPDATE exports.outbox SET created_at = now() - interval '30 days',"
        " visible_at = now() - interval '30 days' WHERE job_id = %s",
        (waiting.id,),
    )
    before = outbox_ids(db)

    deleted = prune_outbox(conn, older_than=WEEK)

    assert deleted == len(old) == 4
    assert outbox_ids(db) == before - old


def test_prune_works_through_many_batches(db: psycopg.Connection, conn: psycopg.Connection) -> None:
    finished_messages(db, 5)
    old = age(db, "done_at", 8) | age(db, "dead_at", 8)

    deleted = prune_outbox(conn, older_than=WEEK, batch_size=3)

    assert deleted == len(old) == 10 and outbox_ids(db) == set()
    assert prune_outbox(conn, older_than=WEEK, batch_size=3) == 0


def test_each_batch_commits_and_rows_in_use_are_skipped(
    db: psycopg.Connection, conn: psycopg.Connection, database_url: str
) -> None:
    finished_messages(db, 3)
    old = age(db, "done_at", 8) | age(db, "dead_at", 8)
    locked = min(old)
    with psycopg.connect(database_url) as dba:
        # A DBA is looking at one row FOR UPDATE: prune neither waits for it nor fails.
        dba.execute("SELECT * FROM exports.outbox WHERE id = %s FOR UPDATE", (locked,))

        deleted = prune_outbox(conn, older_than=WEEK, batch_size=2)

        # Seen from another session while prune's connection is idle: committed.
        assert deleted == len(old) - 1 and outbox_ids(db) == {locked}
    assert prune_outbox(conn, older_than=WEEK) == 1


def test_prune_rejects_nonsense_arguments(conn: psycopg.Connection) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        prune_outbox(conn, older_than=WEEK, batch_size=0)
    with pytest.raises(ValueError, match="older_than"):
        prune_outbox(conn, older_than=-WEEK)
