"""The email channel: whether a job owes its owner an email, and its delivery state.

The one Python owner of exports.jobs.email_status (the DBA functions retry_message,
retry_job and requeue_dead, in sql/functions, reset it to pending or NULL when an operator
runs work again):

    NULL ──job ends (succeeded/failed) with notify_email──► pending
    pending ──the mail backend accepted it──► sent ──SES feedback──► delivered
    pending ──the address is on the suppression list──► suppressed        │
    pending ──gave up (out of attempts / permanent error)──► failed        ▼
                                                       bounced ◄── (forward only) ──► complained

Every change that goes with settling an export.notify message is made in the same
transaction as that (fenced) settlement; email_status_detail says why for failed,
suppressed, bounced and complained, without the address.
"""

from __future__ import annotations

import uuid

from psycopg import Connection

from app.exports.topics import EXPORT_NOTIFY
from app.platform.db import fetch_one
from app.platform.logs import redact
from app.queue import outbox
from app.queue.outbox import Message

# How often an email is tried before it is given up (failed).
MAX_ATTEMPTS = 8
# email_status_detail is for people: this long at most.
MAX_DETAIL = 200
# Statuses after which the notify handler must not send (again).
SETTLED = frozenset({"sent", "delivered", "bounced", "complained", "suppressed"})
# SES event type -> the status it moves the email to.
FEEDBACK_STATUSES = {"Delivery": "delivered", "Bounce": "bounced", "Complaint": "complained"}


def queue_email(conn: Connection, job_id: uuid.UUID) -> bool:
    """In the transaction that ends the job: if its owner asked for an email, mark it
    pending and queue the export.notify message. True when one was queued."""
    if fetch_one(conn, "mark_email_pending", id=job_id) is None:
        return False  # no notify_email: nobody to tell by email
    outbox.add_message(conn, EXPORT_NOTIFY, job_id, max_attempts=MAX_ATTEMPTS)
    return True


def record_sent(conn: Connection, message: Message, email_message_id: str) -> None:
    """The mail backend accepted it: message done and email sent, in one transaction."""
    outbox.complete_message(conn, message)
    fetch_one(conn, "record_email_sent", id=message.job_id, message_id=email_message_id)


def record_failed(conn: Connection, message: Message, error: str) -> None:
    """Given up: message dead and email failed, with why (addresses blanked)."""
    outbox.bury_message(conn, message, error)
    fetch_one(conn, "record_email_failed", id=message.job_id, detail=_detail(error))


def record_suppressed(conn: Connection, message: Message) -> None:
    """Not sent because the address is suppressed: message done, email suppressed."""
    outbox.complete_message(conn, message)
    fetch_one(
        conn, "record_email_suppressed", id=message.job_id, detail="address on the suppression list"
    )


def record_feedback(conn: Connection, job_id: uuid.UUID, status: str, detail: str) -> bool:
    """What SES said happened after it accepted the email; statuses only move forward
    (sent < delivered < bounced < complained). True when the status changed."""
    changed = fetch_one(
        conn, "record_email_feedback", id=job_id, status=status, detail=_detail(detail)
    )
    return changed is not None


def _detail(text: str) -> str:
    return redact(text)[:MAX_DETAIL]
