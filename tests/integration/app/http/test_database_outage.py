"""While the database is away the API says so (503 + Retry-After), and comes back by itself."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask

from app import create_app
from app.platform.settings import Settings


def closed_port() -> int:
    """A local port nothing listens on (bound and released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def app_without_database(settings: Settings) -> Iterator[Flask]:
    away = dataclasses.replace(
        settings,
        database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/exports",
        api_db_wait_seconds=0.5,
    )
    flask_app = create_app(away)  # starting must not need the database
    yield flask_app
    flask_app.extensions["exports"].close(timeout=1)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/exports/{uuid.uuid4()}"),
        ("GET", "/v1/exports?owner_id=user-1"),
        ("POST", "/v1/exports"),
        ("GET", "/readyz"),
    ],
)
def test_requests_get_503_with_retry_after(
    app_without_database: Flask, method: str, path: str
) -> None:
    body = {"owner_id": "user-1", "kind": "demo_orders"} if method == "POST" else None
    # A well-formed key: checking it needs the database, so the answer is a 503, not a 401.
    key = "exp_0123456789ab_" + "A" * 43

    response = app_without_database.test_client().open(
        path, method=method, json=body, headers={"Authorization": f"Bearer {key}"}
    )

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/database-unavailable")
    assert int(response.headers["Retry-After"]) > 0


def test_liveness_does_not_depend_on_the_database(app_without_database: Flask) -> None:
    assert app_without_database.test_client().get("/healthz").status_code == 200
