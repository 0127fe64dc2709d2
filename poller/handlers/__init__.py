"""One handler per outbox topic. A handler does the work and says who settles its message."""

from __future__ import annotations

import enum
from typing import Protocol

from psycopg import Connection

from app.queue.outbox import Message
from poller.core.lease import Lease


class Settled(enum.Enum):
    """What `Handler.handle` returns: who marks the message done.

    BY_HANDLER: the handler completed the message itself, fenced, in the same transaction
    as its own effects (export.run: job succeeded + message done + export.notify queued).
    BY_POLLER: the handler's effects (if any) are committed and nothing needs to commit
    with the completion; the poller completes the message, batched with others in one
    fenced UPDATE. Crash in between: the message runs again (at least once).
    """

    BY_HANDLER = "by_handler"
    BY_POLLER = "by_poller"


class Handler(Protocol):
    """Runs one topic's messages; the poller turns its exceptions into retries or give-ups."""

    def handle(self, lease: Lease) -> Settled:
        """Do the work; settle the message (fenced) and return BY_HANDLER, or return
        BY_POLLER for the poller to complete it; or raise."""
        ...

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """Record a transient failure; the message runs again after `delay` seconds."""
        ...

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """Record a permanent failure (or attempts exhausted)."""
        ...
