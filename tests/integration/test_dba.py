"""What a DBA uses with plain SQL: the views (stuck, failing, queue_health, recent_failures,
job_timeline) and the functions (retry_message, retry_job, requeue_dead, cancel_job)."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.exports import jobs
from app.exports.demo import seed_demo_orders
from app.platform.settings import PROJECT_ROOT
from app.queue import outbox
from poller.core.dispatch import Poller
from tests.support.exports import all_settled, job_ended, job_row, messages, submit
from tests.support.operations import claim, failed_job, job_with_dead_email, queued_job
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


def test_retrying_a_message_that_is_not_dead_does_nothing_and_says_so_with_no_rows(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    # Issue 13: it raised, while every other function answers "nothing to do" with no rows.
    job = submit(client)
    [message] = messages(db, job["id"])

    assert db.execute("SELECT * FROM exports.retry_message(%s)", (message["id"],)).fetchall() == []
    assert db.execute("SELECT * FROM exports.retry_message(424242)").fetchall() == []
    assert messages(db, job["id"]) == [message]


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
    assert "division by zero" in failing["errors"][0]["error"]


# --- issue 5: queue_health, stuck (widened), recent_failures, job_timeline, retry_job,
# requeue_dead. States are arranged with the domain functions the poller uses.


def test_queue_health_counts_each_topic_by_state(db: psycopg.Connection) -> None:
    ready, leased, retrying = (queued_job(db).id for _ in range(3))
    failed = failed_job(db)  # one dead export.run, one ready failure email
    jobs.start_export(db, claim(db, leased))
    db.execute(
        "UPDATE exports.outbox SET created_at = now() - interval '1 hour',"
        " visible_at = now() - interval '1 hour' WHERE job_id = %s",
        (ready,),
    )
    jobs.retry_export(db, claim(db, retrying), "throttled", delay_seconds=60)

    health = {
        row["topic"]: row for row in db.execute("SELECT * FROM exports.queue_health").fetchall()
    }

    run, notify = health["export.run"], health["export.notify"]
    assert (run["ready"], run["leased"], run["retrying"], run["dead"]) == (1, 1, 1, 1)
    assert (notify["ready"], notify["leased"], notify["retrying"], notify["dead"]) == (1, 0, 0, 0)
    assert 3590 < run["oldest_ready_age"].total_seconds() < 3700
    assert failed.state == "failed"


def test_stuck_also_shows_messages_on_their_third_attempt(db: psycopg.Connection) -> None:
    retried, fresh = queued_job(db, max_attempts=5).id, queued_job(db, max_attempts=5).id
    for _ in range(3):
        message = claim(db, retried)
        jobs.start_export(db, message)
        jobs.retry_export(db, message, "connection reset", delay_seconds=0)

    stuck = db.execute("SELECT job_id, attempts, why FROM exports.stuck").fetchall()

    assert [(s["job_id"], s["attempts"]) for s in stuck] == [(retried, 3)]
    assert stuck[0]["why"] == "attempt 3 of 5: keeps failing or losing its poller"
    # Not running, so no running_for (issue 13: it showed the time since the last claim).
    waiting = db.execute("SELECT state, running_for FROM exports.stuck").fetchone()
    assert waiting == {"state": "ready", "running_for": None}
    assert fresh not in {s["job_id"] for s in stuck}


def test_recent_failures_lists_failed_messages_newest_first(db: psycopg.Connection) -> None:
    old = failed_job(db, "old error")
    first = failed_job(db, "first error")
    second = failed_job(db, "second error")
    queued_job(db)  # never failed: not listed
    db.execute(
        "UPDATE exports.outbox SET errors = jsonb_set(errors, '{0,at}',"
        " to_jsonb(now() - interval '2 days')) WHERE job_id = %s",
        (old.id,),
    )

    failures = db.execute("SELECT * FROM exports.recent_failures").fetchall()

    assert [(f["job_id"], f["last_error"]) for f in failures] == [
        (second.id, "second error"),
        (first.id, "first error"),
    ]
    assert failures[0]["message_state"] == "dead" and failures[0]["job_state"] == "failed"
    assert failures[0]["attempts"] == 1 and failures[0]["failures"] == 1
    assert failures[0]["failed_at"] >= failures[1]["failed_at"]


def test_job_timeline_tells_one_jobs_story_with_every_error(db: psycopg.Connection) -> None:
    job = queued_job(db, max_attempts=2)
    other = queued_job(db)
    first = claim(db, job.id)
    jobs.start_export(db, first)
    jobs.retry_export(db, first, "S3 throttled", delay_seconds=0)
    second = claim(db, job.id)
    jobs.start_export(db, second)
    jobs.fail_export(db, second, "access denied")

    timeline = db.execute(
        "SELECT * FROM exports.job_timeline WHERE job_id = %s", (job.id,)
    ).fetchall()

    events = [(t["event"], t["topic"], t["attempt"], t["detail"]) for t in timeline]
    assert events[0] == ("job created", None, None, "demo_orders as csv for user-1")
    assert ("failed", "export.run", 1, "S3 throttled") in events
    assert ("failed", "export.run", 2, "access denied") in events
    assert ("message dead", "export.run", 2, "access denied") in events
    assert ("job failed", None, 2, "access denied") in events
    assert ("message queued", "export.notify", None, None) in events  # the failure email
    assert [t["at"] for t in timeline] == sorted(t["at"] for t in timeline)
    assert other.id not in {t["job_id"] for t in timeline}


def test_retry_job_requeues_a_failed_job_with_a_fresh_message(db: psycopg.Connection) -> None:
    job = failed_job(db)

    [retried] = db.execute("SELECT * FROM exports.retry_job(%s)", (job.id,)).fetchall()
    again = db.execute("SELECT * FROM exports.retry_job(%s)", (job.id,)).fetchall()

    assert retried["state"] == "queued" and retried["finished_at"] is None and again == []
    dead_run, failure_email, fresh = messages(db, job.id)
    assert dead_run["dead_at"] is not None  # kept, with its history
    assert failure_email["done_at"] is not None  # withdrawn: the job did not fail after all
    # Counting on from the job's attempt keeps the fence: attempts only grow.
    assert (fresh["topic"], fresh["attempts"], fresh["max_attempts"]) == ("export.run", 1, 6)
    message = claim(db, job.id)
    assert message.id == fresh["id"] and jobs.start_export(db, message) is not None


def test_retry_job_refuses_jobs_that_are_not_failed_or_cancelled(
    db: psycopg.Connection,
) -> None:
    queued = queued_job(db)
    running = queued_job(db)
    jobs.start_export(db, claim(db, running.id))

    for job in (queued, running):
        assert db.execute("SELECT * FROM exports.retry_job(%s)", (job.id,)).fetchall() == []
    assert job_row(db, queued.id)["state"] == "queued"
    assert [m["topic"] for m in messages(db, running.id)] == ["export.run"]
    assert db.execute("SELECT * FROM exports.retry_job(gen_random_uuid())").fetchall() == []


def test_retry_job_waits_for_a_cancelled_export_to_stop(db: psycopg.Connection) -> None:
    job = queued_job(db)
    message = claim(db, job.id)
    jobs.start_export(db, message)
    jobs.cancel_job(db, "default", job.id)

    still_stopping = db.execute("SELECT * FROM exports.retry_job(%s)", (job.id,)).fetchall()
    outbox.complete_message(db, message)  # the poller noticed the cancel and let go
    [retried] = db.execute("SELECT * FROM exports.retry_job(%s)", (job.id,)).fetchall()

    assert still_stopping == [] and retried["state"] == "queued"
    # The stale attempt can no longer take the job back; the new one can.
    assert jobs.start_export(db, message) is None
    assert jobs.start_export(db, claim(db, job.id)) is not None


def test_a_retried_job_runs_to_success(
    app: Flask, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 30)
    db.execute("UPDATE public.test_gate SET open = false")
    request = jobs.ExportRequest("user-1", "gated_orders", {}, "csv", None)
    with app.extensions["exports"].pool.connection() as conn:
        job, _ = jobs.request_export(conn, "default", request, idempotency_key=None, max_attempts=1)
    start_poller()
    assert wait_until(lambda: job_ended(db, job.id), what="the failure")["state"] == "failed"
    db.execute("UPDATE public.test_gate SET open = true")

    db.execute("SELECT * FROM exports.retry_job(%s)", (job.id,))

    ended = wait_until(lambda: job_ended(db, job.id), what="the retried export")
    assert ended["state"] == "succeeded" and ended["attempts"] == 2


def test_requeue_dead_revives_a_topics_dead_messages_since_a_time(db: psycopg.Connection) -> None:
    long_ago, recent = failed_job(db), failed_job(db)
    db.execute(
        "UPDATE exports.outbox SET dead_at = now() - interval '3 days' WHERE job_id = %s",
        (long_ago.id,),
    )

    revived = db.execute(
        "SELECT * FROM exports.requeue_dead('export.run', now() - interval '1 day')"
    ).fetchall()
    again = db.execute(
        "SELECT * FROM exports.requeue_dead('export.run', now() - interval '1 day')"
    ).fetchall()

    assert [(r["job_id"], r["state"]) for r in revived] == [(recent.id, "ready")]
    assert revived[0]["attempts"] == 1 and revived[0]["max_attempts"] == 4 and again == []
    assert job_row(db, recent.id)["state"] == "queued"
    assert job_row(db, long_ago.id)["state"] == "failed"
    # The failure email waiting behind the revived export is withdrawn.
    assert all(m["done_at"] or m["dead_at"] for m in messages(db, recent.id)[1:])
    assert jobs.start_export(db, claim(db, recent.id)) is not None  # attempt 2: the fence holds


def test_requeue_dead_emails_sets_the_jobs_email_back_to_pending(db: psycopg.Connection) -> None:
    job = job_with_dead_email(db)

    run_only = db.execute("SELECT * FROM exports.requeue_dead('export.notify', NULL)").fetchall()

    assert [(r["topic"], r["job_id"]) for r in run_only] == [("export.notify", job.id)]
    row = job_row(db, job.id)
    assert row["email_status"] == "pending" and row["state"] == "failed"


def test_requeue_dead_of_every_topic_revives_the_export_not_its_failure_email(
    db: psycopg.Connection,
) -> None:
    job = job_with_dead_email(db)

    revived = db.execute("SELECT * FROM exports.requeue_dead(NULL, NULL)").fetchall()

    assert [r["topic"] for r in revived] == ["export.run"]
    assert job_row(db, job.id)["state"] == "queued"


def test_requeue_dead_refuses_an_unknown_topic(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match=r"not export\.rn"):
        db.execute("SELECT * FROM exports.requeue_dead('export.rn', NULL)")


def test_every_runbook_query_plans(db: psycopg.Connection) -> None:
    """sql/runbook.md stays true to the schema: each statement is planned (not run)."""
    runbook = (PROJECT_ROOT / "sql" / "runbook.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", runbook, flags=re.DOTALL)
    statements = [
        s.strip()
        for block in blocks
        for s in re.sub(r"--[^\n]*", "", block).split(";")
        if s.strip()
    ]
    assert len(statements) >= 14  # every block of the ten questions
    for statement in statements:
        statement = statement.replace("<job id>", str(uuid.uuid4())).replace("<message id>", "1")
        db.execute(f"EXPLAIN {statement}")


def test_retry_job_and_requeue_dead_racing_for_one_job_queue_one_run(
    db: psycopg.Connection, database_url: str
) -> None:
    job = failed_job(db)
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        [retried] = first.execute("SELECT * FROM exports.retry_job(%s)", (job.id,)).fetchall()
        # `second` now waits for `first`'s lock on the job; see it waiting, then let go.
        result: list[list[tuple]] = []
        racer = threading.Thread(
            target=lambda: result.append(
                second.execute("SELECT id FROM exports.requeue_dead(NULL, NULL)").fetchall()
            )
        )
        racer.start()
        wait_until(
            lambda: db.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%%requeue_dead%%'"
            ).fetchone()["n"],
            what="requeue_dead to wait for the job's lock",
        )
        first.commit()
        racer.join(timeout=30)
        second.commit()

    assert retried[0] == job.id and result == [[]]
    unsettled = [m for m in messages(db, job.id) if not (m["done_at"] or m["dead_at"])]
    assert [m["topic"] for m in unsettled] == ["export.run"]
