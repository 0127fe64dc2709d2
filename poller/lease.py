"""A claimed message as the poller holds it: the message, whether we still own it, its deadline."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from app.errors import PermanentError
from app.jobs import ExportStopped
from app.outbox import Message


class DeadlineExceeded(PermanentError):
    """The attempt ran longer than its topic's deadline (exports.topics)."""


@dataclass
class Lease:
    """`lost` is set when a heartbeat finds the message re-claimed, or at shutdown."""

    message: Message
    lost: threading.Event = field(default_factory=threading.Event)
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
