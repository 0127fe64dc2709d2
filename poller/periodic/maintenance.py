"""Housekeeping that one poller at a time runs on an interval.

Every poller tries every EXPORTS_MAINTENANCE_INTERVAL seconds (jittered, so they do not
line up); the one that wins a transaction-level advisory lock does the run, the others
skip it. A run: (a) prune finished outbox rows past EXPORTS_OUTBOX_RETENTION_SECONDS,
(b) expire succeeded jobs past expires_at (file deleted, state `expired`, links 410),
(c) remove workers whose heartbeats stopped. Every step is safe to repeat, so a run cut
short by a crash is simply finished by the next one.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
import uuid
from dataclasses import asdict, dataclass

import psycopg_pool

from app.exports import jobs
from app.platform.lifecycle import PeriodicService
from app.platform.settings import Settings
from app.queue import workers
from app.queue.outbox import prune_outbox
from app.storage import Storage
from poller import metrics

log = logging.getLogger(__name__)

# A worker silent for this many lease lengths is dead (its registry heartbeat comes every
# third of a lease, so that is nine missed beats).
STALE_AFTER_LEASES = 3
PRUNE_BATCH = 1000
EXPIRY_BATCH = 100


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance run did."""

    pruned: int
    expired: int
    expiry_failures: int
    stale_workers: int
    seconds: float


class Maintenance(PeriodicService):
    """Runs maintenance on a background thread; at most one run at a time fleet-wide."""

    name = "maintenance"

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        storage: Storage,
        *,
        interval: float,
        outbox_retention: dt.timedelta,
        stale_after: dt.timedelta,
        prune_batch: int = PRUNE_BATCH,
        expiry_batch: int = EXPIRY_BATCH,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.storage = storage
        self.every = interval
        self.outbox_retention = outbox_retention
        self.stale_after = stale_after
        self.prune_batch = prune_batch
        self.expiry_batch = expiry_batch

    @classmethod
    def from_settings(
        cls, settings: Settings, pool: psycopg_pool.ConnectionPool, storage: Storage
    ) -> Maintenance:
        """Maintenance configured from the environment, on the poller's pool and storage
        (the process's own: the same encryption settings as the uploads)."""
        return cls(
            pool,
            storage,
            interval=settings.maintenance_interval,
            outbox_retention=dt.timedelta(seconds=settings.outbox_retention_seconds),
            stale_after=dt.timedelta(seconds=STALE_AFTER_LEASES * settings.lease_seconds),
        )

    def interval(self) -> float:
        """The configured interval ±20 %: pollers started together drift apart."""
        return self.every * random.uniform(0.8, 1.2)  # nosec B311  # jitter, not a secret

    def tick(self) -> None:
        """One run (or a skip: another poller holds the lock), logged."""
        try:
            report = self.run_once()
        except Exception:  # the next interval tries again
            metrics.MAINTENANCE_RUNS.labels("failed").inc()
            log.exception("maintenance run failed")
            return
        if report is None:
            log.debug("maintenance skipped: another poller is running it")
        else:
            log.info("maintenance run", extra=asdict(report))

    def run_once(self) -> MaintenanceReport | None:
        """One run if no other poller is running one (None: another one holds the lock)."""
        started = time.monotonic()
        # The lock lives in this connection's transaction, open for the whole run; commit,
        # rollback or a dead connection release it. The work uses other connections.
        with self.pool.connection() as lock:
            if not workers.try_maintenance_lock(lock):
                metrics.MAINTENANCE_RUNS.labels("skipped").inc()
                return None
            pruned = self._prune()
            expired, failures = self._expire()
            stale = self._remove_stale_workers()
        report = MaintenanceReport(pruned, expired, failures, stale, time.monotonic() - started)
        metrics.MAINTENANCE_RUNS.labels("done").inc()
        return report

    def _prune(self) -> int:
        with self.pool.connection() as conn:
            pruned = prune_outbox(
                conn, older_than=self.outbox_retention, batch_size=self.prune_batch
            )
        metrics.OUTBOX_PRUNED.inc(pruned)
        return pruned

    def _expire(self) -> tuple[int, int]:
        """Expire every job past expires_at, one transaction each; (expired, failed)."""
        expired = failed = 0
        after: tuple[dt.datetime, uuid.UUID] | None = None
        while True:
            with self.pool.connection() as conn:
                batch = jobs.expiring_jobs(conn, limit=self.expiry_batch, after=after)
            for job in batch:
                try:
                    with self.pool.connection() as conn:
                        if jobs.expire_job(conn, self.storage, job.id):
                            expired += 1
                            metrics.JOBS_EXPIRED.inc()
                except Exception as exc:  # its file stays; the next run tries again
                    failed += 1
                    metrics.EXPIRY_FAILURES.inc()
                    log.warning("could not expire job: %s", exc, extra={"job_id": str(job.id)})
            if len(batch) < self.expiry_batch:
                return expired, failed
            last = batch[-1]
            assert last.expires_at is not None
            after = (last.expires_at, last.id)

    def _remove_stale_workers(self) -> int:
        with self.pool.connection() as conn:
            removed = workers.delete_stale(conn, silent_for=self.stale_after)
        if removed:
            log.info("removed stale workers", extra={"workers": removed})
        metrics.STALE_WORKERS_REMOVED.inc(len(removed))
        return len(removed)
