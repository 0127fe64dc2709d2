"""GET /metrics: the queue as the database sees it, request counts, poller outcomes.

Scraped over HTTP and parsed with prometheus_client's own parser, as Prometheus would.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.exports.demo import seed_demo_orders
from poller.core.dispatch import Poller
from tests.support.exports import all_settled, submit
from tests.support.waiting import wait_until

Samples = dict[tuple[str, frozenset], float]


def scrape(client: FlaskClient) -> Samples:
    """GET /metrics, parsed: {(sample name, labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent, as for a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_queue_gauges_show_waiting_work(client: FlaskClient, db: psycopg.Connection) -> None:
    submit(client)
    submit(client)
    db.execute("UPDATE exports.outbox SET visible_at = now() - interval '90 seconds'")

    samples = scrape(client)

    assert value(samples, "exports_outbox_messages", topic="export.run", state="ready") == 2
    assert value(samples, "exports_outbox_messages", topic="export.run", state="running") == 0
    assert value(samples, "exports_outbox_oldest_ready_seconds", topic="export.run") >= 90
    # Idle topics report 0 instead of vanishing (alerts and dashboards see a series).
    assert ("exports_outbox_oldest_ready_seconds", frozenset({("topic", "export.notify")})) in (
        samples
    )


def test_queue_gauges_come_from_a_short_cache(client: FlaskClient) -> None:
    first = scrape(client)
    submit(client)  # within the cache's few seconds: not seen yet

    second = scrape(client)

    ready = {"topic": "export.run", "state": "ready"}
    assert value(second, "exports_outbox_messages", **ready) == value(
        first, "exports_outbox_messages", **ready
    )


def test_requests_are_counted_and_timed_by_route_and_status(client: FlaskClient) -> None:
    route = {"method": "GET", "endpoint": "/v1/exports/<uuid:job_id>", "status": "404"}
    before = scrape(client)

    client.get("/v1/exports/6f1c3c2e-8d0a-4b8e-9d61-3f1d2f0a9b77")

    after = scrape(client)
    assert value(after, "exports_http_requests_total", **route) == (
        value(before, "exports_http_requests_total", **route) + 1
    )
    assert value(after, "exports_http_request_duration_seconds_count", **route) == (
        value(before, "exports_http_request_duration_seconds_count", **route) + 1
    )


def test_poller_counts_claims_outcomes_durations_and_exported_rows(
    client: FlaskClient, db: psycopg.Connection, start_poller: Callable[..., Poller]
) -> None:
    seed_demo_orders(db, 30)
    run = {"topic": "export.run"}
    before = scrape(client)
    submit(client)
    submit(client, kind="broken_orders")
    start_poller()

    wait_until(lambda: all_settled(db), what="both exports")

    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("exports_messages_claimed_total", **run) == 2
    assert moved("exports_messages_total", outcome="done", **run) == 1
    assert moved("exports_messages_total", outcome="dead", **run) == 1
    assert moved("exports_message_duration_seconds_count", **run) == 2
    assert moved("exports_exported_rows_total") == 10
    assert moved("exports_exported_bytes_total") > 0
    assert value(after, "exports_poller_in_flight") == 0
    # The queue gauges catch up once their cache (a few seconds) runs out.
    wait_until(
        lambda: value(scrape(client), "exports_outbox_dead_messages", **run) == 1,
        what="the dead message in the queue gauges",
        interval=0.5,
    )


def test_per_tenant_gauges_name_the_top_tenants_and_sum_the_rest_as_other(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    # 10,000 tenants with one ready message each, and three with a backlog.
    db.execute(
        "INSERT INTO exports.outbox (topic, tenant) SELECT 'export.run', 'tenant-' || i"
        " FROM generate_series(1, 10000) i"
    )
    for tenant, backlog in (("noisy", 50), ("busy", 40), ("keen", 30)):
        db.execute(
            "INSERT INTO exports.outbox (topic, tenant) SELECT 'export.run', %s"
            " FROM generate_series(1, %s)",
            (tenant, backlog),
        )
    db.commit()

    samples = scrape(client)

    tenants = {
        dict(labels)["tenant"]
        for name, labels in samples
        if name == "exports_tenant_messages"
    }
    assert len(tenants) == 11 and {"noisy", "busy", "keen", "other"} <= tenants  # top 10 + 1
    named = sum(
        value(samples, "exports_tenant_messages", tenant=t, state="ready")
        for t in tenants - {"other"}
    )
    other = value(samples, "exports_tenant_messages", tenant="other", state="ready")
    assert named == 50 + 40 + 30 + 7 and other == 10_000 - 7
    assert ("exports_tenant_oldest_ready_seconds", frozenset({("tenant", "noisy")})) in samples
