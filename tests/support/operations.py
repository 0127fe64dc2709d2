"""Arrange jobs in the states operators deal with, through the domain functions themselves."""

from __future__ import annotations

import uuid

import psycopg

from app.exports import jobs
from app.exports.topics import EXPORT_NOTIFY, EXPORT_RUN
from app.notifications import email
from app.queue import outbox
from app.queue.outbox import Message

REQUEST = jobs.ExportRequest("user-1", "demo_orders", {}, "csv", "owner@example.com")


def queued_job(
    db: psycopg.Connection, *, max_attempts: int = 1, owner_id: str = "user-1"
) -> jobs.Job:
    """A new job with its export.run message, as the API creates it."""
    request = jobs.ExportRequest(owner_id, REQUEST.kind, {}, "csv", REQUEST.notify_email)
    job, _ = jobs.request_export(
        db, "default", request, idempotency_key=None, max_attempts=max_attempts
    )
    return job


def claim(db: psycopg.Connection, job_id: uuid.UUID, topic: str = EXPORT_RUN) -> Message:
    """Claim the job's ready message of `topic` as poller 'test-poller' (others stay put)."""
    ready = db.execute(
        "SELECT id FROM exports.outbox WHERE job_id = %s AND topic = %s"
        " AND done_at IS NULL AND dead_at IS NULL",
        (job_id, topic),
    ).fetchone()
    assert ready is not None, f"no ready {topic} message for {job_id}"
    # Hide every other ready message for the claim, then restore it.
    db.execute(
        "UPDATE exports.outbox SET visible_at = visible_at + interval '1000 years'"
        " WHERE id <> %s AND done_at IS NULL AND dead_at IS NULL",
        (ready["id"],),
    )
    try:
        [message] = outbox.claim_batch(db, batch=1, lease_seconds=30, worker="test-poller")
    finally:
        db.execute(
            "UPDATE exports.outbox SET visible_at = visible_at - interval '1000 years'"
            " WHERE id <> %s AND done_at IS NULL AND dead_at IS NULL",
            (ready["id"],),
        )
    return message


def failed_job(
    db: psycopg.Connection, error: str = "permission denied for table orders"
) -> jobs.Job:
    """A job whose only attempt failed for good: run message dead, failure email queued."""
    job = queued_job(db)
    message = claim(db, job.id)
    assert jobs.start_export(db, message) is not None
    failed = jobs.fail_export(db, message, error)
    assert failed is not None and failed.state == "failed"
    return failed


def job_with_dead_email(db: psycopg.Connection) -> jobs.Job:
    """A failed job whose failure email could not be sent either (email_status 'failed')."""
    job = failed_job(db)
    notify = claim(db, job.id, EXPORT_NOTIFY)
    email.record_failed(db, notify, "mailbox unavailable")
    found = jobs.find_job(db, job.id)
    assert found is not None and found.email_status == "failed"
    return found
