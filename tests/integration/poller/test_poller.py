"""The poller against a real database with the file backends: runs, retries, failures."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from app.exports import jobs
from app.exports.catalog import load_catalog
from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import (
    all_settled,
    decompressed,
    email_text,
    emails,
    expected_csv,
    job_ended,
    job_row,
    messages,
    stored_file,
    submit,
)
from tests.support.waiting import wait_until

DEMO_QUERY_PARAMS = {"since": None, "status": None}


def test_export_is_stored_and_owner_emailed_a_link(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, 300)
    job = submit(client, notify={"email": "owner@example.com"})
    start_poller()

    ended = wait_until(lambda: job_ended(db, job["id"]), what="the export to finish")
    wait_until(lambda: all_settled(db), what="the email step")

    assert ended["state"] == "succeeded"
    data = decompressed(stored_file(settings, ended["result_key"]).read_bytes(), "csv.gz")
    query = load_catalog(settings.catalog_dir).get("demo_orders").query
    assert data == expected_csv(db, query, {"owner_id": "user-1", **DEMO_QUERY_PARAMS})
    assert ended["result_rows"] == 100 == len(list(csv.reader(io.StringIO(data.decode())))) - 1
    assert ended["progress_rows"] == 100
    [sent] = emails(settings)
    assert sent["To"] == "owner@example.com"
    assert "http://exports.test/d/" in email_text(sent)
    final = job_row(db, job["id"])
    assert final["email_status"] == "sent"
    assert final["email_message_id"] == sent["Message-ID"]
    assert [m["topic"] for m in messages(db, job["id"])] == ["export.run", "export.notify"]


def test_two_pollers_run_200_jobs_exactly_once(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, 30, owners=10)
    ids = [submit(client, owner_id=f"user-{i % 10 + 1}")["id"] for i in range(200)]
    start_poller(poller_threads=4)
    start_poller(poller_threads=4)

    wait_until(lambda: all_settled(db), timeout=120, what="all 200 exports")

    rows = db.execute(
        "SELECT j.state, j.attempts AS job_attempts, o.attempts, o.errors, o.leased_by,"
        "       j.result_key, j.owner_id"
        " FROM exports.jobs j JOIN exports.outbox o ON o.job_id = j.id"
        " WHERE j.id = ANY(%s::uuid[])",
        (ids,),
    ).fetchall()
    assert len(rows) == 200
    assert {r["state"] for r in rows} == {"succeeded"}
    # Claimed once, started once, no failures: each export ran exactly once.
    assert {(r["attempts"], r["job_attempts"]) for r in rows} == {(1, 1)}
    assert all(r["errors"] == [] for r in rows)
    storage_root = stored_file(settings, "")
    assert len(list(storage_root.rglob("*.csv.gz"))) == 200


def test_transient_failure_backs_off_then_succeeds(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 10)
    db.execute("UPDATE public.test_gate SET open = false")
    job = submit(client, kind="gated_orders", format="csv")
    start_poller(retry_base_seconds=1.0)

    def failed_once() -> dict | None:
        [message] = messages(db, job["id"])
        return message if message["errors"] else None

    failed = wait_until(failed_once, what="the first failure")
    waiting = job_row(db, job["id"])
    assert waiting["state"] == "queued"
    assert "test gate is closed" in waiting["last_error"]
    assert failed["leased_by"] is None  # handed back, waiting out its back-off
    db.execute("UPDATE public.test_gate SET open = true")

    ended = wait_until(lambda: job_ended(db, job["id"]), what="the retry to succeed")
    [message] = messages(db, job["id"])
    assert ended["state"] == "succeeded"
    assert ended["last_error"] is None
    assert message["attempts"] == len(message["errors"]) + 1 >= 2
    assert message["errors"][0]["attempt"] == 1
    assert "SerializationFailure" in message["errors"][0]["error"]


def test_permanent_failure_fails_job_at_once_and_emails_owner(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    job = submit(client, kind="broken_orders", notify={"email": "owner@example.com"})
    start_poller()

    ended = wait_until(lambda: job_ended(db, job["id"]), what="the export to fail")
    wait_until(lambda: all_settled(db), what="the failure email")

    assert ended["state"] == "failed"
    assert "division by zero" in ended["last_error"]
    run, notify = messages(db, job["id"])
    assert run["attempts"] == 1 and run["dead_at"] is not None  # no retry for a SQL mistake
    assert [e["attempt"] for e in run["errors"]] == [1]
    assert notify["done_at"] is not None
    [sent] = emails(settings)
    assert sent["To"] == "owner@example.com"
    assert "division by zero" not in sent.as_string()  # internals stay internal
    assert job_row(db, job["id"])["email_status"] == "sent"


def test_exhausted_attempts_bury_the_message_and_fail_the_job(
    app: Flask,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    db.execute("UPDATE public.test_gate SET open = false")
    request = jobs.ExportRequest("user-1", "gated_orders", {}, "csv", "owner@example.com")
    with app.extensions["exports"].pool.connection() as conn:
        job, _ = jobs.request_export(conn, "default", request, idempotency_key=None, max_attempts=3)
    start_poller()

    ended = wait_until(lambda: job_ended(db, job.id), what="the attempts to run out")
    wait_until(lambda: all_settled(db), what="the failure email")

    assert ended["state"] == "failed"
    run = messages(db, job.id)[0]
    assert run["attempts"] == 3 and run["dead_at"] is not None
    assert [e["attempt"] for e in run["errors"]] == [1, 2, 3]
    [sent] = emails(settings)
    assert "could not" in email_text(sent).lower()


def test_cancelled_before_it_ran_never_runs(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    job = submit(client, notify={"email": "owner@example.com"})
    client.post(f"/v1/exports/{job['id']}/cancel")
    start_poller()

    wait_until(lambda: all_settled(db), what="the message to be settled")

    assert job_row(db, job["id"])["state"] == "cancelled"
    assert job_row(db, job["id"])["started_at"] is None
    assert [m["topic"] for m in messages(db, job["id"])] == ["export.run"]
    assert emails(settings) == []


def test_cancel_stops_a_running_export_and_keeps_nothing(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, 600)
    job = submit(
        client, kind="slow_orders", params={"pause": 0.02}, notify={"email": "o@example.com"}
    )
    start_poller()
    wait_until(lambda: job_row(db, job["id"])["progress_rows"] > 0, what="progress")

    response = client.post(f"/v1/exports/{job['id']}/cancel")

    assert response.get_json()["state"] == "cancelled"
    wait_until(lambda: all_settled(db), timeout=10, what="the export to stop")
    [run] = messages(db, job["id"])
    assert run["done_at"] is not None and run["attempts"] == 1
    assert job_row(db, job["id"])["state"] == "cancelled"
    assert [p for p in stored_file(settings, "").rglob("*") if p.is_file()] == []
    assert emails(settings) == []


class CancelAfterUpload:
    """The poller's own storage, plus a cancel of `job_id` through the domain (another
    connection, as the API would) right after the upload: the moment between the export's
    last progress write and finish_export, which no client can hit on purpose."""

    def __init__(self, storage: Any, database_url: str) -> None:
        self.storage = storage
        self.database_url = database_url
        self.job_id: str | None = None

    def upload(self, key: str, stream: Any, content_type: str) -> None:
        self.storage.upload(key, stream, content_type)
        with psycopg.connect(self.database_url) as conn:
            jobs.cancel_job(conn, "default", uuid.UUID(self.job_id))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


def test_a_cancel_just_before_the_result_is_recorded_settles_the_message_at_once(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    # Issue 13: finish_export's fence failed and the cancel was taken for a lost lease: the
    # message stayed leased until the lease lapsed, a second attempt was counted, and the
    # settled cancel counted as "dropped".
    seed_demo_orders(db, 30)
    poller = start_poller()
    services = poller.handlers["export.run"].services
    storage = services.storage = CancelAfterUpload(services.storage, settings.database_url)
    dropped_before = REGISTRY.get_sample_value(
        "exports_messages_total", {"topic": "export.run", "outcome": "dropped"}
    ) or 0.0
    job = submit(client, notify={"email": "o@example.com"})
    storage.job_id = job["id"]

    wait_until(lambda: all_settled(db), what="the export.run message to settle")

    [run] = messages(db, job["id"])
    assert run["done_at"] is not None
    assert (run["attempts"], run["errors"]) == (1, [])  # no lapsed lease, no second attempt
    assert job_row(db, job["id"])["state"] == "cancelled"
    assert [p for p in stored_file(settings, "").rglob("*") if p.is_file()] == []
    assert emails(settings) == []
    dropped = REGISTRY.get_sample_value(
        "exports_messages_total", {"topic": "export.run", "outcome": "dropped"}
    ) or 0.0
    assert dropped == dropped_before


def test_export_query_cancelled_by_a_dba_fails_at_once(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 600)
    job = submit(client, kind="slow_orders", params={"pause": 0.05})
    start_poller()

    def export_backend() -> int | None:
        row = db.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'exports-poller-source'"
            " AND state = 'active' AND query LIKE 'COPY%%' AND datname = current_database()"
        ).fetchone()
        return row["pid"] if row else None

    db.execute("SELECT pg_cancel_backend(%s)", (wait_until(export_backend, what="the query"),))
    ended = wait_until(lambda: job_ended(db, job["id"]), what="the export to fail")

    assert ended["state"] == "failed"
    assert "or was cancelled by an operator" in ended["last_error"]
    assert messages(db, job["id"])[0]["attempts"] == 1


def test_export_past_its_topic_deadline_fails_instead_of_retrying(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 600)
    db.execute("UPDATE exports.topics SET deadline_seconds = 1 WHERE topic = 'export.run'")
    job = submit(client, kind="slow_orders", params={"pause": 0.05})
    start_poller()

    ended = wait_until(lambda: job_ended(db, job["id"]), what="the deadline to pass")

    assert ended["state"] == "failed"
    assert "deadline of 1 s (exports.topics)" in ended["last_error"]
    [run] = messages(db, job["id"])
    assert run["attempts"] == 1 and run["dead_at"] is not None


def test_work_whose_leases_kept_lapsing_is_given_up(
    app: Flask, db: psycopg.Connection, settings: Settings, start_poller: Callable[..., Poller]
) -> None:
    request = jobs.ExportRequest("user-1", "demo_orders", {}, "csv", "owner@example.com")
    with app.extensions["exports"].pool.connection() as conn:
        job, _ = jobs.request_export(conn, "default", request, idempotency_key=None, max_attempts=3)
    # As if three pollers in a row died holding it (e.g. each ran out of memory).
    db.execute(
        "UPDATE exports.outbox SET attempts = 3, leased_by = 'oom-killed:1:abc',"
        " visible_at = now() - interval '1 second' WHERE job_id = %s",
        (job.id,),
    )
    start_poller()

    ended = wait_until(lambda: job_ended(db, job.id), what="the poller to give up")
    wait_until(lambda: all_settled(db), what="the failure email")

    assert ended["state"] == "failed"
    assert "gave up after 3 attempts" in ended["last_error"]
    run = messages(db, job.id)[0]
    assert run["dead_at"] is not None
    assert run["errors"][0]["error"] == "lease expired: oom-killed:1:abc stopped heartbeating"
    [sent] = emails(settings)
    assert sent["To"] == "owner@example.com"


def test_a_succeeded_job_keeps_only_its_result_under_its_prefix(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    seed_demo_orders(db, 30)
    job = submit(client, format="csv")
    # What a dead predecessor's upload, still in flight when it died, leaves behind.
    stray = stored_file(settings, f"default/{job['id']}/late-upload-of-a-dead-attempt.csv")
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"order_id\n1\n")
    start_poller()

    ended = wait_until(lambda: job_ended(db, job["id"]), what="the export")

    assert ended["state"] == "succeeded" and ended["attempts"] == 1
    files = [p for p in stored_file(settings, "").rglob("*") if p.is_file()]
    assert files == [stored_file(settings, ended["result_key"])]
