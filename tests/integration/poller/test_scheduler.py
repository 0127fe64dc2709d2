"""A real poller's scheduler fires due schedules, and the jobs they queue run to the end."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import psycopg
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import job_ended, stored_file, submit
from tests.support.waiting import wait_until

BODY = {
    "owner_id": "user-1",
    "kind": "demo_orders",
    "format": "csv",
    "cron": "* * * * *",
    "timezone": "UTC",
}


def due_soon(db: psycopg.Connection, schedule_id: str, seconds: float = 0.3) -> Any:
    """Move the schedule's next slot to `seconds` from now (as a DBA could); its time."""
    row = db.execute(
        """UPDATE exports.schedules
           SET next_run_at = clock_timestamp() + make_interval(secs => %s)
           WHERE id = %s RETURNING next_run_at""",
        (seconds, schedule_id),
    ).fetchone()
    return row["next_run_at"]


def scheduled_job(db: psycopg.Connection, schedule_id: str) -> dict[str, Any] | None:
    return db.execute(
        "SELECT * FROM exports.jobs WHERE schedule_id = %s", (schedule_id,)
    ).fetchone()


def test_a_due_schedule_is_fired_and_its_export_runs(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 20, owners=1)
    schedule = client.post("/v1/schedules", json=BODY).get_json()
    start_poller()

    slot = due_soon(db, schedule["id"])
    job = wait_until(lambda: scheduled_job(db, schedule["id"]), what="the scheduled job")
    ended = wait_until(lambda: job_ended(db, job["id"]), what="the export to finish")

    assert ended["state"] == "succeeded" and ended["result_rows"] > 0
    assert job["created_at"] >= slot
    after = client.get(f"/v1/schedules/{schedule['id']}").get_json()
    assert after["last_job_id"] == str(job["id"])
    assert after["next_run_at"] > after["last_run_at"]
    assert client.get(f"/v1/exports/{job['id']}").get_json()["schedule_id"] == schedule["id"]


def test_a_schedules_jobs_carry_its_file_options_and_run_in_its_time_zone(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, 20, owners=1)
    body = {
        **BODY,
        "timezone": "Asia/Kolkata",
        "columns": ["placed_at", "order_id"],
        "csv": {"delimiter": ";", "bom": True},
    }
    created = client.post("/v1/schedules", json=body)
    assert created.status_code == 201, created.get_json()
    schedule = created.get_json()
    assert (schedule["columns"], schedule["csv"]) == (
        ["placed_at", "order_id"],
        {"delimiter": ";", "header": True, "bom": True},
    )
    start_poller()

    due_soon(db, schedule["id"])
    job = wait_until(lambda: scheduled_job(db, schedule["id"]), what="the scheduled job")
    ended = wait_until(lambda: job_ended(db, job["id"]), what="the export to finish")

    assert ended["state"] == "succeeded", ended["last_error"]
    assert ended["timezone"] == "Asia/Kolkata"
    text = stored_file(settings, ended["result_key"]).read_bytes().decode("utf-8-sig")
    header, first = text.splitlines()[:2]
    assert header == "placed_at;order_id"
    assert first.split(";")[0].endswith("+05:30")  # India's offset, half an hour and all


def test_csv_options_with_a_format_that_is_not_csv_are_refused(client: FlaskClient) -> None:
    response = client.post(
        "/v1/schedules", json={**BODY, "format": "parquet", "csv": {"delimiter": ";"}}
    )

    assert response.status_code == 422
    assert [e["pointer"] for e in response.get_json()["errors"]] == ["/csv"]


def test_the_scheduler_outlives_a_lost_connection(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    schedule = client.post("/v1/schedules", json=BODY).get_json()
    start_poller()
    wait_until(
        lambda: db.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'exports-poller-scheduler'"
        ).fetchone(),
        what="the scheduler to listen",
    )

    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'exports-poller%%'"
    )
    due_soon(db, schedule["id"])

    job = wait_until(lambda: scheduled_job(db, schedule["id"]), what="the scheduled job")
    assert job["schedule_id"] is not None


def test_a_windowed_export_gets_exactly_its_window(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    start = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    end = dt.datetime(2024, 6, 8, tzinfo=dt.UTC)
    tick = dt.timedelta(microseconds=1)
    for item, placed in (("before", start - tick), ("at start", start), ("last", end - tick),
                         ("at end", end)):  # fmt: skip
        db.execute(
            "INSERT INTO exports_demo.orders (owner_id, placed_at, status, item, quantity,"
            " amount_cents, currency) VALUES ('edge-1', %s, 'placed', %s, 1, 100, 'EUR')",
            (placed, item),
        )
    job = submit(
        client,
        kind="demo_orders_window",
        owner_id="edge-1",
        format="jsonl",
        window={"start": start.isoformat(), "end": end.isoformat()},
    )
    start_poller()

    ended = wait_until(lambda: job_ended(db, job["id"]), what="the windowed export")

    assert ended["state"] == "succeeded", ended["last_error"]
    lines = stored_file(settings, ended["result_key"]).read_text().splitlines()
    assert [json.loads(line)["item"] for line in lines] == ["at start", "last"]  # [start, end)


def test_a_late_slot_is_counted_in_the_lateness_histogram(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    # Yearly: no other slot lies between the late one and now (catch-up would fire that).
    schedule = client.post("/v1/schedules", json={**BODY, "cron": "0 0 1 1 *"}).get_json()
    count = sample("exports_schedule_lateness_seconds_count")
    on_time = sample("exports_schedule_lateness_seconds_bucket", le="10.0")
    # Its slot passed 30 s ago and nothing fired it: the overdue gauge sees it first.
    db.execute(
        "UPDATE exports.schedules SET next_run_at = clock_timestamp() - interval '30 seconds'"
        " WHERE id = %s",
        (schedule["id"],),
    )
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "exports_schedules_overdue 1.0" in metrics

    start_poller()
    wait_until(lambda: scheduled_job(db, schedule["id"]), what="the late slot's job")

    assert sample("exports_schedule_lateness_seconds_count") == count + 1
    assert sample("exports_schedule_lateness_seconds_bucket", le="10.0") == on_time  # > 10 s
    assert sample("exports_schedule_lateness_seconds_bucket", le="60.0") >= on_time + 1
