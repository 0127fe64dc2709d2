"""The scheduler: a thread in each poller process that fires due schedules (exports.schedules).

It sleeps until the earliest next_run_at (by the database's clock), at most MAX_SLEEP_SECONDS,
and wakes early on NOTIFY exports_schedules (a trigger sends it when a schedule is created or
retimed). Firing is app.schedules.store.fire_due_schedules: FOR UPDATE SKIP LOCKED, so any number of
pollers may run a scheduler; each slot still queues exactly one job.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg_pool

from app.exports import priorities
from app.platform.lifecycle import ListeningService
from app.schedules import store
from poller import metrics

log = logging.getLogger(__name__)

# Longest sleep between two looks at the table: bounds how late stop() is noticed and
# how late a schedule is fired if a NOTIFY was missed (e.g. while reconnecting).
MAX_SLEEP_SECONDS = 1.0
CONNECTION_WAIT_SECONDS = 2.0
# Shortest sleep: a due schedule another poller is firing (locked) is looked at again soon,
# without spinning.
MIN_SLEEP_SECONDS = 0.01
WAKE_MARGIN_SECONDS = 0.001
# Schedules fired per transaction: a slot shared by many schedules commits its first jobs
# after a few milliseconds instead of after all of them (each costs a round trip or two).
FIRE_BATCH = 20


class Scheduler(ListeningService):
    """Fires due schedules until stopped; survives database outages with back-off."""

    name = "scheduler"
    channel = store.CHANNEL
    application_name = "exports-poller-scheduler"

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        *,
        database_url: str,
        max_attempts: int,
        max_active: int = 0,
        priority_max_wait: int = priorities.DEFAULT_MAX_WAIT,
        batch: int = FIRE_BATCH,
        max_sleep: float = MAX_SLEEP_SECONDS,
    ) -> None:
        super().__init__(database_url)
        self.pool = pool
        self.max_attempts = max_attempts
        self.max_active = max_active  # the per-owner quota slots are held to, like the API
        self.priority_max_wait = priority_max_wait  # EXPORTS_PRIORITY_MAX_WAIT
        self.batch = batch
        self.max_sleep = max_sleep

    def step(self) -> float:
        """Fire what is due; wait until the next slot (a NOTIFY ends the wait early)."""
        return self.tick()

    def tick(self) -> float:
        """Fire what is due now (one transaction per batch); seconds until the next is due."""
        while True:
            with self.pool.connection(timeout=CONNECTION_WAIT_SECONDS) as conn:
                now = store.database_now(conn)
                fired = store.fire_due_schedules(
                    conn, now, self.batch, max_attempts=self.max_attempts,
                    max_active=self.max_active,
                    priority_max_wait=self.priority_max_wait,
                )
            committed = dt.datetime.now(dt.UTC)
            for slot in fired:
                if slot.skipped:
                    metrics.SCHEDULE_SLOTS_SKIPPED.labels(slot.skipped).inc()
                else:
                    metrics.SCHEDULE_LATENESS.observe((committed - slot.slot).total_seconds())
            if len(fired) < self.batch or self.stopping.is_set():
                break  # else: more may be due right now
        with self.pool.connection(timeout=CONNECTION_WAIT_SECONDS) as conn:
            now, next_run_at = store.next_due_in(conn)
        return self.pause(now, next_run_at)

    def pause(self, now: dt.datetime, next_run_at: dt.datetime | None) -> float:
        """Seconds to sleep, by the database's clock `now`, until `next_run_at`."""
        if next_run_at is None:
            return self.max_sleep
        ahead = (next_run_at - now) / dt.timedelta(seconds=1)
        if ahead <= 0:
            # Due but not fired: another poller holds it (SKIP LOCKED). Look again soon.
            return MIN_SLEEP_SECONDS
        # Wake at the slot itself (plus a millisecond, so a timer that returns a hair early
        # does not find it not yet due and then sleep MIN_SLEEP_SECONDS past it).
        return min(self.max_sleep, ahead + WAKE_MARGIN_SECONDS)
