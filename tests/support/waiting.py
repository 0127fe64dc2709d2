"""Awaiting a condition that another thread or process brings about (no fixed sleeps)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Return `condition()`'s first truthy value, checking every `interval` s; fail after
    `timeout`."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is a cancellable pause between checks
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(interval)
