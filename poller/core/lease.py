"""A claimed message as the poller holds it: the message, whether we still own it, its deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.exports.jobs import ExportStopped
from app.platform.errors import PermanentError
from app.queue.outbox import Message


class DeadlineExceeded(PermanentError):
    """The attempt ran longer than its topic's deadline (exports.topics)."""


class Flag:
    """A one-way flag with threading.Event's set()/is_set(), without its Condition and
    lock: one Lease is made per claimed message (thousands a second), nobody waits on it,
    and reading or writing a bool attribute is atomic in CPython."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        """Raise the flag (for good)."""
        self._set = True

    def is_set(self) -> bool:
        """True once set() was called."""
        return self._set


@dataclass(slots=True)  # one per claimed message: thousands a second
class Lease:
    """`lost` is set when a heartbeat finds the message re-claimed, or at shutdown."""

    message: Message
    lost: Flag = field(default_factory=Flag)
    started: float = field(default_factory=time.monotonic)

    @property
    def overdue(self) -> bool:
        """True once the attempt has run longer than its topic allows."""
        return time.monotonic() - self.started > self.message.deadline_seconds

    def check(self) -> None:
        """Raise if the work must stop now: ExportStopped (lost) or DeadlineExceeded."""
        if self.lost.is_set():
            raise ExportStopped(f"lease on message {self.message.id} was lost")
        if self.overdue:
            raise DeadlineExceeded(
                f"{self.message.topic} ran longer than its deadline of "
                f"{self.message.deadline_seconds:g} s (exports.topics)"
            )
