"""How a failure should be treated: retried later (transient) or not at all (permanent)."""

from __future__ import annotations


class TransientError(Exception):
    """Retrying later may succeed: network trouble, throttling, 5xx, a lost DB connection."""

    def __init__(self, message: str, *, min_delay: float = 0.0) -> None:
        super().__init__(message)
        # Throttled services ask for a longer pause than the usual back-off.
        self.min_delay = min_delay


class PermanentError(Exception):
    """Retrying will not help: bad parameters, a broken catalog query, access denied."""
