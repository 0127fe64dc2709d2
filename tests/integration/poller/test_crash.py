"""A poller killed mid-export: its lease lapses, another poller finishes, late writes are fenced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from flask.testing import FlaskClient

from app.exports import jobs
from app.exports.demo import seed_demo_orders
from app.platform.db import LeaseLost
from app.platform.settings import Settings
from app.queue.outbox import Message
from poller.core.dispatch import Poller
from tests.support.exports import job_ended, job_row, messages, submit
from tests.support.processes import start_poller_process
from tests.support.waiting import wait_until


def test_killed_poller_is_replaced_and_its_late_writes_change_nothing(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    database_url: str,
    start_poller: Callable[..., Poller],
    tmp_path: Path,
) -> None:
    seed_demo_orders(db, 600)  # 200 rows for user-1, ~4 s of export at 20 ms a row
    job = submit(client, kind="slow_orders", params={"pause": 0.02}, format="csv")
    doomed = start_poller_process(settings, tmp_path / "doomed.log", EXPORTS_LEASE_SECONDS="2")
    try:
        wait_until(lambda: job_row(db, job["id"])["progress_rows"] > 0, what="the export to run")
    finally:
        doomed.kill()  # SIGKILL: no cleanup, no goodbye; only the lease tells
        doomed.wait()
    [claimed] = messages(db, job["id"])
    assert claimed["attempts"] == 1 and claimed["done_at"] is None

    start_poller()
    ended = wait_until(lambda: job_ended(db, job["id"]), timeout=60, what="the takeover")

    assert ended["state"] == "succeeded"
    assert ended["attempts"] == 2 and ended["result_rows"] == 200
    [message] = messages(db, job["id"])
    assert message["attempts"] == 2 and message["done_at"] is not None
    assert message["leased_by"] != claimed["leased_by"]
    # The history alone tells a DBA what happened to attempt 1.
    [lapsed] = message["errors"]
    assert lapsed["attempt"] == 1
    assert lapsed["error"] == f"lease expired: {claimed['leased_by']} stopped heartbeating"

    # The killed poller, had it lived on, would write as attempt 1: every such write is fenced.
    stale = Message(message["id"], "export.run", message["job_id"], {}, 1, 5)
    result = jobs.ExportResult((jobs.StoredPart("late/key.csv", 1, 1, "0" * 64),), "text/csv")
    late_writes = [
        (LeaseLost, lambda c: jobs.finish_export(c, stale, result, retention_seconds=60)),
        (LeaseLost, lambda c: jobs.fail_export(c, stale, "late failure")),
        (LeaseLost, lambda c: jobs.retry_export(c, stale, "late retry", 1.0)),
        (jobs.ExportStopped, lambda c: jobs.record_progress(c, stale, rows=1, bytes_=1)),
    ]
    for error, write in late_writes:
        with psycopg.connect(database_url) as conn, pytest.raises(error):
            write(conn)
    with psycopg.connect(database_url) as conn:
        assert jobs.start_export(conn, stale) is None  # cannot take the job back either
    assert job_row(db, job["id"]) == ended
    assert messages(db, job["id"]) == [message]
