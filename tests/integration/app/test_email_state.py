"""The email channel's delivery state (app/notifications/email.py) on real rows."""

from __future__ import annotations

import psycopg

from app.exports import jobs
from app.exports.topics import EXPORT_NOTIFY
from app.notifications import email
from tests.support.operations import claim, failed_job, queued_job


def state(db: psycopg.Connection, job_id: object) -> dict:
    return db.execute(
        "SELECT email_status, email_status_detail FROM exports.jobs WHERE id = %s", (job_id,)
    ).fetchone()


def test_a_job_that_ends_with_notify_email_owes_one_email(db: psycopg.Connection) -> None:
    job = failed_job(db)

    assert state(db, job.id) == {"email_status": "pending", "email_status_detail": None}
    notify = db.execute(
        "SELECT max_attempts FROM exports.outbox WHERE job_id = %s AND topic = %s",
        (job.id, EXPORT_NOTIFY),
    ).fetchall()
    assert notify == [{"max_attempts": email.MAX_ATTEMPTS}]


def test_a_job_without_notify_email_owes_none(db: psycopg.Connection) -> None:
    request = jobs.ExportRequest("user-1", "demo_orders", {}, "csv", None)
    job, _ = jobs.request_export(db, "default", request, idempotency_key=None, max_attempts=1)
    message = claim(db, job.id)
    jobs.start_export(db, message)

    failed = jobs.fail_export(db, message, "boom")

    assert failed is not None and failed.email_status is None
    assert state(db, job.id)["email_status"] is None
    topics = db.execute("SELECT topic FROM exports.outbox WHERE job_id = %s", (job.id,))
    assert [row["topic"] for row in topics] == ["export.run"]


def test_a_failed_email_says_why_without_the_address(db: psycopg.Connection) -> None:
    # Issue 13: email_status_detail was null when the email failed.
    job = failed_job(db)
    notify = claim(db, job.id, EXPORT_NOTIFY)

    email.record_failed(
        db, notify, "SMTPRecipientsRefused: {'owner@example.com': (550, b'mailbox unavailable')}"
    )

    after = state(db, job.id)
    assert after["email_status"] == "failed"
    assert (
        "550" in after["email_status_detail"]
        and "mailbox unavailable" in after["email_status_detail"]
    )
    assert "owner@example.com" not in after["email_status_detail"]


def test_suppressed_and_sent_are_recorded_with_the_settled_message(
    db: psycopg.Connection,
) -> None:
    sent_job, suppressed_job = queued_job(db), queued_job(db)
    for job in (sent_job, suppressed_job):
        message = claim(db, job.id)
        jobs.start_export(db, message)
        jobs.fail_export(db, message, "boom")

    email.record_sent(db, claim(db, sent_job.id, EXPORT_NOTIFY), "ses-message-1")
    email.record_suppressed(db, claim(db, suppressed_job.id, EXPORT_NOTIFY))

    assert state(db, sent_job.id) == {"email_status": "sent", "email_status_detail": None}
    assert state(db, suppressed_job.id) == {
        "email_status": "suppressed",
        "email_status_detail": "address on the suppression list",
    }
    unsettled = db.execute(
        "SELECT count(*) AS n FROM exports.outbox WHERE topic = %s AND done_at IS NULL",
        (EXPORT_NOTIFY,),
    ).fetchone()
    assert unsettled["n"] == 0
