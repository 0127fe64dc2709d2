"""What a DBA uses with plain SQL: the stuck and failing views, retry and cancel functions."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import jobs
from app.demo import seed_demo_orders
from poller.worker import Poller
from tests.support.exports import all_settled, job_ended, job_row, messages, submit
from tests.support.waiting import wait_until


def test_a_dead_export_is_revived_with_one_function_call(
    app: Flask, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 30)
    db.execute("UPDATE public.test_gate SET open = false")
    request = jobs.ExportRequest("user-1", "gated_orders", {}, "csv", "owner@example.com")
    with app.extensions["exports"].pool.connection() as conn:
        job, _ = jobs.request_export(conn, "default", request, idempotency_key=None, max_attempts=1)
    start_poller()
    wait_until(lambda: job_ended(db, job.id), what="the export to fail")
    dead = messages(db, job.id)[0]
    db.execute("UPDATE public.test_gate SET open = true")  # the cause is fixed

    [revived] = db.execute("SELECT * FROM exports.retry_message(%s)", (dead["id"],)).fetchall()

    assert revived["state"] == "ready" and revived["max_attempts"] == 4
    ended = wait_until(lambda: job_ended(db, job.id), what="the revived export")
    wait_until(lambda: all_settled(db), what="the email")
    assert ended["state"] == "succeeded" and ended["attempts"] == 2
    run = messages(db, job.id)[0]
    assert [e["attempt"] for e in run["errors"]] == [1]  # the history is kept
    # Only the "ready" email went out: the failure email waiting behind was withdrawn.
    notify = [m for m in messages(db, job.id) if m["topic"] == "export.notify"]
    assert job_row(db, job.id)["email_status"] == "sent"
    assert sum(m["done_at"] is not None for m in notify) == len(notify)


def test_retrying_a_message_that_is_not_dead_is_refused(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    job = submit(client)
    [message] = messages(db, job["id"])

    with pytest.raises(psycopg.errors.RaiseException, match="is not dead"):
        db.execute("SELECT * FROM exports.retry_message(%s)", (message["id"],))


def test_cancel_function_is_what_the_api_uses(client: FlaskClient, db: psycopg.Connection) -> None:
    job = submit(client)

    [cancelled] = db.execute(
        "SELECT * FROM exports.cancel_job('default', %s)", (job["id"],)
    ).fetchall()
    again = db.execute("SELECT * FROM exports.cancel_job('default', %s)", (job["id"],)).fetchall()

    assert cancelled["state"] == "cancelled" and again == []
    assert client.get(f"/v1/exports/{job['id']}").get_json()["state"] == "cancelled"


def test_stuck_shows_overdue_attempts_and_unclaimed_work(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    overdue, waiting, fine = (submit(client)["id"] for _ in range(3))
    db.execute(
        "UPDATE exports.outbox SET attempts = 1, leased_by = 'p:1:a',"
        " claimed_at = now() - interval '2 hours', visible_at = now() + interval '30 seconds'"
        " WHERE job_id = %s",
        (overdue,),
    )
    db.execute(
        "UPDATE exports.outbox SET visible_at = now() - interval '10 minutes' WHERE job_id = %s",
        (waiting,),
    )

    stuck = db.execute("SELECT job_id::text, why FROM exports.stuck ORDER BY id").fetchall()

    assert [s["job_id"] for s in stuck] == [overdue, waiting]
    assert stuck[0]["why"] == "running past its deadline"
    assert fine not in {s["job_id"] for s in stuck}


def test_failing_lists_retrying_and_dead_messages_with_their_history(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    broken = submit(client, kind="broken_orders")
    start_poller()
    wait_until(lambda: job_ended(db, broken["id"]), what="the broken export")

    [failing] = db.execute("SELECT * FROM exports.failing").fetchall()

    assert str(failing["job_id"]) == broken["id"]
    assert failing["state"] == "dead" and failing["kind"] == "broken_orders"
    assert "no_such_column" in failing["errors"][0]["error"]
