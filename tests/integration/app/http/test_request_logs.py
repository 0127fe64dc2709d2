"""Request ids: taken from X-Request-Id when sane, echoed back, on every log line."""

from __future__ import annotations

import json

from flask.testing import FlaskClient


def test_the_callers_request_id_is_echoed_and_logged(client: FlaskClient, log_lines) -> None:
    response = client.get(
        "/v1/exports/6f1c3c2e-8d0a-4b8e-9d61-3f1d2f0a9b77", headers={"X-Request-Id": "req-42"}
    )

    assert response.headers["X-Request-Id"] == "req-42"
    (line,) = [x for x in log_lines() if x["logger"] == "exports.api"]
    assert line["request_id"] == "req-42"
    assert line["message"] == "GET /v1/exports/<uuid:job_id> 404"
    assert line["status"] == 404 and line["duration_ms"] >= 0


def test_a_bad_request_id_is_replaced(client: FlaskClient, log_lines) -> None:
    response = client.get("/v1/export-kinds", headers={"X-Request-Id": "x" * 201})

    request_id = response.headers["X-Request-Id"]
    assert len(request_id) == 32 and request_id != "x" * 201
    assert [x["request_id"] for x in log_lines() if x["logger"] == "exports.api"] == [request_id]


def test_each_request_gets_its_own_id(client: FlaskClient) -> None:
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]
    assert first != second


def test_download_links_are_logged_without_their_token(client: FlaskClient, log_lines) -> None:
    client.get("/d/not.a-real.token-value")

    everything = json.dumps(log_lines())
    assert "not.a-real.token-value" not in everything
