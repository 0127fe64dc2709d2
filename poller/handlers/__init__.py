"""One handler per outbox topic: the only code that knows what a topic means.

Adding a topic: a handler module here (handle, retry, give_up, handed_back: see
poller/core/handler.py), a row in exports.topics (a migration: its attempt deadline), and
one line in build_handlers below.
"""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from app.exports.topics import EXPORT_NOTIFY, EXPORT_RUN
from app.notifications import webhooks
from app.platform.services import Services
from poller.core.handler import Handler
from poller.handlers.export_notify import ExportNotify
from poller.handlers.export_run import ExportRun
from poller.handlers.webhook_deliver import WebhookDeliver
from poller.mail import Mailer


def build_handlers(
    services: Services, *, source_pool: ConnectionPool, mailer: Mailer
) -> dict[str, Handler]:
    """Every topic the poller runs, with its handler."""
    return {
        EXPORT_RUN: ExportRun(services, source_pool),
        EXPORT_NOTIFY: ExportNotify(services, mailer),
        webhooks.TOPIC: WebhookDeliver(services),
    }
