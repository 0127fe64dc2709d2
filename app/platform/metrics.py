"""Prometheus metrics: the queue as the database sees it, HTTP requests, poller work.

Queue gauges are read from the outbox at scrape time (one query over the partial indexes,
cached QUEUE_CACHE_SECONDS per process), so every API worker and poller reports the same
truth: aggregate them with max, not sum. Process-local
counters (requests, messages handled) use prometheus-client's multiprocess mode under
gunicorn (PROMETHEUS_MULTIPROC_DIR, set by exports-api).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from psycopg_pool import ConnectionPool

from app.platform.db import fetch_all

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "exports_http_requests", "API requests answered.", ["method", "endpoint", "status"]
)
HTTP_SECONDS = Histogram(
    "exports_http_request_duration_seconds",
    "API request latency.",
    ["method", "endpoint", "status"],
)
MESSAGES_CLAIMED = Counter(
    "exports_messages_claimed", "Outbox messages a poller claimed (leased).", ["topic"]
)
MESSAGES = Counter(
    "exports_messages",
    "Outbox messages a poller finished handling, by outcome "
    "(poller.core.handler.Outcome: done, retry, dead, dropped: not ours any more).",
    ["topic", "outcome"],
)
MESSAGE_SECONDS = Histogram(
    "exports_message_duration_seconds",
    "Time a poller spent on one message.",
    ["topic"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
)
EXPORTED_ROWS = Counter("exports_exported_rows", "Rows written to finished export files.")
EXPORTED_BYTES = Counter("exports_exported_bytes", "Bytes stored for finished export files.")
IN_FLIGHT = Gauge(
    "exports_poller_in_flight", "Messages a poller is working on.", multiprocess_mode="livesum"
)
LEASES_LOST = Counter("exports_leases_lost", "Leases a poller found taken from it.")
HANDED_BACK = Counter("exports_handed_back", "Messages handed back at shutdown.")
MAINTENANCE_RUNS = Counter(
    "exports_maintenance_runs",
    "Poller maintenance runs, by outcome (done; skipped: another poller held the lock; failed).",
    ["outcome"],
)
OUTBOX_PRUNED = Counter("exports_outbox_pruned", "Finished outbox rows deleted by maintenance.")
JOBS_EXPIRED = Counter(
    "exports_jobs_expired", "Jobs expired by maintenance (file deleted, links answer 410)."
)
EXPIRY_FAILURES = Counter(
    "exports_expiry_failures", "Expired jobs whose file could not be deleted (retried next run)."
)
SCHEDULE_SLOTS_SKIPPED = Counter(
    "exports_schedule_slots_skipped",
    "Schedule slots that queued no job, by reason (owner_quota: the owner was at "
    "EXPORTS_MAX_ACTIVE_PER_OWNER).",
    ["reason"],
)
STALE_WORKERS_REMOVED = Counter(
    "exports_stale_workers_removed", "exports.workers rows removed after their heartbeats stopped."
)


# Scrapes (every API worker, every poller, several Prometheus servers) within this many
# seconds share one queue_metrics query.
QUEUE_CACHE_SECONDS = 5.0


class QueueCollector(Collector):
    """Gauges of the outbox from one cached query (queue_metrics) per pool."""

    def __init__(self, pool: ConnectionPool, cache_seconds: float = QUEUE_CACHE_SECONDS) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._rows: list[dict] = []
        self._read_at = -math.inf

    def rows(self) -> list[dict]:
        """queue_metrics' rows, at most `cache_seconds` old (raises if the database is away)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                with self.pool.connection(timeout=2) as conn:
                    self._rows = fetch_all(conn, "queue_metrics")
                self._read_at = time.monotonic()
            return self._rows

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without querying (for registration)."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "exports_outbox_messages", "Unfinished outbox messages.", labels=["topic", "state"]
            ),
            GaugeMetricFamily(
                "exports_outbox_oldest_ready_seconds",
                "Age of the oldest message ready to run but not claimed (queue lag).",
                labels=["topic"],
            ),
            GaugeMetricFamily(
                "exports_outbox_dead_messages", "Dead messages (given up).", labels=["topic"]
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Messages by topic and state, the oldest ready message's age, dead messages."""
        waiting, lag, dead = self._families()
        try:
            for row in self.rows():
                for state in ("ready", "running", "retry_wait"):
                    waiting.add_metric([row["topic"], state], row[state])
                lag.add_metric([row["topic"]], row["oldest_ready_seconds"])
                dead.add_metric([row["topic"]], row["dead"])
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("queue metrics unavailable: %s", exc)
            return
        yield from (waiting, lag, dead)


def exposition(pool: ConnectionPool) -> bytes:
    """The text exposition for GET /metrics: process metrics plus the queue gauges."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # gunicorn: add up every worker's files
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        own = generate_latest(workers)
    else:
        own = generate_latest(REGISTRY)
    queue = CollectorRegistry()
    queue.register(queue_collector(pool))
    return own + generate_latest(queue)


_collectors: weakref.WeakKeyDictionary[ConnectionPool, QueueCollector] = (
    weakref.WeakKeyDictionary()
)


def queue_collector(pool: ConnectionPool) -> QueueCollector:
    """The one QueueCollector (and so the one cache) of `pool`."""
    with _collectors_lock:
        collector = _collectors.get(pool)
        if collector is None:
            collector = _collectors[pool] = QueueCollector(pool)
        return collector


_collectors_lock = threading.Lock()
