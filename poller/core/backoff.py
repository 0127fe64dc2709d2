"""How long a failed message waits before its next attempt (stored in outbox.visible_at)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter: base, 2 x base, 4 x base ... capped.

    "Equal jitter" (half fixed, half random) spreads the retries of a burst of failures
    without ever retrying sooner than half the nominal delay.
    """

    base_seconds: float = 5.0
    cap_seconds: float = 15 * 60.0

    def delay(self, attempt: int, *, at_least: float = 0.0) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        nominal = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        # Jitter only spreads retries out; nothing secret depends on it.
        return max(at_least, nominal / 2 + random.uniform(0, nominal / 2))  # nosec B311
