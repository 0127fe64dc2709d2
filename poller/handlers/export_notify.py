"""export.notify: email the owner that their export is ready (with the link) or failed."""

from __future__ import annotations

import dataclasses
import logging

from psycopg import Connection

from app.exports import jobs
from app.notifications import email, ses_feedback
from app.platform.logs import bind_context
from app.platform.services import Services
from app.queue import outbox
from app.queue.outbox import Message
from poller.core.handler import Settled
from poller.core.lease import Lease
from poller.mail import Mailer
from poller.mail.compose import compose_failed_email, compose_ready_email

log = logging.getLogger(__name__)


class ExportNotify:
    """Sends one email per job; the message id is recorded when the message is settled."""

    def __init__(self, services: Services, mailer: Mailer) -> None:
        self.services = services
        self.mailer = mailer

    def handle(self, lease: Lease) -> Settled:
        """Send the email the job's state calls for, then settle the message."""
        message = lease.message
        pool = self.services.pool
        with pool.connection() as conn:
            job = jobs.find_job(conn, message.job_id) if message.job_id else None
            if job is None or not _owed_an_email(job):
                outbox.complete_message(conn, message)  # nothing (more) to tell anyone
                return Settled.BY_HANDLER
            if job.notify_email and ses_feedback.is_suppressed(conn, job.notify_email):
                # It hard-bounced or complained before: sending again hurts our sender
                # reputation and will not reach them. A final outcome, not a failure.
                email.record_suppressed(conn, message)
                log.info("email not sent: address suppressed", extra={"job_id": str(job.id)})
                return Settled.BY_HANDLER
        bind_context(tenant=job.tenant)  # for every later log line of this message
        settings = self.services.settings
        fields = dataclasses.asdict(job)
        if job.state == "succeeded":
            composed = compose_ready_email(
                fields, link=self.services.links.link_for(job.id), mail_from=settings.mail_from
            )
        else:
            composed = compose_failed_email(fields, mail_from=settings.mail_from)
        lease.check()
        # At-least-once: a crash between send() and the commit below sends the email again.
        email_id = self.mailer.send(composed)
        with pool.connection() as conn:
            email.record_sent(conn, message, email_id)
        log.info("email sent", extra={"job_id": str(job.id), "email_message_id": email_id})
        return Settled.BY_HANDLER

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """Try the email again later; the job's own state is unaffected."""
        outbox.retry_message(conn, message, error, delay)

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """The email will not be sent; the job records that."""
        email.record_failed(conn, message, error)

    def handed_back(self, conn: Connection, message: Message) -> None:
        """Nothing to undo: the email's state says pending until it is sent."""


def _owed_an_email(job: jobs.Job) -> bool:
    """A finished job whose owner asked to be told and has not been yet."""
    return (
        bool(job.notify_email)
        and job.email_status not in email.SETTLED
        and job.state in ("succeeded", "failed")
    )
