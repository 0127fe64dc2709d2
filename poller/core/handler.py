"""What the core asks of a topic's handler, and what it tells the core back."""

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


class Outcome(enum.Enum):
    """How the poller's work on one message ended; the value is the metric label
    (exports_messages_total{outcome})."""

    DONE = "done"  # settled: the handler's work is recorded
    RETRY = "retry"  # failed; runs again after a back-off
    DEAD = "dead"  # failed for good (permanent error, or out of attempts)
    DROPPED = "dropped"  # not ours any more (lease lost, handed back): someone else runs it


class Handler(Protocol):
    """Runs one topic's messages; the core turns its exceptions into retries or give-ups.

    The only code that knows what a topic means. Register it in poller/handlers/__init__.py.
    """

    def handle(self, lease: Lease) -> Settled:
        """Do the work; settle the message (fenced) and return BY_HANDLER, or return
        BY_POLLER for the poller to complete it; or raise (WorkStopped to stop quietly)."""
        ...

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """Record a transient failure (outbox.retry_message, plus the topic's own state);
        the message runs again after `delay` seconds."""
        ...

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """Record a permanent failure, or attempts exhausted (outbox.bury_message, plus the
        topic's own state)."""
        ...

    def handed_back(self, conn: Connection, message: Message) -> None:
        """The poller is stopping and returned `message` unfinished (outbox.hand_back, in
        this transaction): undo what the topic's own state says about it running."""
        ...
