"""The poller loop: wait for work (LISTEN + fallback poll), claim a batch, run it on threads.

One Poller per process. Threads: the main loop (claims, on a connection of its own), a
listener (LISTEN), a heartbeat (extends every in-flight lease in one UPDATE) and `threads`
handler threads fed from one queue.
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

from app.exports import jobs
from app.exports.jobs import ExportStopped
from app.platform import metrics, monitoring
from app.platform.db import LeaseLost
from app.platform.errors import PermanentError, TransientError
from app.platform.logs import log_context
from app.queue import outbox
from app.queue.outbox import Message
from poller.core.backoff import Backoff
from poller.core.lease import Lease
from poller.handlers import Handler, Settled

log = logging.getLogger(__name__)

CHANNEL = "exports_outbox"
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
# Database errors that a retry can outlive (connection lost, pool exhausted).
_DB_UNAVAILABLE = (psycopg.OperationalError, psycopg_pool.PoolTimeout)
# Errors in the SQL itself (syntax, missing column, bad cast, constraint): never transient.
_SQL_MISTAKES = (
    psycopg.ProgrammingError,
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.NotSupportedError,
)


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
    ) -> None:
        self.pool = pool
        self.handlers = handlers
        self.database_url = database_url
        self.threads = threads
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.backoff = backoff or Backoff()
        self.name = name or worker_name()
        self._in_flight: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drained = threading.Event()  # in-flight work is over: the heartbeat may end
        self._grace_seconds = 25.0
        self._stop_deadline: float | None = None  # grace ends here, counted from stop()
        # Claimed leases wait here for a handler thread (None: that thread ends). Cheaper per
        # message than a ThreadPoolExecutor (no Future, work item or done callback each).
        self._queue: queue.SimpleQueue[Lease | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        # The claim loop's own connection: no pool check (a round trip) on every cycle.
        # Only the claim loop's thread uses it; replaced after any error.
        self._claim_conn: psycopg.Connection | None = None
        self.companions: list = []  # start() and stop() with run(): the scheduler
        # Finished messages the poller completes (Settled.BY_POLLER), in one fenced UPDATE
        # shared with the next claim's transaction.
        self._completions: list[Lease] = []
        self._topic_seconds: dict[str, float] = {}  # typical handler duration per topic
        self.last_tick = time.monotonic()  # the claim loop came round (poller /healthz)

    # --- lifecycle ------------------------------------------------------------------------

    def run(self, *, grace_seconds: float = 25.0) -> None:
        """Run until stop(); in-flight work then has `grace_seconds` from stop() to finish."""
        self._grace_seconds = grace_seconds
        log.info("poller started", extra={"worker": self.name, "threads": self.threads})
        helpers = [
            threading.Thread(target=self._listen, name="listener", daemon=True),
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True),
        ]
        for thread in helpers:
            thread.start()
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
            for companion in self.companions:
                companion.stop()
            self._drain()
            for thread in helpers:
                # The listener notices within a second; a heartbeat blocked on an absent
                # database is a daemon thread and is left behind rather than waited for.
                thread.join(timeout=1)
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
            done = self._take_completions()
            claimed: list[Message] = []
            if free or prefetch or done:
                try:
                    claimed = self.claim(free, prefetch=prefetch, fast_topics=fast, complete=done)
                    failures = 0
                except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                    # Any database trouble (restart, failover, broken connection): wait and
                    # try again; the pool replaces bad connections.
                    self._return_completions(done)
                    failures += 1
                    self._pause_after_failure("claim failed, database unavailable", failures, exc)
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
            completed, claimed = outbox.complete_and_claim(
                conn, done, claims, lease_seconds=self.lease_seconds, worker=self.name
            )
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
                completed, claimed = outbox.complete_and_claim(
                    conn, done, claims, lease_seconds=self.lease_seconds, worker=self.name
                )
            except psycopg.Error:
                self._close_claim_connection()
                raise
        except psycopg.Error:
            self._close_claim_connection()  # whatever state it was left in: start afresh
            raise
        self._completed(complete, completed)
        return claimed

    def _claim_connection(self) -> psycopg.Connection:
        """The claim loop's connection, (re)connected within CLAIM_WAIT_SECONDS if needed."""
        conn = self._claim_conn
        if conn is None or conn.closed:
            conn = psycopg.connect(
                self.database_url,
                connect_timeout=max(2, round(CLAIM_WAIT_SECONDS)),  # libpq's minimum is 2
                application_name=CLAIM_APPLICATION_NAME,
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

    # --- batch completion -----------------------------------------------------------------

    def _take_completions(self) -> list[Lease]:
        with self._lock:
            done, self._completions = self._completions, []
        return done

    def _return_completions(self, done: list[Lease]) -> None:
        """Not completed after all (database trouble): try again with the next claim."""
        if done:
            with self._lock:
                self._completions[:0] = done

    def _completed(self, done: Sequence[Lease], completed: set[int]) -> None:
        """Count what a committed batch completion did; the rest had lost their lease."""
        counts: Counter[tuple[str, str]] = Counter()
        for lease in done:
            message = lease.message
            if message.id in completed:
                counts[message.topic, "done"] += 1
            else:
                counts[message.topic, "dropped"] += 1
                metrics.LEASES_LOST.inc()
                log.warning(
                    "completion not recorded: lease already lost (the message runs again)",
                    extra={"message_id": message.id},
                )
        for (topic, outcome), count in counts.items():  # one metric update per topic
            metrics.MESSAGES.labels(topic, outcome).inc(count)

    def flush_completions(self, timeout: float = CLAIM_WAIT_SECONDS) -> None:
        """Complete the messages waiting for it now (outside the claim loop: draining)."""
        done = self._take_completions()
        if not done:
            return
        try:
            with self.pool.connection(timeout=timeout) as conn:
                completed = outbox.complete_messages(conn, [lease.message for lease in done])
        except Exception as exc:
            # Their work is done but not recorded: the leases lapse and they run again.
            log.warning("could not complete %d finished messages: %s", len(done), exc)
            self._return_completions(done)
            return
        self._completed(done, completed)

    def _start(self, claimed: Iterable[Message]) -> None:
        """Hold the claimed messages and queue them for the handler threads."""
        started = time.monotonic()
        leases = [Lease(message, started=started) for message in claimed]
        with self._lock:
            for lease in leases:
                self._in_flight[lease.message.id] = lease
        metrics.IN_FLIGHT.inc(len(leases))
        for topic, count in Counter(lease.message.topic for lease in leases).items():
            metrics.MESSAGES_CLAIMED.labels(topic).inc(count)
        put = self._queue.put
        for lease in leases:
            put(lease)

    def _work(self) -> None:
        """A handler thread: run queued messages until a None comes (the poller stopped)."""
        while (lease := self._queue.get()) is not None:
            try:
                self.run_message(lease)
            finally:
                self._finished(lease.message.id)

    def _finished(self, message_id: int) -> None:
        with self._lock:
            self._in_flight.pop(message_id, None)
        metrics.IN_FLIGHT.dec()
        self._wake.set()  # a thread is free: claim more

    # --- running one message --------------------------------------------------------------

    def run_message(self, lease: Lease) -> None:
        """Run the handler; turn its failure into a fenced retry or give-up. Never raises."""
        started = time.monotonic()
        message = lease.message
        if lease.lost.is_set():  # handed back (shutdown) before a thread got to it
            with self._lock:
                self._in_flight.pop(message.id, None)
            return
        # Every log line (and Sentry report) written while handling it names the message.
        with log_context(
            job_id=message.job_id and str(message.job_id),
            outbox_id=message.id,
            attempt=message.attempts,
            topic=message.topic,
        ):
            outcome = self._run(lease)
        seconds = time.monotonic() - started
        topic = lease.message.topic
        self._learn_duration(topic, seconds)
        metrics.MESSAGE_SECONDS.labels(topic).observe(seconds)
        with self._lock:  # settled: no heartbeat may call it lost now
            self._in_flight.pop(lease.message.id, None)
            if outcome == "complete":  # done; the claim loop completes it, batched
                self._completions.append(lease)
                return  # counted once completed (_completed); _finished wakes the loop
        metrics.MESSAGES.labels(topic, outcome).inc()

    def _run(self, lease: Lease) -> str:
        """Handle one message; the outcome: done, retry, dead or dropped."""
        message = lease.message
        context = {
            "message_id": message.id,
            "topic": message.topic,
            "job_id": str(message.job_id),
            "attempt": message.attempts,
        }
        handler = self.handlers.get(message.topic)
        try:
            if handler is None:
                raise PermanentError(f"no handler for topic {message.topic!r}")
            if message.is_over_attempts:
                raise PermanentError(
                    f"gave up after {message.max_attempts} attempts; the last ended without "
                    "a result (lease expired: see the outbox error history)"
                )
            if handler.handle(lease) is Settled.BY_POLLER:
                return "complete"
            return "done"
        except (LeaseLost, ExportStopped) as exc:
            log.warning("work dropped: %s", exc, extra=context)
            return "dropped"
        except PermanentError as exc:
            log.error("permanent failure: %s", exc, extra=context)
            return self._settle(handler, lease, _describe(exc), give_up=True)
        except (TransientError, *_DB_UNAVAILABLE) as exc:
            log.warning("transient failure: %s", exc, extra=context)
            at_least = exc.min_delay if isinstance(exc, TransientError) else 0.0
            return self._settle(handler, lease, _describe(exc), give_up=False, at_least=at_least)
        except _SQL_MISTAKES as exc:
            # The query itself is wrong (a broken catalog kind, bad data): retrying won't help.
            log.error("permanent failure (SQL): %s", exc, extra=context)
            return self._settle(handler, lease, _describe(exc), give_up=True)
        except Exception as exc:
            # Unknown errors are retried (they may be passing), but reported loudly.
            log.exception("unexpected failure", extra=context)
            return self._settle(handler, lease, _describe(exc), give_up=False)

    def _settle(
        self,
        handler: Handler | None,
        lease: Lease,
        error: str,
        *,
        give_up: bool,
        at_least: float = 0.0,
    ) -> str:
        """Record the failure (fenced); the outcome: dead, retry, or dropped if not recorded.

        A failure that cannot be recorded loses nothing: the lease lapses and the message
        runs again.
        """
        message = lease.message
        give_up = give_up or message.is_last_attempt
        monitoring.report_failed_attempt(message, error, give_up=give_up)
        try:
            with self.pool.connection() as conn:
                if handler is None:
                    outbox.bury_message(conn, message, error)
                elif give_up:
                    handler.give_up(conn, message, error)
                else:
                    delay = self.backoff.delay(message.attempts, at_least=at_least)
                    handler.retry(conn, message, error, delay)
            return "dead" if give_up else "retry"
        except LeaseLost:
            log.warning(
                "failure not recorded: lease already lost", extra={"message_id": message.id}
            )
        except _DB_UNAVAILABLE as exc:
            log.error(
                "failure not recorded, database unavailable: %s",
                exc,
                extra={"message_id": message.id},
            )
        except Exception:
            log.exception("failure not recorded", extra={"message_id": message.id})
        return "dropped"

    # --- background threads ---------------------------------------------------------------

    def _listen(self) -> None:
        """Wake the claim loop on NOTIFY; reconnect with back-off if the connection drops."""
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self.database_url, autocommit=True, application_name="exports-poller-listen"
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    self._wake.set()  # anything queued while we were not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._wake.set()
            except psycopg.Error as exc:
                failures += 1
                self._pause_after_failure("listener lost its connection", failures, exc)

    def _pause_after_failure(self, what: str, failures: int, exc: Exception) -> None:
        """Back off 1, 2, 4 … 30 s after consecutive database failures (stop() cuts it short)."""
        pause = min(30.0, 0.5 * 2**failures)
        log.warning("%s; retrying in %.1fs", what, pause, extra={"error": str(exc)})
        self._stopping.wait(pause)

    def _heartbeat(self) -> None:
        """Every third of a lease, extend all in-flight leases at once (also while draining)."""
        while not self._drained.wait(self.lease_seconds / 3):
            self.extend_leases()

    def extend_leases(self) -> None:
        """One heartbeat: a single UPDATE for every message this poller holds."""
        with self._lock:
            # Work past its deadline gets no more time: if its thread is stuck, the lease
            # lapses and the attempt counts; if not, its next check fails it.
            leases = [lease for lease in self._in_flight.values() if not lease.overdue]
            leases += self._completions  # finished, completion pending: keep them ours
        if not leases:
            return
        try:
            with self.pool.connection() as conn:
                held = outbox.extend_leases(
                    conn, [lease.message for lease in leases], lease_seconds=self.lease_seconds
                )
        except Exception as exc:
            # Never let the heartbeat thread die: every lease would lapse. Try next beat.
            log.warning("heartbeat failed: %s", exc, exc_info=not isinstance(exc, psycopg.Error))
            return
        for lease in leases:
            if lease.message.id not in held and not lease.lost.is_set():
                lease.lost.set()
                metrics.LEASES_LOST.inc()
                log.warning("lease lost", extra={"message_id": lease.message.id})

    def _drain(self) -> None:
        deadline = self._stop_deadline or time.monotonic() + self._grace_seconds
        while self.in_flight and (remaining := deadline - time.monotonic()) > 0:
            self._wake.wait(remaining)  # set by every finished message
            self._wake.clear()
            self.flush_completions()
        with self._lock:
            leftover = list(self._in_flight.values())
        for lease in leftover:
            lease.lost.set()  # its thread stops at the next check; its writes are fenced
        # Finished work is completed, not handed back (it would run again).
        self.flush_completions(timeout=HAND_BACK_SECONDS)
        self._drained.set()
        if leftover:
            self.hand_back(leftover)
        # Queued leases left are lost (handed back): their threads skip them, then end.
        for _ in self._workers:
            self._queue.put(None)

    def hand_back(self, leases: list[Lease]) -> None:
        """Make unfinished messages visible to other pollers now (not a failed attempt).

        Bounded by HAND_BACK_SECONDS: if the database is away, the leases lapse instead.
        """
        try:
            with self.pool.connection(timeout=HAND_BACK_SECONDS) as conn:
                returned = jobs.hand_back(conn, [lease.message for lease in leases], self.name)
        except Exception as exc:
            log.warning("could not hand work back; its leases will lapse instead: %s", exc)
            return
        metrics.HANDED_BACK.inc(len(returned))
        log.info(
            "handed back unfinished work",
            extra={"message_ids": sorted(returned), "count": len(returned)},
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
