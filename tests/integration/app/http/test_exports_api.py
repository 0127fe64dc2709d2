"""The /v1 API against a real database: shapes, idempotency, listing, cancelling."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
from flask.testing import FlaskClient

from app import create_app
from app.platform.settings import Settings
from tests.conftest import api_key

JOB_FIELDS = [
    "id",
    "owner_id",
    "kind",
    "params",
    "format",
    "columns",
    "csv",
    "safe_cells",
    "max_part_bytes",
    "timezone",
    "priority",
    "window",
    "state",
    "attempts",
    "progress",
    "result",
    "download_url",
    "last_error",
    "schedule_id",
    "created_at",
    "started_at",
    "finished_at",
]


def request_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "owner_id": "user-1",
        "kind": "demo_orders",
        "params": {"since": "2024-01-02"},
        "format": "csv.gz",
        "notify": {"email": "someone@example.com"},
    }
    body.update(overrides)
    return body


def test_post_queues_job_and_outbox_message_together(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    response = client.post("/v1/exports", json=request_body())

    assert response.status_code == 202
    job = response.get_json()
    assert list(job) == JOB_FIELDS
    assert response.headers["Location"] == f"/v1/exports/{job['id']}"
    assert job["state"] == "queued"
    assert job["params"] == {"since": "2024-01-02", "status": None}  # defaults filled in
    assert job["progress"] == {"rows": 0, "bytes": 0}
    assert job["result"] is None and job["download_url"] is None
    messages = db.execute("SELECT topic, job_id, attempts FROM exports.outbox").fetchall()
    assert messages == [{"topic": "export.run", "job_id": uuid.UUID(job["id"]), "attempts": 0}]


def test_a_bulk_request_waits_behind_interactive_work_for_at_most_the_max_wait(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    bulk = client.post("/v1/exports", json=request_body(priority="bulk")).get_json()
    plain = client.post("/v1/exports", json=request_body(params={})).get_json()
    refused = client.post("/v1/exports", json=request_body(priority="scheduled"))

    assert (bulk["priority"], plain["priority"]) == ("bulk", "interactive")
    waits = {
        row["job_id"]: (row["priority"], row["priority_wait_seconds"], row["tenant"])
        for row in db.execute("SELECT * FROM exports.outbox").fetchall()
    }
    assert waits[uuid.UUID(bulk["id"])] == ("bulk", 600, "default")  # EXPORTS_PRIORITY_MAX_WAIT
    assert waits[uuid.UUID(plain["id"])] == ("interactive", 0, "default")
    assert refused.status_code == 422
    assert [e["pointer"] for e in refused.get_json()["errors"]] == ["/priority"]


def test_get_returns_the_job(client: FlaskClient) -> None:
    created = client.post("/v1/exports", json=request_body()).get_json()

    response = client.get(f"/v1/exports/{created['id']}")

    assert response.status_code == 200
    assert response.get_json() == created


def test_same_idempotency_key_and_body_returns_the_same_job(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    headers = {"Idempotency-Key": "order-export-42"}
    first = client.post("/v1/exports", json=request_body(), headers=headers)
    again = client.post("/v1/exports", json=request_body(), headers=headers)

    assert again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.execute("SELECT count(*) AS n FROM exports.outbox").fetchone()["n"] == 1


def test_same_idempotency_key_with_another_body_is_a_conflict(client: FlaskClient) -> None:
    headers = {"Idempotency-Key": "order-export-42"}
    first = client.post("/v1/exports", json=request_body(), headers=headers)
    other = client.post("/v1/exports", json=request_body(format="csv"), headers=headers)

    assert other.status_code == 409
    assert other.mimetype == "application/problem+json"
    assert other.get_json()["type"].endswith("/idempotency-conflict")
    assert other.get_json()["job_id"] == first.get_json()["id"]


def test_idempotency_key_is_per_owner(client: FlaskClient) -> None:
    headers = {"Idempotency-Key": "same-key"}
    one = client.post("/v1/exports", json=request_body(owner_id="user-1"), headers=headers)
    two = client.post("/v1/exports", json=request_body(owner_id="user-2"), headers=headers)

    assert one.get_json()["id"] != two.get_json()["id"]


def test_concurrent_retries_with_one_key_create_one_job(app: Any, db: psycopg.Connection) -> None:
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/v1/exports", json=request_body(), headers={"Idempotency-Key": "race"}
        )
        assert response.status_code == 202
        ids.append(response.get_json()["id"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ids) == 8 and len(set(ids)) == 1
    assert db.execute("SELECT count(*) AS n FROM exports.jobs").fetchone()["n"] == 1
    assert db.execute("SELECT count(*) AS n FROM exports.outbox").fetchone()["n"] == 1


def test_list_is_newest_first_filtered_and_paged_by_cursor(client: FlaskClient) -> None:
    created = [
        client.post("/v1/exports", json=request_body(owner_id="user-1")).get_json()["id"]
        for _ in range(5)
    ]
    client.post("/v1/exports", json=request_body(owner_id="user-2"))

    first = client.get("/v1/exports?owner_id=user-1&limit=2").get_json()
    second = client.get(f"/v1/exports?owner_id=user-1&limit=2&cursor={first['next_cursor']}")
    third = client.get(
        f"/v1/exports?owner_id=user-1&limit=2&cursor={second.get_json()['next_cursor']}"
    ).get_json()

    pages = [first["items"], second.get_json()["items"], third["items"]]
    assert [job["id"] for page in pages for job in page] == created[::-1]
    assert third["next_cursor"] is None
    assert all(job["owner_id"] == "user-1" for page in pages for job in page)


def test_list_filters_by_state(client: FlaskClient) -> None:
    keep = client.post("/v1/exports", json=request_body()).get_json()
    cancelled = client.post("/v1/exports", json=request_body()).get_json()
    client.post(f"/v1/exports/{cancelled['id']}/cancel")

    listed = client.get("/v1/exports?state=cancelled").get_json()["items"]

    assert [job["id"] for job in listed] == [cancelled["id"]]
    assert keep["id"] not in {job["id"] for job in listed}


def test_cancel_a_queued_export(client: FlaskClient) -> None:
    job = client.post("/v1/exports", json=request_body()).get_json()

    response = client.post(f"/v1/exports/{job['id']}/cancel")
    again = client.post(f"/v1/exports/{job['id']}/cancel")

    assert response.status_code == 200
    assert response.get_json()["state"] == "cancelled"
    assert response.get_json()["finished_at"] is not None
    assert again.status_code == 200  # cancelling twice is harmless


def test_cancel_a_finished_export_is_a_conflict(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    job = client.post("/v1/exports", json=request_body()).get_json()
    db.execute(
        "UPDATE exports.jobs SET state = 'failed', finished_at = now() WHERE id = %s",
        (job["id"],),
    )

    response = client.post(f"/v1/exports/{job['id']}/cancel")

    assert response.status_code == 409
    assert response.get_json()["type"].endswith("/not-cancellable")
    assert response.get_json()["state"] == "failed"


def test_export_kinds_lists_the_catalog(client: FlaskClient) -> None:
    kinds = client.get("/v1/export-kinds").get_json()["kinds"]

    demo = next(kind for kind in kinds if kind["name"] == "demo_orders")
    assert demo["formats"] == ["csv", "csv.gz", "jsonl", "jsonl.gz", "xlsx", "parquet"]
    windowed = next(kind for kind in kinds if kind["name"] == "demo_orders_window")
    assert (demo["window"], windowed["window"]) == (None, {"default_days": 7})
    assert [(c["name"], c["type"], c["pg_type"]) for c in demo["columns"][:2]] == [
        ("order_id", "integer", "bigint"),
        ("placed_at", "datetime", "timestamp with time zone"),
    ]
    assert demo["params"][0] == {
        "name": "since",
        "type": "date",
        "required": False,
        "default": None,
        "description": "Only orders placed on or after this day.",
    }


def test_every_time_the_api_returns_is_utc_with_a_z(
    settings: Settings, db: psycopg.Connection
) -> None:
    # Issue 13: job times carried the database session's offset ("-05:00") while schedule
    # times were UTC "Z". A database whose default zone is not UTC showed it.
    name = db.execute("SELECT current_database() AS name").fetchone()["name"]
    db.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = 'America/New_York'")
    app = create_app(settings)
    try:
        client = app.test_client()
        bearer = {"Authorization": f"Bearer {api_key(settings.database_url, 'tz', 'default')}"}
        job = client.post(
            "/v1/exports", json={"owner_id": "u", "kind": "demo_orders"}, headers=bearer
        ).get_json()
        cancelled = client.post(f"/v1/exports/{job['id']}/cancel", headers=bearer).get_json()
        schedule = client.post(
            "/v1/schedules",
            json={
                "owner_id": "u",
                "kind": "demo_orders",
                "cron": "0 8 * * *",
                "timezone": "Europe/Berlin",
            },
            headers=bearer,
        ).get_json()
    finally:
        app.extensions["exports"].close()

    times = [
        job["created_at"],
        cancelled["created_at"],
        cancelled["finished_at"],
        schedule["created_at"],
        schedule["next_run_at"],
        *schedule["next_runs"],
    ]
    assert all(t.endswith("Z") and "+" not in t for t in times), times
