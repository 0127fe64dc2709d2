"""Batched completion: finished messages whose effects are committed already
(Settled.BY_POLLER) are marked done together, in one fenced UPDATE that shares the next
claim's transaction (River's batched completer)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence

import psycopg_pool

from app.queue import outbox
from poller import metrics
from poller.core.failures import count
from poller.core.handler import Outcome
from poller.core.lease import Lease

log = logging.getLogger("poller.core")


class Completions:
    """The finished leases waiting to be completed, and what their completion did."""

    def __init__(self) -> None:
        self._pending: list[Lease] = []
        self._lock = threading.Lock()

    def add(self, lease: Lease) -> None:
        """A handler finished `lease` and left completing it to the poller."""
        with self._lock:
            self._pending.append(lease)

    def take(self) -> list[Lease]:
        """Everything waiting, now the caller's to complete."""
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def give_back(self, leases: list[Lease]) -> None:
        """Not completed after all (database trouble): complete them with the next claim."""
        if leases:
            with self._lock:
                self._pending[:0] = leases

    def waiting(self) -> list[Lease]:
        """A snapshot of what is waiting (the heartbeat keeps their leases)."""
        with self._lock:
            return list(self._pending)

    def recorded(self, done: Sequence[Lease], completed: set[int]) -> None:
        """Count what a committed completion did: `completed` ids are done, the rest had
        lost their lease (another attempt runs them)."""
        counts: Counter[tuple[str, Outcome]] = Counter()
        for lease in done:
            message = lease.message
            if message.id in completed:
                counts[message.topic, Outcome.DONE] += 1
            else:
                counts[message.topic, Outcome.DROPPED] += 1
                metrics.LEASES_LOST.inc()
                log.warning(
                    "completion not recorded: lease already lost (the message runs again)",
                    extra={"message_id": message.id},
                )
        for (topic, outcome), n in counts.items():  # one metric update per topic
            count(topic, outcome, n)

    def flush(self, pool: psycopg_pool.ConnectionPool, timeout: float) -> None:
        """Complete what is waiting now, outside the claim loop (draining at shutdown)."""
        done = self.take()
        if not done:
            return
        try:
            with pool.connection(timeout=timeout) as conn:
                completed = outbox.complete_messages(conn, [lease.message for lease in done])
        except Exception as exc:
            # Their work is done but not recorded: the leases lapse and they run again.
            log.warning("could not complete %d finished messages: %s", len(done), exc)
            self.give_back(done)
            return
        self.recorded(done, completed)
