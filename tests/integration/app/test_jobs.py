"""Job state changes are atomic: a job and its outbox message change together or not at all."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from flask.testing import FlaskClient

from app.exports import jobs
from app.queue import outbox
from app.queue.outbox import Message

REQUEST = jobs.ExportRequest("user-1", "demo_orders", {}, "csv", "owner@example.com")


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A transactional connection, like the API's and the poller's pool hands out."""
    with psycopg.connect(database_url) as connection:
        yield connection


def reject_outbox_topic(db: psycopg.Connection, topic: str) -> None:
    """Make the database refuse new outbox rows of `topic` (a failure mid-transaction)."""
    db.execute(
        f"""
        CREATE FUNCTION reject_topic() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.topic = '{topic}' THEN RAISE EXCEPTION 'outbox refuses {topic}'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER reject_topic BEFORE INSERT ON exports.outbox
            FOR EACH ROW EXECUTE FUNCTION reject_topic();
        """
    )


def count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM exports.{table}").fetchone()["n"]


def test_no_job_without_its_outbox_message(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    reject_outbox_topic(db, "export.run")

    with pytest.raises(psycopg.errors.RaiseException):
        jobs.request_export(conn, "default", REQUEST, idempotency_key=None, max_attempts=5)
    conn.rollback()

    assert count(db, "jobs") == 0 and count(db, "outbox") == 0


def test_api_reports_a_failed_insert_without_leaving_a_job(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    reject_outbox_topic(db, "export.run")

    response = client.post("/v1/exports", json={"owner_id": "user-1", "kind": "demo_orders"})

    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert "outbox refuses" not in response.get_data(as_text=True)  # no internals leak
    assert count(db, "jobs") == 0


def claim_export(conn: psycopg.Connection) -> Message:
    """Queue an export and claim its export.run message, as a poller would."""
    jobs.request_export(conn, "default", REQUEST, idempotency_key=None, max_attempts=5)
    conn.commit()
    [message] = outbox.claim_batch(conn, batch=1, lease_seconds=60, worker="test")
    assert message.job_id is not None
    conn.commit()
    assert jobs.start_export(conn, message) is not None
    conn.commit()
    return message


def test_finishing_is_all_or_nothing(db: psycopg.Connection, conn: psycopg.Connection) -> None:
    message = claim_export(conn)
    reject_outbox_topic(db, "export.notify")
    result = jobs.ExportResult((jobs.StoredPart("default/x/y.csv", 3, 100, "ab" * 32),), "text/csv")

    with pytest.raises(psycopg.errors.RaiseException):
        jobs.finish_export(conn, message, result, retention_seconds=60)
    conn.rollback()

    job = db.execute("SELECT state, result_key FROM exports.jobs").fetchone()
    assert job == {"state": "running", "result_key": None}
    assert db.execute("SELECT done_at FROM exports.outbox").fetchone()["done_at"] is None


def test_failing_is_all_or_nothing(db: psycopg.Connection, conn: psycopg.Connection) -> None:
    message = claim_export(conn)
    reject_outbox_topic(db, "export.notify")

    with pytest.raises(psycopg.errors.RaiseException):
        jobs.fail_export(conn, message, "boom")
    conn.rollback()

    assert db.execute("SELECT state FROM exports.jobs").fetchone()["state"] == "running"
    assert db.execute("SELECT dead_at FROM exports.outbox").fetchone()["dead_at"] is None


def test_finishing_queues_the_email_step(db: psycopg.Connection, conn: psycopg.Connection) -> None:
    message = claim_export(conn)
    result = jobs.ExportResult((jobs.StoredPart("default/x/y.csv", 3, 100, "ab" * 32),), "text/csv")

    job = jobs.finish_export(conn, message, result, retention_seconds=3600)
    conn.commit()

    assert job.state == "succeeded" and job.email_status == "pending"
    rows = db.execute("SELECT topic, done_at IS NOT NULL AS done FROM exports.outbox ORDER BY id")
    assert rows.fetchall() == [
        {"topic": "export.run", "done": True},
        {"topic": "export.notify", "done": False},
    ]


def test_hand_back_leaves_an_attempt_that_recorded_its_own_failure_alone(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    failed, unfinished = claim_export(conn), claim_export(conn)
    jobs.retry_export(conn, failed, "S3 said SlowDown", 30.0)
    conn.commit()

    returned = outbox.hand_back(conn, [failed, unfinished], "test")
    conn.commit()

    assert returned == [unfinished]
    kept, returned_row = db.execute(
        "SELECT max_attempts, last_error, visible_at > now() AS waiting"
        " FROM exports.outbox ORDER BY id"
    ).fetchall()
    # The failed attempt keeps its error, its back-off and its place in the count.
    assert kept == {"max_attempts": 5, "last_error": "S3 said SlowDown", "waiting": True}
    assert returned_row == {
        "max_attempts": 6,
        "last_error": "handed back at shutdown by test",
        "waiting": False,
    }


def test_hand_back_by_another_worker_changes_nothing(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    message = claim_export(conn)

    assert outbox.hand_back(conn, [message], "someone-else") == []
