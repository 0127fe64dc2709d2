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

import psycopg_pool

from app.platform.lifecycle import PeriodicService
from app.platform.version import package_version
from app.queue import workers
from app.queue.workers import WorkerRow

log = logging.getLogger(__name__)

# How long deregistering may wait for a connection: it runs inside ECS's stopTimeout.
DEREGISTER_WAIT_SECONDS = 1.0


class WorkerRegistry(PeriodicService):
    """One poller's row in exports.workers, refreshed every `every` seconds."""

    name = "registry"

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        worker: str,
        *,
        in_flight: Callable[[], int],
        every: float,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.worker = worker
        self.every = every
        self._in_flight = in_flight
        self._started_at = dt.datetime.now(dt.UTC)
        # Serialises heartbeats with deregistering: a beat in flight must not bring the
        # row back after stop() removed it.
        self._writing = threading.Lock()

    def interval(self) -> float:
        """The heartbeat's cadence."""
        return self.every

    def start(self) -> None:
        """Register now (a failure is retried by the heartbeat) and start heartbeating."""
        try:
            with self.pool.connection() as conn:
                workers.register(conn, self._row())
        except Exception as exc:  # the database may be away: the poller runs regardless
            log.warning("could not register worker: %s", exc, extra={"worker": self.worker})
        super().start()

    def stop(self, timeout: float = DEREGISTER_WAIT_SECONDS) -> None:
        """Stop heartbeating and remove our row (a clean stop). Never raises."""
        self.stopping.set()
        if not self._writing.acquire(timeout=timeout):
            log.warning(
                "could not deregister worker: heartbeat stuck", extra={"worker": self.worker}
            )
            return  # maintenance removes the row once it goes stale
        try:
            with self.pool.connection(timeout=timeout) as conn:
                workers.deregister(conn, self.worker)
        except Exception as exc:
            log.warning("could not deregister worker: %s", exc, extra={"worker": self.worker})
        finally:
            self._writing.release()

    def tick(self) -> None:
        """One sign of life: last_heartbeat_at = now(), in_flight as it is right now."""
        with self._writing:
            if self.stopping.is_set():
                return
            with self.pool.connection() as conn:
                workers.heartbeat(conn, self._row())

    def _row(self) -> WorkerRow:
        return WorkerRow(
            id=self.worker,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            version=package_version(),
            started_at=self._started_at,
            in_flight=self._in_flight(),
        )
