"""A claimed message as the poller holds it: the message, its deadline, and whether the work
must stop (and why)."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from app.platform.errors import PermanentError
from app.queue.outbox import Message


class StopReason(enum.Enum):
    """Why running work must stop before it is done."""

    LEASE_LOST = "lease lost"  # a heartbeat found the message re-claimed: not ours any more
    SHUTDOWN = "shutdown"  # the poller is stopping and handed the message back
    CANCELLED = "cancelled"  # what the message works on was cancelled (a handler's word)


class WorkStopped(Exception):
    """The work on a message must stop now; `reason` says why. Its writes are fenced, so
    nothing it does after this can land."""

    def __init__(self, reason: StopReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


class DeadlineExceeded(PermanentError):
    """The attempt ran longer than its topic's deadline (exports.topics)."""


@dataclass(slots=True)  # one per claimed message: thousands a second
class Lease:
    """A claimed message while this poller works on it.

    `stopped` is set (once) by a heartbeat that finds the message re-claimed, or at
    shutdown; a plain attribute, not a threading.Event: nobody waits on it, and reading or
    writing it is atomic in CPython.
    """

    message: Message
    started: float = field(default_factory=time.monotonic)
    stopped: StopReason | None = None

    def stop(self, reason: StopReason) -> bool:
        """Mark the work as to be stopped; False if it was already."""
        if self.stopped is not None:
            return False
        self.stopped = reason
        return True

    @property
    def overdue(self) -> bool:
        """True once the attempt has run longer than its topic allows."""
        return time.monotonic() - self.started > self.message.deadline_seconds

    def check(self) -> None:
        """Raise if the work must stop now: WorkStopped, or DeadlineExceeded."""
        if self.stopped is not None:
            raise WorkStopped(self.stopped, f"message {self.message.id}")
        if self.overdue:
            raise DeadlineExceeded(
                f"{self.message.topic} ran longer than its deadline of "
                f"{self.message.deadline_seconds:g} s (exports.topics)"
            )
