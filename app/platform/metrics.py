"""Prometheus metrics both processes serve: the queue as the database sees it.

Queue gauges are read from the outbox at scrape time (a few queries over the partial indexes,
cached QUEUE_CACHE_SECONDS per process), so every API worker and poller reports the same
truth: aggregate them with max, not sum. Each process defines its own series where they
are counted (app/http/observability.py for requests, poller/metrics.py for the poller's
work), so neither serves the other's at 0. Under gunicorn, counters use prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by exports-api).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from psycopg_pool import ConnectionPool

from app.platform.db import fetch_all, fetch_one

log = logging.getLogger(__name__)

# Scrapes (every API worker, every poller, several Prometheus servers) within this many
# seconds share one queue_metrics query.
QUEUE_CACHE_SECONDS = 5.0
# A schedule whose slot passed this long ago without firing counts as overdue (the
# product's "a task executing more than 10 s after its slot raises an alert").
OVERDUE_SECONDS = 10
# Per-tenant gauges name this many tenants (by backlog) by default; the rest are "other".
TOP_TENANTS = 10


class QueueCollector(Collector):
    """Gauges of the outbox (per topic, per top tenant) from cached queries, one cache per pool."""

    def __init__(
        self,
        pool: ConnectionPool,
        cache_seconds: float = QUEUE_CACHE_SECONDS,
        top_tenants: int = TOP_TENANTS,
    ) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self.top_tenants = top_tenants  # EXPORTS_METRICS_TOP_TENANTS
        self._lock = threading.Lock()
        self._rows: list[dict] = []
        self._tenants: list[dict] = []
        self._overdue = 0
        self._read_at = -math.inf

    def rows(self) -> list[dict]:
        """queue_metrics' rows, at most `cache_seconds` old (raises if the database is away)."""
        with self._lock:
            if time.monotonic() - self._read_at >= self.cache_seconds:
                with self.pool.connection(timeout=2) as conn:
                    self._rows = fetch_all(conn, "queue_metrics")
                    self._tenants = fetch_all(conn, "tenant_queue_metrics", top=self.top_tenants)
                    overdue = fetch_one(conn, "schedules_overdue", seconds=OVERDUE_SECONDS)
                    self._overdue = overdue["overdue"] if overdue else 0
                self._read_at = time.monotonic()
            return self._rows

    def overdue(self) -> int:
        """Enabled schedules more than OVERDUE_SECONDS past their slot (as of rows())."""
        return self._overdue

    def tenants(self) -> list[dict]:
        """The top tenants' backlogs and 'other' (as of rows())."""
        return self._tenants

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without querying (for registration)."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
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
            GaugeMetricFamily(
                "exports_schedules_overdue",
                f"Enabled schedules more than {OVERDUE_SECONDS} s past their slot, unfired.",
            ),
            GaugeMetricFamily(
                "exports_tenant_messages",
                f"Unfinished outbox messages of the top {self.top_tenants} tenants by backlog "
                "(tenant=\"other\": all the rest).",
                labels=["tenant", "state"],
            ),
            GaugeMetricFamily(
                "exports_tenant_oldest_ready_seconds",
                "Age of the tenant's oldest ready message (tenant=\"other\": all the rest).",
                labels=["tenant"],
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Messages by topic and state, the oldest ready message's age, dead messages;
        overdue schedules; the same per tenant for the top tenants."""
        waiting, lag, dead, overdue, per_tenant, tenant_lag = families = self._families()
        try:
            for row in self.rows():
                for state in ("ready", "running", "retry_wait"):
                    waiting.add_metric([row["topic"], state], row[state])
                lag.add_metric([row["topic"]], row["oldest_ready_seconds"])
                dead.add_metric([row["topic"]], row["dead"])
            overdue.add_metric([], self.overdue())
            for row in self.tenants():
                for state in ("ready", "running", "retry_wait"):
                    per_tenant.add_metric([row["tenant"], state], row[state])
                tenant_lag.add_metric([row["tenant"]], row["oldest_ready_seconds"])
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("queue metrics unavailable: %s", exc)
            return
        yield from families


def exposition(pool: ConnectionPool, top_tenants: int = TOP_TENANTS) -> bytes:
    """The text exposition for GET /metrics: process metrics plus the queue gauges."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # gunicorn: add up every worker's files
        workers = CollectorRegistry()
        MultiProcessCollector(workers)
        own = generate_latest(workers)
    else:
        own = generate_latest(REGISTRY)
    queue = CollectorRegistry()
    queue.register(queue_collector(pool, top_tenants))
    return own + generate_latest(queue)


_collectors: weakref.WeakKeyDictionary[ConnectionPool, QueueCollector] = (
    weakref.WeakKeyDictionary()
)


def queue_collector(pool: ConnectionPool, top_tenants: int = TOP_TENANTS) -> QueueCollector:
    """The one QueueCollector (and so the one cache) of `pool`."""
    with _collectors_lock:
        collector = _collectors.get(pool)
        if collector is None:
            collector = _collectors[pool] = QueueCollector(pool, top_tenants=top_tenants)
        return collector


_collectors_lock = threading.Lock()
