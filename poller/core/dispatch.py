"""The dispatch loop: wait for work (LISTEN + fallback poll), claim a batch, run it on threads.

One Poller per process. Threads: the claim loop (on a connection of its own), `threads`
handler threads fed from one queue, and two services: the outbox listener (LISTEN) and the
lease heartbeat. The Poller knows no topic: each message goes to its topic's handler, and
how the handler ended is the failure policy's business (failures.py).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import psycopg
import psycopg_pool

from app.platform.db import QUEUE_SESSION_OPTIONS
from app.platform.lifecycle import Service, reconnect_pause
from app.platform.logs import log_context
from app.queue import outbox
from app.queue.outbox import Message
from poller import metrics
from poller.core.backoff import Backoff
from poller.core.completion import Completions
from poller.core.failures import FailurePolicy, count
from poller.core.handler import Handler
from poller.core.heartbeat import LeaseHeartbeat
from poller.core.lease import Lease, StopReason
from poller.core.listener import OutboxListener

log = logging.getLogger("poller.core")

# After the grace period: how long handing unfinished work back may take (ECS's 30 s
# stopTimeout must cover grace + this + closing).
HAND_BACK_SECONDS = 2.0
# How long a claim waits for a connection: the claim loop must notice stop() promptly
# even while the database is away.
CLAIM_WAIT_SECONDS = 2.0
CLAIM_APPLICATION_NAME = "exports-poller-claim"
# Prefetch: a topic whose handler usually finishes within FAST_SECONDS is "fast"; the
# poller then holds up to `batch` of its messages beyond one per thread (claimed in the
# same transaction), so one claim feeds the threads for a while. Slower topics are only
# ever claimed for free threads, so pollers share slow work fairly.
FAST_SECONDS = 0.01
# Weight of a new sample in a topic's average duration (a slower sample counts at once).
DURATION_WEIGHT = 0.2


def worker_name() -> str:
    """host:pid:random, written to outbox.leased_by so DBAs can tell pollers apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Poller:
    """Claims outbox messages and runs their topic's handler until stopped."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool,
        handlers: Mapping[str, Handler],
        *,
        database_url: str,
        threads: int = 4,
        batch: int = 10,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        backoff: Backoff | None = None,
        name: str | None = None,
        claim_policy: outbox.ClaimPolicy | None = None,
    ) -> None:
        self.pool = pool
        self.handlers = handlers
        self.database_url = database_url
        self.threads = threads
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.name = name or worker_name()
        self.failures = FailurePolicy(pool, backoff or Backoff())
        self.completions = Completions()
        self.claim_policy = claim_policy or outbox.ClaimPolicy()
        # The round-robin's place: the next claim starts with the tenant after this one.
        self._after_tenant = ""
        self._in_flight: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._grace_seconds = 25.0
        self._stop_deadline: float | None = None  # grace ends here, counted from stop()
        # Claimed leases wait here for a handler thread (None: that thread ends). Cheaper per
        # message than a ThreadPoolExecutor (no Future, work item or done callback each).
        self._queue: queue.SimpleQueue[Lease | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        # The claim loop's own connection: no pool check (a round trip) on every cycle.
        # Only the claim loop's thread uses it; replaced after any error.
        self._claim_conn: psycopg.Connection | None = None
        # Started with run() and stopped with it (the scheduler, maintenance, the registry).
        self.companions: list[Service] = []
        self._topic_seconds: dict[str, float] = {}  # typical handler duration per topic
        self.last_tick = time.monotonic()  # the claim loop came round (poller /healthz)

    # --- lifecycle ------------------------------------------------------------------------

    def run(self, *, grace_seconds: float = 25.0) -> None:
        """Run until stop(); in-flight work then has `grace_seconds` from stop() to finish."""
        self._grace_seconds = grace_seconds
        log.info("poller started", extra={"worker": self.name, "threads": self.threads})
        listener = OutboxListener(self.database_url, self._wake)
        heartbeat = LeaseHeartbeat(self.pool, self.held, lease_seconds=self.lease_seconds)
        listener.start()
        heartbeat.start()
        self._workers = [
            threading.Thread(target=self._work, name=f"handler-{i}") for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        for companion in self.companions:
            companion.start()
        try:
            self._claim_loop()
        finally:
            self._close_claim_connection()
            for companion in reversed(self.companions):
                companion.stop()
            listener.stop(timeout=1)
            self._drain()
            # A heartbeat blocked on an absent database is a daemon thread and is left
            # behind rather than waited for.
            heartbeat.stop(timeout=1)
            log.info("poller stopped", extra={"worker": self.name})

    def stop(self) -> None:
        """Stop claiming now; run() returns once in-flight work is done (or the grace ends)."""
        if not self._stopping.is_set():
            self._stop_deadline = time.monotonic() + self._grace_seconds
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """stop() was called: no more claims."""
        return self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        """How many messages are being worked on right now."""
        with self._lock:
            return len(self._in_flight)

    def held(self) -> list[Lease]:
        """Every lease this poller must keep: in flight, or finished and awaiting completion."""
        with self._lock:
            running = list(self._in_flight.values())
        return running + self.completions.waiting()

    # --- claiming -------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self.last_tick = time.monotonic()
            held = self.in_flight
            # Any topic for the free threads; beyond that, fast topics only (prefetch).
            free = min(self.batch, max(0, self.threads - held))
            fast = self.fast_topics()
            # Prefetch in big claims (each costs a commit): once half the room is free.
            prefetch = (
                max(0, min(self.batch - free, self.threads + self.batch - held - free))
                if fast and held <= self.threads + self.batch // 2
                else 0
            )
            done = self.completions.take()
            claimed: list[Message] = []
            if free or prefetch or done:
                try:
                    claimed = self.claim(free, prefetch=prefetch, fast_topics=fast, complete=done)
                    failures = 0
                except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                    # Any database trouble (restart, failover, broken connection): wait and
                    # try again; the pool replaces bad connections.
                    self.completions.give_back(done)
                    failures += 1
                    pause = reconnect_pause(failures)
                    log.warning(
                        "claim failed, database unavailable; retrying in %.1fs",
                        pause,
                        extra={"error": str(exc)},
                    )
                    self._stopping.wait(pause)
                    continue
                if self._stopping.is_set():  # stop() came while we were claiming
                    self.hand_back([Lease(message) for message in claimed])
                    break
                if claimed:
                    self._start(claimed)
            if claimed and len(claimed) == free + prefetch:
                continue  # the queue may hold more: claim again without waiting
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def claim(
        self,
        batch: int,
        *,
        prefetch: int = 0,
        fast_topics: Sequence[str] = (),
        complete: Sequence[Lease] = (),
    ) -> list[Message]:
        """Lease up to `batch` ready messages, plus up to `prefetch` of `fast_topics`.

        In the same transaction (one commit), first complete `complete`: messages whose
        handlers returned Settled.BY_POLLER, i.e. whose effects are already committed.
        """
        claims: list[tuple[int, list[str] | None]] = []
        if batch > 0:
            claims.append((batch, None))
        if prefetch > 0 and fast_topics:
            claims.append((prefetch, list(fast_topics)))
        done = [lease.message for lease in complete]
        fresh = self._claim_conn is None
        conn = self._claim_connection()
        try:
            completed, claimed = self._complete_and_claim(conn, done, claims)
        except psycopg.OperationalError:
            self._close_claim_connection()
            if fresh:
                raise
            # A connection that worked last cycle broke meanwhile (server restart, killed
            # backend): what the pool's check used to catch. Once more on a new one; if the
            # first try did commit, its completions match nothing now (reported as lost)
            # and its claims lapse, as after any lost connection.
            conn = self._claim_connection()
            try:
                completed, claimed = self._complete_and_claim(conn, done, claims)
            except psycopg.Error:
                self._close_claim_connection()
                raise
        except psycopg.Error:
            self._close_claim_connection()  # whatever state it was left in: start afresh
            raise
        self.completions.recorded(complete, completed)
        return claimed

    def _complete_and_claim(
        self,
        conn: psycopg.Connection,
        done: list[Message],
        claims: list[tuple[int, list[str] | None]],
    ) -> tuple[set[int], list[Message]]:
        completed, per_claim = outbox.complete_and_claim(
            conn,
            done,
            claims,
            lease_seconds=self.lease_seconds,
            worker=self.name,
            policy=self.claim_policy,
            after_tenant=self._after_tenant,
        )
        claimed = [message for messages in per_claim for message in messages]
        self._after_tenant = outbox.next_tenant_cursor(self._after_tenant, claimed)
        return completed, claimed

    def _claim_connection(self) -> psycopg.Connection:
        """The claim loop's connection, (re)connected within CLAIM_WAIT_SECONDS if needed."""
        conn = self._claim_conn
        if conn is None or conn.closed:
            conn = psycopg.connect(
                self.database_url,
                connect_timeout=max(2, round(CLAIM_WAIT_SECONDS)),  # libpq's minimum is 2
                application_name=CLAIM_APPLICATION_NAME,
                options=QUEUE_SESSION_OPTIONS,
            )
            self._claim_conn = conn
        return conn

    def _close_claim_connection(self) -> None:
        conn, self._claim_conn = self._claim_conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection: nothing left to save
                log.debug("closing the claim connection failed", exc_info=True)

    def fast_topics(self) -> list[str]:
        """Topics whose handler typically finishes within FAST_SECONDS (worth prefetching)."""
        return [
            topic
            for topic, seconds in list(self._topic_seconds.items())
            if seconds <= FAST_SECONDS and topic in self.handlers
        ]

    def _learn_duration(self, topic: str, seconds: float) -> None:
        previous = self._topic_seconds.get(topic)
        if previous is None or seconds > previous:
            self._topic_seconds[topic] = seconds  # slow news counts at once
        else:
            self._topic_seconds[topic] = previous + DURATION_WEIGHT * (seconds - previous)

    # --- running messages -----------------------------------------------------------------

    def _start(self, claimed: Iterable[Message]) -> None:
        """Hold the claimed messages and queue them for the handler threads."""
        started = time.monotonic()
        leases = [Lease(message, started=started) for message in claimed]
        with self._lock:
            for lease in leases:
                self._in_flight[lease.message.id] = lease
        metrics.IN_FLIGHT.inc(len(leases))
        for topic, n in Counter(lease.message.topic for lease in leases).items():
            metrics.MESSAGES_CLAIMED.labels(topic).inc(n)
        put = self._queue.put
        for lease in leases:
            put(lease)

    def _work(self) -> None:
        """A handler thread: run queued messages until a None comes (the poller stopped)."""
        while (lease := self._queue.get()) is not None:
            try:
                self.run_message(lease)
            finally:
                with self._lock:
                    self._in_flight.pop(lease.message.id, None)
                metrics.IN_FLIGHT.dec()
                self._wake.set()  # a thread is free: claim more

    def run_message(self, lease: Lease) -> None:
        """Run the message's handler under the failure policy. Never raises."""
        message = lease.message
        if lease.stopped is not None:  # handed back (shutdown) before a thread got to it
            return
        started = time.monotonic()
        # Every log line (and Sentry report) written while handling it names the message.
        with log_context(
            job_id=message.job_id and str(message.job_id),
            outbox_id=message.id,
            attempt=message.attempts,
            topic=message.topic,
        ):
            outcome = self.failures.run(self.handlers.get(message.topic), lease)
        seconds = time.monotonic() - started
        self._learn_duration(message.topic, seconds)
        metrics.MESSAGE_SECONDS.labels(message.topic).observe(seconds)
        if outcome is None:  # done; completed with the next claim, and counted then
            with self._lock:  # settled: no heartbeat may call it lost now
                self._in_flight.pop(message.id, None)
                self.completions.add(lease)
            return
        count(message.topic, outcome)

    # --- shutdown -------------------------------------------------------------------------

    def _drain(self) -> None:
        deadline = self._stop_deadline or time.monotonic() + self._grace_seconds
        while self.in_flight and (remaining := deadline - time.monotonic()) > 0:
            self._wake.wait(remaining)  # set by every finished message
            self._wake.clear()
            self.completions.flush(self.pool, CLAIM_WAIT_SECONDS)
        with self._lock:
            leftover = list(self._in_flight.values())
        for lease in leftover:
            lease.stop(StopReason.SHUTDOWN)  # its thread stops at the next check
        # Finished work is completed, not handed back (it would run again).
        self.completions.flush(self.pool, HAND_BACK_SECONDS)
        if leftover:
            self.hand_back(leftover)
        # Queued leases left are stopped (handed back): their threads skip them, then end.
        for _ in self._workers:
            self._queue.put(None)

    def hand_back(self, leases: list[Lease]) -> None:
        """Make unfinished messages visible to other pollers now (not a failed attempt),
        and let each topic's handler undo its "running" state, in one transaction.

        Bounded by HAND_BACK_SECONDS: if the database is away, the leases lapse instead.
        """
        try:
            with self.pool.connection(timeout=HAND_BACK_SECONDS) as conn:
                returned = outbox.hand_back(conn, [lease.message for lease in leases], self.name)
                for message in returned:
                    handler = self.handlers.get(message.topic)
                    if handler is not None:
                        handler.handed_back(conn, message)
        except Exception as exc:
            log.warning("could not hand work back; its leases will lapse instead: %s", exc)
            return
        metrics.HANDED_BACK.inc(len(returned))
        log.info(
            "handed back unfinished work",
            extra={"message_ids": sorted(m.id for m in returned), "count": len(returned)},
        )
