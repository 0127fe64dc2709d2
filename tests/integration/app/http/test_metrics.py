"""GET /metrics: the queue as the database sees it, request counts, poller outcomes."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from app.demo import seed_demo_orders
from poller.worker import Poller
from tests.support.exports import all_settled, submit
from tests.support.waiting import wait_until


def sample(name: str, **labels: str) -> float:
    """A metric's current value in this process (0 if never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_queue_gauges_show_waiting_work(client: FlaskClient, db: psycopg.Connection) -> None:
    submit(client)
    submit(client)
    db.execute("UPDATE exports.outbox SET visible_at = now() - interval '90 seconds'")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'exports_outbox_messages{state="ready",topic="export.run"} 2.0' in text
    lag = next(line for line in text.splitlines() if line.startswith("exports_outbox_oldest"))
    assert float(lag.split()[-1]) >= 90


def test_requests_are_counted_by_route(client: FlaskClient) -> None:
    before = sample(
        "exports_http_requests_total", method="GET", endpoint="/v1/exports/<uuid:job_id>",
        status="404",
    )
    client.get("/v1/exports/6f1c3c2e-8d0a-4b8e-9d61-3f1d2f0a9b77")

    after = sample(
        "exports_http_requests_total", method="GET", endpoint="/v1/exports/<uuid:job_id>",
        status="404",
    )
    assert after == before + 1


def test_poller_counts_outcomes_and_exported_rows(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 30)
    done_before = sample("exports_messages_total", topic="export.run", outcome="done")
    dead_before = sample("exports_messages_total", topic="export.run", outcome="dead")
    rows_before = sample("exports_exported_rows_total")
    submit(client)
    submit(client, kind="broken_orders")
    start_poller()

    wait_until(lambda: all_settled(db), what="both exports")

    assert sample("exports_messages_total", topic="export.run", outcome="done") == done_before + 1
    assert sample("exports_messages_total", topic="export.run", outcome="dead") == dead_before + 1
    assert sample("exports_exported_rows_total") == rows_before + 10
