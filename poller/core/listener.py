"""The outbox listener: wakes the claim loop when work is queued (LISTEN exports_outbox)."""

from __future__ import annotations

import threading

from app.platform.lifecycle import ListeningService

# NOTIFYed by a statement-level trigger on every insert into exports.outbox.
CHANNEL = "exports_outbox"


class OutboxListener(ListeningService):
    """Wakes the claim loop when work is queued (LISTEN exports_outbox)."""

    name = "outbox-listener"
    channel = CHANNEL
    application_name = "exports-poller-listen"

    def __init__(self, database_url: str, wake: threading.Event) -> None:
        super().__init__(database_url)
        self.wake = wake

    def connected(self) -> None:
        """Claim now: anything may have been queued while we were not listening."""
        self.wake.set()

    def notified(self, payload: str) -> None:
        """Something was queued: claim."""
        self.wake.set()
