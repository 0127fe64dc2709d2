"""The poller core's failure policy on real outbox rows: how a failed attempt is recorded,
counted and logged (one line per attempt: a retry is a WARNING, a death one ERROR)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import Connection
from psycopg_pool import ConnectionPool

from app.platform.db import open_pool
from app.platform.errors import TransientError
from app.queue import outbox
from app.queue.outbox import Message
from poller.core.backoff import Backoff
from poller.core.failures import FailurePolicy
from poller.core.handler import Outcome, Settled
from poller.core.lease import Lease
from tests.support.operations import claim, queued_job


class Failing:
    """A topic handler whose work always fails transiently; records how it was settled."""

    def __init__(self) -> None:
        self.retried: list[tuple[int, str, float]] = []

    def handle(self, lease: Lease) -> Settled:
        raise TransientError("the bucket said SlowDown")

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        outbox.retry_message(conn, message, error, delay)
        self.retried.append((message.attempts, error, delay))

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        outbox.bury_message(conn, message, error)

    def handed_back(self, conn: Connection, message: Message) -> None:
        """Nothing of its own to undo."""


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with open_pool(database_url, name="test-failures", max_size=2) as opened:
        yield opened


def test_a_retry_is_one_warning_and_a_death_one_error(
    db: psycopg.Connection, pool: ConnectionPool, log_lines
) -> None:
    job = queued_job(db, max_attempts=2)
    policy = FailurePolicy(pool, Backoff(base_seconds=0.01, cap_seconds=0.01))
    handler = Failing()

    first = policy.run(handler, Lease(claim(db, job.id)))
    db.execute("UPDATE exports.outbox SET visible_at = now()")  # the back-off is over
    second = policy.run(handler, Lease(claim(db, job.id)))

    assert (first, second) == (Outcome.RETRY, Outcome.DEAD)
    assert [attempt for attempt, _, _ in handler.retried] == [1]
    lines = [line for line in log_lines() if line["logger"] == "poller.core"]
    assert [(line["level"], line["message"].split(";")[0]) for line in lines] == [
        ("warning", "attempt failed"),
        ("error", "message dead"),
    ]
    dead = lines[1]
    assert (dead["job_id"], dead["topic"], dead["attempt"], dead["max_attempts"]) == (
        str(job.id),
        "export.run",
        2,
        2,
    )
    assert dead["error"] == "TransientError: the bucket said SlowDown"
    row = db.execute("SELECT dead_at, last_error FROM exports.outbox").fetchone()
    assert row["dead_at"] is not None and row["last_error"] == dead["error"]
