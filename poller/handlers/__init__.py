"""One handler per outbox topic. A handler does the work and settles its message."""

from __future__ import annotations

from typing import Protocol

from psycopg import Connection

from app.outbox import Message
from poller.lease import Lease


class Handler(Protocol):
    """Runs one topic's messages; the poller turns its exceptions into retries or give-ups."""

    def handle(self, lease: Lease) -> None:
        """Do the work and settle the message (fenced), or raise."""
        ...

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """Record a transient failure; the message runs again after `delay` seconds."""
        ...

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """Record a permanent failure (or attempts exhausted)."""
        ...
