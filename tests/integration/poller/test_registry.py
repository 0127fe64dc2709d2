"""The worker registry: a running exports-poller keeps its row in exports.workers."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

import psycopg
from flask.testing import FlaskClient

from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.registry import package_version
from tests.support.exports import job_ended, messages, submit
from tests.support.processes import start_poller_process
from tests.support.waiting import wait_until


def registered(db: psycopg.Connection) -> list[dict[str, Any]]:
    return db.execute("SELECT * FROM exports.workers ORDER BY started_at").fetchall()


def test_a_poller_registers_heartbeats_and_deregisters_on_a_clean_stop(
    client: FlaskClient, db: psycopg.Connection, settings: Settings, tmp_path: Path
) -> None:
    seed_demo_orders(db, 300)  # 100 rows for user-1: ~5 s at 50 ms a row
    poller = start_poller_process(settings, tmp_path / "poller.log", EXPORTS_SHUTDOWN_GRACE="20")

    [row] = wait_until(lambda: registered(db), what="the poller to register")
    assert (row["hostname"], row["pid"]) == (socket.gethostname(), poller.pid)
    assert row["version"] == package_version() and row["in_flight"] == 0

    job = submit(client, kind="slow_orders", params={"pause": 0.05})
    [busy] = wait_until(
        lambda: [r for r in registered(db) if r["in_flight"] == 1], what="a heartbeat while busy"
    )
    assert busy["id"] == row["id"] == messages(db, job["id"])[0]["leased_by"]
    assert busy["last_heartbeat_at"] > row["last_heartbeat_at"]
    assert busy["started_at"] == row["started_at"]

    # A row lost meanwhile (UNLOGGED table after a crash, or removed as stale) comes back.
    db.execute("DELETE FROM exports.workers")
    [back] = wait_until(lambda: registered(db), what="the next heartbeat")
    assert back["id"] == row["id"]

    poller.send_signal(signal.SIGTERM)
    assert poller.wait(timeout=30) == 0
    assert job_ended(db, job["id"]) is not None  # it finished its work within the grace
    assert registered(db) == []
