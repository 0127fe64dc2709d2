"""A claimed message as the poller holds it: the message plus whether we still own it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from app.jobs import ExportStopped
from app.outbox import Message


@dataclass
class Lease:
    """Set `lost` when a heartbeat finds the message re-claimed or the poller is stopping hard."""

    message: Message
    lost: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise ExportStopped if the work must stop now."""
        if self.lost.is_set():
            raise ExportStopped(f"lease on message {self.message.id} was lost")
