"""The lease heartbeat: keeps every message a poller holds leased to it, in one UPDATE."""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg_pool

from app.platform.lifecycle import DATABASE_TROUBLE, PeriodicService
from app.queue import outbox
from poller import metrics
from poller.core.lease import Lease, StopReason

log = logging.getLogger("poller.core")


class LeaseHeartbeat(PeriodicService):
    """Every third of a lease, extends every lease the poller holds in one UPDATE; a lease
    found re-claimed is marked lost, so its work stops at its next check."""

    name = "lease-heartbeat"

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        held: Callable[[], list[Lease]],
        *,
        lease_seconds: float,
    ) -> None:
        super().__init__()
        self.pool = pool
        self.held = held
        self.lease_seconds = lease_seconds

    def interval(self) -> float:
        """A third of a lease: two beats may fail before a lease lapses."""
        return self.lease_seconds / 3

    def tick(self) -> None:
        """One heartbeat: a single UPDATE for every message this poller holds."""
        # Work past its deadline gets no more time: if its thread is stuck, the lease
        # lapses and the attempt counts; if not, its next check fails it.
        leases = [lease for lease in self.held() if not lease.overdue]
        if not leases:
            return
        try:
            with self.pool.connection() as conn:
                still_ours = outbox.extend_leases(
                    conn, [lease.message for lease in leases], lease_seconds=self.lease_seconds
                )
        except DATABASE_TROUBLE as exc:
            log.warning("heartbeat failed: %s", exc)  # the next beat tries again
            return
        for lease in leases:
            if lease.message.id not in still_ours and lease.stop(StopReason.LEASE_LOST):
                metrics.LEASES_LOST.inc()
                log.warning("lease lost", extra={"message_id": lease.message.id})
