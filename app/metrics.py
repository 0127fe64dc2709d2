"""Prometheus metrics: the queue as the database sees it, HTTP requests, poller work.

Queue gauges are read from the outbox at scrape time, so every API worker reports the
same truth and no poller has to be scraped for "how far behind are we". Process-local
counters (requests, messages handled) use prometheus-client's multiprocess mode under
gunicorn (PROMETHEUS_MULTIPROC_DIR, set by exports-api).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from psycopg_pool import ConnectionPool

from app.db import fetch_all

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "exports_http_requests", "API requests answered.", ["method", "endpoint", "status"]
)
HTTP_SECONDS = Histogram(
    "exports_http_request_duration_seconds", "API request latency.", ["method", "endpoint"]
)
MESSAGES = Counter(
    "exports_messages",
    "Outbox messages a poller finished handling, by outcome "
    "(done, retry, dead, dropped: lease lost or cancelled).",
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


class QueueCollector(Collector):
    """Gauges of the outbox, queried when Prometheus scrapes."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Messages by topic and state, the oldest ready message's age, dead messages."""
        waiting = GaugeMetricFamily(
            "exports_outbox_messages", "Unfinished outbox messages.", labels=["topic", "state"]
        )
        lag = GaugeMetricFamily(
            "exports_outbox_oldest_ready_seconds",
            "Age of the oldest message ready to run but not claimed (queue lag).",
            labels=["topic"],
        )
        dead = GaugeMetricFamily(
            "exports_outbox_dead_messages", "Dead messages (given up).", labels=["topic"]
        )
        try:
            with self.pool.connection(timeout=2) as conn:
                for row in fetch_all(conn, "queue_gauges"):
                    waiting.add_metric([row["topic"], row["state"]], row["messages"])
                for row in fetch_all(conn, "queue_lag"):
                    lag.add_metric([row["topic"]], row["seconds"])
                for row in fetch_all(conn, "dead_messages"):
                    dead.add_metric([row["topic"]], row["messages"])
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
    queue.register(QueueCollector(pool))
    return own + generate_latest(queue)
