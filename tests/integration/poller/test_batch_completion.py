"""Handlers that return Settled.BY_POLLER: the poller completes their messages in batches,
fenced by the attempt it claimed, and only after the handler returned."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from prometheus_client import REGISTRY

from app.exports.topics import EXPORT_NOTIFY
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from poller.core.handler import Settled
from poller.core.lease import Lease
from tests.support.waiting import wait_until


class Recording:
    """Records each message it is given; then runs `during` and leaves completion to the poller."""

    def __init__(self, during: Callable[[Lease], None] = lambda lease: None) -> None:
        self.handled: list[int] = []
        self.during = during
        self._lock = threading.Lock()

    def handle(self, lease: Lease) -> Settled:
        with self._lock:
            self.handled.append(lease.message.id)
        self.during(lease)
        return Settled.BY_POLLER

    def retry(self, conn: Any, message: Any, error: str, delay: float) -> None:
        raise AssertionError(f"unexpected retry: {error}")

    def give_up(self, conn: Any, message: Any, error: str) -> None:
        raise AssertionError(f"unexpected give-up: {error}")


def add_messages(db: psycopg.Connection, count: int) -> list[int]:
    rows = db.execute(
        "INSERT INTO exports.outbox (topic, job_id, tenant) "
        "SELECT %s, NULL, 'default' FROM generate_series(1, %s) RETURNING id",
        (EXPORT_NOTIFY, count),
    ).fetchall()
    db.commit()
    return [r["id"] for r in rows]


def unfinished(db: psycopg.Connection) -> int:
    row = db.execute(
        "SELECT count(*) AS n FROM exports.outbox WHERE done_at IS NULL AND dead_at IS NULL"
    ).fetchone()
    db.commit()
    return row["n"] if row else -1


def with_handler(poller: Poller, handler: Recording) -> Poller:
    poller.handlers = {**poller.handlers, EXPORT_NOTIFY: handler}
    return poller


def test_two_pollers_complete_1000_fast_messages_exactly_once(
    db: psycopg.Connection, settings: Settings, start_poller: Callable[..., Poller]
) -> None:
    handler = Recording()
    pollers = [with_handler(start_poller(), handler) for _ in range(2)]
    ids = add_messages(db, 1000)

    wait_until(lambda: unfinished(db) == 0, timeout=60)

    assert sorted(handler.handled) == sorted(ids)  # each ran once
    rows = db.execute(
        "SELECT count(*) FILTER (WHERE attempts = 1 AND done_at IS NOT NULL) AS once, "
        "count(*) AS total FROM exports.outbox"
    ).fetchone()
    assert rows == {"once": 1000, "total": 1000}
    # A no-op is a fast topic: at least one poller claimed beyond its free threads.
    assert any(p.fast_topics() == [EXPORT_NOTIFY] for p in pollers)


def test_a_message_is_completed_only_after_its_handler_returned(
    db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    release = threading.Event()
    started = threading.Event()

    def block(lease: Lease) -> None:
        started.set()
        release.wait(30)

    with_handler(start_poller(), Recording(during=block))
    [message_id] = add_messages(db, 1)
    wait_until(started.is_set, timeout=10)

    assert unfinished(db) == 1  # running, not done
    release.set()
    wait_until(lambda: unfinished(db) == 0, timeout=10)
    done = db.execute(
        "SELECT done_at IS NOT NULL AS done FROM exports.outbox WHERE id = %s", (message_id,)
    ).fetchone()
    assert done == {"done": True}


def test_a_batch_completion_after_the_lease_was_lost_changes_nothing(
    db: psycopg.Connection, database_url: str, start_poller: Callable[..., Poller]
) -> None:
    def lose_the_lease(lease: Lease) -> None:
        # Another poller re-claims the message (its lease lapsed) while this one works.
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute(
                "UPDATE exports.outbox SET attempts = attempts + 1, leased_by = 'other' "
                "WHERE id = %s",
                (lease.message.id,),
            )

    handler = Recording(during=lose_the_lease)
    with_handler(start_poller(), handler)
    dropped_before = dropped()
    [message_id] = add_messages(db, 1)

    # The poller tried its batch completion (fenced on attempt 1) and found it lost.
    wait_until(lambda: dropped() > dropped_before, timeout=10)
    row = db.execute(
        "SELECT done_at, attempts, leased_by FROM exports.outbox WHERE id = %s", (message_id,)
    ).fetchone()
    assert handler.handled == [message_id]
    assert row == {"done_at": None, "attempts": 2, "leased_by": "other"}  # untouched


def dropped() -> float:
    """Messages pollers in this process counted as dropped (lease lost) so far."""
    value = REGISTRY.get_sample_value(
        "exports_messages_total", {"topic": EXPORT_NOTIFY, "outcome": "dropped"}
    )
    return value or 0.0
