"""Fairness with real pollers, real exports and PostgreSQL: another tenant's export starts
before a backlog drains, and max_running holds over several pollers. What happened is read
from the jobs' started_at and finished_at, which the export handler itself writes (start of
the run, and the transaction that ends it and its lease)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import psycopg
import pytest

from app.exports import jobs
from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import all_settled
from tests.support.waiting import wait_until

DEMO = jobs.ExportRequest("user-1", "demo_orders", {}, "csv", None)


def request(db: psycopg.Connection, tenant: str, count: int, export: jobs.ExportRequest) -> None:
    for _ in range(count):
        jobs.request_export(db, tenant, export, idempotency_key=None, max_attempts=3)
    db.commit()


def started_order(db: psycopg.Connection) -> list[str]:
    """The tenants of the jobs in the order they started."""
    rows = db.execute("SELECT tenant FROM exports.jobs ORDER BY started_at, id").fetchall()
    return [row["tenant"] for row in rows]


def wait_for_all(db: psycopg.Connection, timeout: float = 60) -> None:
    def done() -> bool:
        db.commit()
        return all_settled(db)

    wait_until(done, timeout=timeout, what="every export to finish")
    states = db.execute("SELECT DISTINCT state FROM exports.jobs").fetchall()
    assert [row["state"] for row in states] == ["succeeded"]


@pytest.mark.parametrize(("order", "most_started_before"), [("fair", 1), ("fifo", 20)])
def test_another_tenants_export_starts_before_a_backlog_drains(
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
    order: str,
    most_started_before: int,
) -> None:
    seed_demo_orders(db, 30)
    request(db, "flood", 20, DEMO)
    request(db, "quiet", 1, DEMO)

    start_poller(claim_order=order, poller_threads=1)
    wait_for_all(db)

    # Fair: quiet's export is in the first round (before or after one of flood's). First
    # in, first out: all of flood's go first.
    started_before = started_order(db).index("quiet")
    assert started_before <= most_started_before
    if order == "fifo":
        assert started_before == 20


def overlaps(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The most intervals open at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = open_now = 0
    for _, step in events:  # at equal instants an end (-1) sorts before a start (+1)
        open_now += step
        most = max(most, open_now)
    return most


@pytest.mark.parametrize("max_running", [2, 0])
def test_max_running_holds_over_three_pollers(
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
    max_running: int,
) -> None:
    seed_demo_orders(db, 9)  # 3 rows for user-1: each export sleeps 3 x pause
    slow = dataclasses.replace(DEMO, kind="slow_orders", params={"pause": 0.1})
    request(db, "busy", 8, slow)
    request(db, "other", 2, DEMO)

    for _ in range(3):  # 6 handler threads between them
        start_poller(max_running_per_tenant=max_running, poller_threads=2)
    wait_for_all(db)

    rows = db.execute(
        "SELECT tenant, started_at, finished_at FROM exports.jobs ORDER BY started_at"
    ).fetchall()
    busy = [(r["started_at"], r["finished_at"]) for r in rows if r["tenant"] == "busy"]
    if max_running:
        assert overlaps(busy) == max_running  # never more than the limit, and it is used
    else:
        assert overlaps(busy) > 2  # 0: no limit, the six threads are shared freely
    # The limited tenant did not hold the other one up: it started before busy's last.
    other_start = min(r["started_at"] for r in rows if r["tenant"] == "other")
    assert other_start < max(start for start, _ in busy)
