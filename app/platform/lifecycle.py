"""One lifecycle for every background part of a process: start(), stop(), a loop between.

River's startstop.Service is the model: each part (the scheduler, the worker registry,
maintenance, the outbox listener, the lease heartbeat, the API's key-revocation listener)
runs on a daemon thread of its own, started and stopped the same way, and never dies of an
error: it logs, waits (reconnect_pause) and carries on.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
import psycopg_pool

log = logging.getLogger(__name__)

# Database trouble a reconnect can outlive; anything else is logged with its traceback.
DATABASE_TROUBLE = (psycopg.Error, psycopg_pool.PoolTimeout)


def reconnect_pause(failures: int) -> float:
    """Seconds to wait after `failures` consecutive database failures: 1, 2, 4 … 30."""
    return min(30.0, 0.5 * 2**failures)


class Service:
    """A background part: start() runs `run()` on a daemon thread until stop()."""

    name = "service"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run on a daemon thread of this process."""
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the loop to end and wait up to `timeout` s for it (it checks at least every
        second); a thread stuck in a network call is left behind (it is a daemon)."""
        self.stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self) -> None:
        """The loop; returns once `stopping` is set."""
        raise NotImplementedError

    def pause_after_failure(self, failures: int, exc: BaseException) -> None:
        """Log the failure and wait reconnect_pause(failures) (cut short by stop())."""
        pause = reconnect_pause(failures)
        if isinstance(exc, DATABASE_TROUBLE):
            log.warning(
                "%s: database unavailable; retrying in %.1fs", self.name, pause,
                extra={"error": str(exc)},
            )
        else:
            log.error("%s: unexpected failure; retrying in %.1fs", self.name, pause,
                      exc_info=exc)
        self.stopping.wait(pause)


class PeriodicService(Service):
    """Calls tick() every `interval()` seconds until stopped; a failing tick is logged and
    the next one comes as usual."""

    def interval(self) -> float:
        """Seconds until the next tick."""
        raise NotImplementedError

    def tick(self) -> None:
        """One round of the work."""
        raise NotImplementedError

    def run(self) -> None:
        """Tick until stopped."""
        while not self.stopping.wait(self.interval()):
            try:
                self.tick()
            except Exception as exc:
                log.warning("%s failed: %s", self.name, exc,
                            exc_info=not isinstance(exc, DATABASE_TROUBLE))


class ListeningService(Service):
    """LISTENs on a channel on a connection of its own and alternates step() with waiting
    for a notification; reconnects with back-off whenever the connection is lost."""

    channel = ""
    application_name = ""  # as pg_stat_activity shows the connection; default exports-<name>

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url

    def connected(self) -> None:
        """Called once LISTEN is in place (after every reconnect): catch up on what may
        have been missed."""

    def disconnected(self) -> None:
        """Called when the connection was lost."""

    def step(self) -> float:
        """Work to do now; returns how long to wait for a notification (at most ~1 s, so
        stop() is noticed)."""
        return 1.0

    def notified(self, payload: str) -> None:
        """Called for each notification on the channel."""

    def run(self) -> None:
        """Listen, step and wait until stopped."""
        failures = 0
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    self.database_url,
                    autocommit=True,
                    connect_timeout=5,
                    application_name=self.application_name or f"exports-{self.name}",
                    options="-c TimeZone=UTC",
                ) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    failures = 0
                    self.connected()
                    while not self.stopping.is_set():
                        wait = self.step()
                        for notice in conn.notifies(timeout=wait, stop_after=1):
                            self.notified(notice.payload)
            except Exception as exc:  # never let the thread die
                failures += 1
                self.disconnected()
                self.pause_after_failure(failures, exc)


def describe(exc: BaseException) -> str:
    """An exception as one line for logs and error histories: "Type: message"."""
    return f"{type(exc).__name__}: {exc}"[:2000]


__all__: list[Any] = [
    "DATABASE_TROUBLE",
    "ListeningService",
    "PeriodicService",
    "Service",
    "describe",
    "reconnect_pause",
]
