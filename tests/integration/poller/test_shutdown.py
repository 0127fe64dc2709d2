"""SIGTERM as ECS sends it: stop claiming, finish or hand back in-flight work, exit 0."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
from flask.testing import FlaskClient

from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import job_ended, job_row, messages, stored_file, submit
from tests.support.processes import start_poller_process
from tests.support.waiting import wait_until


def stop(process: subprocess.Popen, *signals: signal.Signals, within: float) -> int:
    """Send the signals; the exit code, which must come within `within` seconds.

    `within` is set well under the poller's grace period, so a poller that waited the
    grace out (instead of exiting when it had nothing left to do) fails the test.
    """
    for sig in signals:
        process.send_signal(sig)
    return process.wait(timeout=within)


def test_idle_poller_exits_0_at_once(settings: Settings, tmp_path: Path) -> None:
    poller = start_poller_process(settings, tmp_path / "poller.log", EXPORTS_SHUTDOWN_GRACE="60")
    wait_until(lambda: b"poller started" in (tmp_path / "poller.log").read_bytes(), what="start")

    assert stop(poller, signal.SIGTERM, within=30) == 0


def test_work_that_finishes_within_the_grace_period_is_finished(
    client: FlaskClient, db: psycopg.Connection, settings: Settings, tmp_path: Path
) -> None:
    seed_demo_orders(db, 300)  # 100 rows for user-1: ~2 s at 20 ms a row
    job = submit(client, kind="slow_orders", params={"pause": 0.02})
    poller = start_poller_process(settings, tmp_path / "poller.log", EXPORTS_SHUTDOWN_GRACE="20")
    wait_until(lambda: job_row(db, job["id"])["state"] == "running", what="the export to start")

    assert stop(poller, signal.SIGTERM, within=20) == 0
    assert job_row(db, job["id"])["state"] == "succeeded"
    assert messages(db, job["id"])[0]["attempts"] == 1


def test_unfinished_work_is_handed_back_without_using_an_attempt(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
    tmp_path: Path,
) -> None:
    seed_demo_orders(db, 600)  # 200 rows for user-1: ~10 s at 50 ms a row
    job = submit(client, kind="slow_orders", params={"pause": 0.05})
    poller = start_poller_process(settings, tmp_path / "poller.log", EXPORTS_SHUTDOWN_GRACE="1")
    wait_until(lambda: job_row(db, job["id"])["progress_rows"] > 0, what="the export to run")

    # Grace 1 s against ~10 s of work: it must hand the work back, not finish it.
    assert stop(poller, signal.SIGTERM, within=8) == 0
    [message] = messages(db, job["id"])
    assert message["attempts"] == 1 and message["max_attempts"] == 6  # this one is free
    assert message["leased_by"] is None and message["done_at"] is None
    [handed_back] = message["errors"]
    assert handed_back["error"].startswith("handed back at shutdown by ")
    assert job_row(db, job["id"])["state"] == "queued"

    start_poller()
    ended = wait_until(lambda: job_ended(db, job["id"]), timeout=60, what="another poller")
    assert ended["state"] == "succeeded" and ended["attempts"] == 2
    # The first attempt's half-written file is gone; only the result is left.
    files = [p for p in stored_file(settings, "").rglob("*") if p.is_file()]
    assert files == [stored_file(settings, ended["result_key"])]


def test_second_signal_exits_at_once(
    client: FlaskClient, db: psycopg.Connection, settings: Settings, tmp_path: Path
) -> None:
    seed_demo_orders(db, 600)
    job = submit(client, kind="slow_orders", params={"pause": 0.05})
    poller = start_poller_process(settings, tmp_path / "poller.log", EXPORTS_SHUTDOWN_GRACE="60")
    wait_until(lambda: job_row(db, job["id"])["state"] == "running", what="the export to start")

    assert stop(poller, signal.SIGTERM, signal.SIGINT, within=30) == 1
