"""export.notify: email the owner that their export is ready (with the link) or failed."""

from __future__ import annotations

import dataclasses
import logging

from psycopg import Connection

from app import jobs, outbox
from app.outbox import Message
from app.services import Services
from poller.lease import Lease
from poller.mail import Mailer
from poller.mail.compose import compose_failed_email, compose_ready_email

log = logging.getLogger(__name__)


class ExportNotify:
    """Sends one email per job; the message id is recorded when the message is settled."""

    def __init__(self, services: Services, mailer: Mailer) -> None:
        self.services = services
        self.mailer = mailer

    def handle(self, lease: Lease) -> None:
        """Send the email the job's state calls for, then settle the message."""
        message = lease.message
        pool = self.services.pool
        with pool.connection() as conn:
            job = jobs.find_job(conn, message.job_id) if message.job_id else None
            if job is None or not _owed_an_email(job):
                outbox.complete_message(conn, message)  # nothing (more) to tell anyone
                return
        settings = self.services.settings
        fields = dataclasses.asdict(job)
        if job.state == "succeeded":
            email = compose_ready_email(
                fields, link=self.services.links.link_for(job.id), mail_from=settings.mail_from
            )
        else:
            email = compose_failed_email(fields, mail_from=settings.mail_from)
        lease.check()
        # At-least-once: a crash between send() and the commit below sends the email again.
        email_id = self.mailer.send(email)
        with pool.connection() as conn:
            jobs.record_email_sent(conn, message, email_id)
        log.info("email sent", extra={"job_id": str(job.id), "email_message_id": email_id})

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """Try the email again later; the job's own state is unaffected."""
        outbox.retry_message(conn, message, error, delay)

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """The email will not be sent; the job records that."""
        jobs.record_email_failed(conn, message, error)


def _owed_an_email(job: jobs.Job) -> bool:
    """A finished job whose owner asked to be told and has not been yet."""
    return (
        bool(job.notify_email)
        and job.email_status != "sent"
        and job.state
        in (
            "succeeded",
            "failed",
        )
    )
