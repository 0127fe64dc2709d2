"""Defects that live in the production HTTP stack (gunicorn + werkzeug), tested through it.

A red-team pass (issue 12) found both: request-chosen metric labels that grew /metrics
without bound, and chunked bodies over the limit cut off instead of refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import requests
from prometheus_client.parser import text_string_to_metric_families

from app.platform.settings import Settings
from tests.conftest import api_key
from tests.support.api_server import ApiServer

EXPORT = {"owner_id": "user-1", "kind": "demo_orders", "params": {}, "format": "csv"}


def http_series(server: ApiServer) -> set[tuple[str, frozenset]]:
    """Every exports_http_* series /metrics shows: (sample name, labels)."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(text)
        if family.name.startswith("exports_http_")
        for sample in family.samples
    }


def test_request_chosen_methods_and_paths_add_no_metric_series(api_server: ApiServer) -> None:
    def attack(start: int) -> None:
        for i in range(start, start + 40):
            # gunicorn accepts any method token; werkzeug answers 405 or 404.
            requests.request(f"RT{i}X", f"{api_server.url}/healthz", timeout=5)
            requests.get(f"{api_server.url}/no-such-path-{i}", timeout=5)

    attack(0)
    http_series(api_server)  # the scrape itself is a series too
    before = http_series(api_server)
    attack(40)
    after = http_series(api_server)

    assert after == before  # the same label sets, however many new tokens and paths
    labels = [dict(series) for _, series in after]
    methods = {label["method"] for label in labels if "method" in label}
    endpoints = {label["endpoint"] for label in labels if "endpoint" in label}
    assert methods <= {"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    assert not any(e.startswith("/no-such-path") for e in endpoints)
    assert "unmatched" in endpoints


def chunked(document: bytes, padding: int) -> Iterator[bytes]:
    """`document` then `padding` spaces, sent with Transfer-Encoding: chunked (no length)."""
    yield document
    for start in range(0, padding, 64 * 1024):
        yield b" " * min(64 * 1024, padding - start)


def post_chunked(server: ApiServer, path: str, body: Iterator[bytes], **headers: str) -> dict:
    response = requests.post(
        f"{server.url}{path}",
        data=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )
    return {"status": response.status_code, "problem": response.json()}


def test_chunked_bodies_over_the_limit_are_refused(
    api_server: ApiServer, settings: Settings
) -> None:
    key = api_key(settings.database_url, "chunked", "default")
    auth = {"Authorization": f"Bearer {key}"}
    document = json.dumps(EXPORT).encode()

    for padding in (3 * 1024 * 1024, 2560 * 1024, 64 * 1024):  # was 202, 400, 400
        answer = post_chunked(api_server, "/v1/exports", chunked(document, padding), **auth)
        assert answer["status"] == 413, (padding, answer)
        assert answer["problem"]["type"].endswith("/payload-too-large")
        assert str(64 * 1024) in answer["problem"]["detail"]
    # SNS bodies have their own, larger limit; past it the same (was cut at 272 KiB: 400).
    answer = post_chunked(api_server, "/v1/ses-events", chunked(b"{}", 300 * 1024))
    assert answer["status"] == 413

    within = post_chunked(api_server, "/v1/exports", chunked(document, 1000), **auth)
    assert within["status"] == 202, within


def test_the_api_serves_its_own_series_and_the_queue_not_the_pollers(
    api_server: ApiServer,
) -> None:
    # Issue 13: the API's /metrics served every poller series at 0 (one module defined all).
    requests.get(f"{api_server.url}/healthz", timeout=5)
    text = requests.get(f"{api_server.url}/metrics", timeout=10).text
    families = {family.name for family in text_string_to_metric_families(text)}

    assert {"exports_http_requests", "exports_http_request_duration_seconds"} <= families
    assert {"exports_outbox_messages", "exports_outbox_oldest_ready_seconds"} <= families
    poller_only = {
        "exports_messages",
        "exports_messages_claimed",
        "exports_poller_in_flight",
        "exports_leases_lost",
        "exports_maintenance_runs",
        "exports_schedule_slots_skipped",
    }
    assert families.isdisjoint(poller_only), families & poller_only
