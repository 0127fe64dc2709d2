"""The worker registry: each poller keeps its own row in exports.workers up to date.

Registered at start, refreshed by a heartbeat (last_heartbeat_at, in_flight), removed on a
clean stop. A poller that dies leaves its row behind; maintenance removes it once it has
been silent for a few lease lengths.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any

import psycopg_pool

from app.platform.db import fetch_one

log = logging.getLogger(__name__)

# How long deregistering may wait for a connection: it runs inside ECS's stopTimeout.
DEREGISTER_WAIT_SECONDS = 1.0


def package_version() -> str:
    """The installed exports package's version ("unknown" when run from a bare tree)."""
    try:
        return metadata.version("exports")
    except metadata.PackageNotFoundError:
        return "unknown"


class WorkerRegistry:
    """One poller's row in exports.workers, refreshed every `interval` seconds."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        worker: str,
        *,
        in_flight: Callable[[], int],
        interval: float,
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.interval = interval
        self._in_flight = in_flight
        self._started_at = dt.datetime.now(dt.UTC)
        self._stop = threading.Event()
        # Serialises heartbeats with deregistering: a beat in flight must not bring the
        # row back after stop() removed it.
        self._writing = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name="registry", daemon=True)

    def start(self) -> None:
        """Register now (a failure is retried by the heartbeat) and start heartbeating."""
        try:
            with self.pool.connection() as conn:
                fetch_one(conn, "register_worker", **self._row())
        except Exception as exc:  # the database may be away: the poller runs regardless
            log.warning("could not register worker: %s", exc, extra={"worker": self.worker})
        self._thread.start()

    def stop(self) -> None:
        """Stop heartbeating and remove our row (a clean stop). Never raises."""
        self._stop.set()
        if not self._writing.acquire(timeout=DEREGISTER_WAIT_SECONDS):
            log.warning(
                "could not deregister worker: heartbeat stuck", extra={"worker": self.worker}
            )
            return  # maintenance removes the row once it goes stale
        try:
            with self.pool.connection(timeout=DEREGISTER_WAIT_SECONDS) as conn:
                fetch_one(conn, "deregister_worker", id=self.worker)
        except Exception as exc:
            log.warning("could not deregister worker: %s", exc, extra={"worker": self.worker})
        finally:
            self._writing.release()

    def heartbeat(self) -> None:
        """One sign of life: last_heartbeat_at = now(), in_flight as it is right now."""
        with self.pool.connection() as conn:
            fetch_one(conn, "worker_heartbeat", **self._row())

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._writing:
                if self._stop.is_set():
                    return
                try:
                    self.heartbeat()
                except Exception as exc:  # never let the thread die; try again next beat
                    log.warning("worker heartbeat failed: %s", exc, extra={"worker": self.worker})

    def _row(self) -> dict[str, Any]:
        return {
            "id": self.worker,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "version": package_version(),
            "started_at": self._started_at,
            "in_flight": self._in_flight(),
        }
