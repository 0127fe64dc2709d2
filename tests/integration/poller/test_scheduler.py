"""A real poller's scheduler fires due schedules, and the jobs they queue run to the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from flask.testing import FlaskClient

from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import job_ended, stored_file
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
