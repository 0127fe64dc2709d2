"""Bearer API keys on /v1 and tenant isolation: no key, a bad key or a revoked key is a 401;
another tenant's jobs and schedules are 404 on every endpoint and missing from every list."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from app import create_app
from app.http.auth import KEY_CACHE, PUBLIC_BLUEPRINTS
from app.platform.settings import Settings
from app.tenancy import clients
from tests.conftest import api_key
from tests.support.exports import job_row, submit
from tests.support.waiting import wait_until

SCHEDULE = {"owner_id": "user-1", "kind": "demo_orders", "cron": "0 6 * * *", "timezone": "UTC"}


def anonymous(app: Flask) -> FlaskClient:
    """A client that sends no Authorization header."""
    client = app.test_client()
    client.environ_base.pop("HTTP_AUTHORIZATION", None)
    return client


def protected_routes(app: Flask) -> list[tuple[str, str, Rule]]:
    """(method, url, rule) for every /v1 route that must need a key; ids are made up."""
    routes = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if not rule.rule.startswith("/v1/") or blueprint in PUBLIC_BLUEPRINTS:
            continue
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<uuid:{name}>", str(uuid.uuid4())).replace(f"<int:{name}>", "42")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append((method, url, rule))
    return routes


def assert_unauthorized(response: Any, *, invalid_token: bool) -> None:
    assert response.status_code == 401, response.data
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is invalid_token


def test_every_v1_route_needs_a_key(app: Flask, db: psycopg.Connection) -> None:
    client = anonymous(app)
    routes = protected_routes(app)
    assert {"/v1/exports", "/v1/exports/<uuid:job_id>", "/v1/export-kinds"} <= {
        rule.rule for _, _, rule in routes
    }

    for method, url, _ in routes:
        response = client.open(url, method=method, json={"owner_id": "user-1"})
        assert_unauthorized(response, invalid_token=False)
    assert db.execute("SELECT count(*) AS n FROM exports.jobs").fetchone()["n"] == 0


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "bearer",
    ],
)
def test_a_missing_key_is_401(app: Flask, authorization: str) -> None:
    response = anonymous(app).get("/v1/exports", headers={"Authorization": authorization})

    assert_unauthorized(response, invalid_token=False)


@pytest.mark.parametrize(
    "key",
    [
        "not-a-key",
        "exp_0123456789ab_" + "A" * 43,  # well-formed, never issued
        "exp_" + "z" * 200,
        "exp_0123456789ab_" + "A" * 43 + "\u00e9",
    ],
)
def test_an_unknown_key_is_401(app: Flask, key: str) -> None:
    response = anonymous(app).get("/v1/exports", headers={"Authorization": f"Bearer {key}"})

    assert_unauthorized(response, invalid_token=True)


def test_a_key_with_a_changed_secret_is_401(app: Flask) -> None:
    key = app.config["TEST_API_KEY"]
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")  # the same prefix, another secret

    response = anonymous(app).get("/v1/exports", headers={"Authorization": f"Bearer {forged}"})

    assert_unauthorized(response, invalid_token=True)


def test_the_scheme_is_case_insensitive(app: Flask) -> None:
    key = app.config["TEST_API_KEY"]

    response = anonymous(app).get("/v1/exports", headers={"Authorization": f"bearer {key}"})

    assert response.status_code == 200


def test_a_revoked_key_is_401_from_then_on(
    app: Flask, client: FlaskClient, db: psycopg.Connection
) -> None:
    assert client.get("/v1/exports").status_code == 200
    prefix = app.config["TEST_API_KEY"].split("_")[1]

    clients.revoke(db, prefix)

    assert_unauthorized(client.get("/v1/exports"), invalid_token=True)
    assert_unauthorized(client.post("/v1/exports", json={}), invalid_token=True)


def test_a_revoked_key_is_refused_at_once_by_a_worker_that_cached_it(
    settings: Settings, db: psycopg.Connection
) -> None:
    # Issue 12: revocation waited out EXPORTS_API_KEY_CACHE_SECONDS; now the revoke's
    # NOTIFY clears every worker's cache. A 60 s cache makes any wait for expiry obvious.
    cached = create_app(dataclasses.replace(settings, api_key_cache_seconds=60))
    try:
        key = api_key(settings.database_url, "cached", "default")
        client = anonymous(cached)
        bearer = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/exports", headers=bearer).status_code == 200
        assert cached.extensions[KEY_CACHE].get(key) is not None  # trusted without a query

        clients.revoke(db, key.split("_")[1])

        wait_until(
            lambda: client.get("/v1/exports", headers=bearer).status_code == 401,
            timeout=5,
            what="the revoked key refused (the cache holds it for 60 s)",
        )
    finally:
        cached.extensions["exports"].close()


def test_without_the_listener_a_verified_key_is_trusted_for_the_cache_window(
    app: Flask, client: FlaskClient, db: psycopg.Connection
) -> None:
    # The tests' settings switch the cache (and so the listener) off; this turns the cache
    # alone on: what a worker does while its listening connection is down.
    app.extensions[KEY_CACHE].seconds = 60
    assert client.get("/v1/exports").status_code == 200
    prefix = app.config["TEST_API_KEY"].split("_")[1]

    clients.revoke(db, prefix)

    # The documented window: this worker verified the key and does not ask again yet.
    assert client.get("/v1/exports").status_code == 200
    # A key it has not verified is looked up, and wrong keys are never cached.
    unknown = {"Authorization": "Bearer exp_0123456789ab_" + "x" * 43}
    assert_unauthorized(client.get("/v1/exports", headers=unknown), invalid_token=True)


def test_a_revoked_key_is_401_once_the_cache_window_is_over(
    app: Flask, client: FlaskClient, db: psycopg.Connection
) -> None:
    app.extensions[KEY_CACHE].seconds = 0.3
    assert client.get("/v1/exports").status_code == 200
    prefix = app.config["TEST_API_KEY"].split("_")[1]

    clients.revoke(db, prefix)

    wait_until(
        lambda: client.get("/v1/exports").status_code == 401,
        timeout=5,
        what="the revoked key refused after the cache window",
    )


def test_public_endpoints_need_no_key(app: Flask) -> None:
    client = anonymous(app)

    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)  # depends on nothing of ours
    assert client.get("/metrics").status_code == 200
    assert client.get("/v1/openapi.json").status_code == 200
    assert client.get("/d/not-a-token").status_code == 404  # the link's own check, not a 401


def test_a_key_acts_for_its_tenant(
    client: FlaskClient, other_tenant_client: FlaskClient, db: psycopg.Connection
) -> None:
    mine = submit(client)
    theirs = submit(other_tenant_client)

    assert job_row(db, mine["id"])["tenant"] == "default"
    assert job_row(db, theirs["id"])["tenant"] == "other"


# --- tenant isolation --------------------------------------------------------------------


@pytest.fixture
def resources(client: FlaskClient) -> dict[str, str]:
    """One export, schedule, webhook endpoint and delivery of tenant "default":
    {URL argument name: id}."""
    job = submit(client, owner_id="user-1")
    schedule = client.post("/v1/schedules", json=SCHEDULE)
    assert schedule.status_code == 201, schedule.get_json()
    endpoint = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"})
    assert endpoint.status_code == 201, endpoint.get_json()
    endpoint_id = endpoint.get_json()["id"]
    delivery = client.post(f"/v1/webhook-endpoints/{endpoint_id}/test").get_json()
    return {
        "job_id": job["id"],
        "schedule_id": schedule.get_json()["id"],
        "endpoint_id": endpoint_id,
        "delivery_id": str(delivery["id"]),
    }


def test_another_tenants_resources_are_404_on_every_route(
    app: Flask,
    client: FlaskClient,
    other_tenant_client: FlaskClient,
    resources: dict[str, str],
    db: psycopg.Connection,
) -> None:
    checked = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if not rule.rule.startswith("/v1/") or blueprint in PUBLIC_BLUEPRINTS:
            continue
        if not rule.arguments:
            continue  # collections: see the list tests below
        url = rule.rule
        for name in rule.arguments:
            url = url.replace(f"<uuid:{name}>", resources[name])
            url = url.replace(f"<int:{name}>", resources[name])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            body = {"enabled": False} if method in ("PATCH", "PUT") else None
            response = other_tenant_client.open(url, method=method, json=body)
            assert response.status_code == 404, (method, url, response.get_json())
            assert response.get_json()["type"].endswith("/not-found")
            checked.append(f"{method} {rule.rule}")

    assert "GET /v1/exports/<uuid:job_id>" in checked
    assert "POST /v1/exports/<uuid:job_id>/cancel" in checked
    assert "GET /v1/schedules/<uuid:schedule_id>" in checked
    assert "POST /v1/webhook-endpoints/<uuid:endpoint_id>/rotate-secret" in checked
    assert "POST /v1/webhook-deliveries/<int:delivery_id>/retry" in checked
    endpoint = client.get(f"/v1/webhook-endpoints/{resources['endpoint_id']}").get_json()
    assert endpoint["enabled"] is True
    # Nothing the other tenant tried changed anything.
    assert job_row(db, resources["job_id"])["state"] == "queued"
    schedule = client.get(f"/v1/schedules/{resources['schedule_id']}")
    assert schedule.status_code == 200
    assert schedule.get_json()["enabled"] is True


def test_a_foreign_id_looks_like_an_unknown_one(
    other_tenant_client: FlaskClient, resources: dict[str, str]
) -> None:
    foreign = other_tenant_client.get(f"/v1/exports/{resources['job_id']}").get_json()
    unknown = other_tenant_client.get(f"/v1/exports/{uuid.uuid4()}").get_json()

    assert {k: v for k, v in foreign.items() if k != "detail"} == {
        k: v for k, v in unknown.items() if k != "detail"
    }


@pytest.mark.parametrize(
    "path",
    [
        "/v1/exports",
        "/v1/exports?owner_id=user-1",
        "/v1/exports?state=queued",
        "/v1/schedules",
        "/v1/schedules?owner_id=user-1",
    ],
)
def test_lists_show_only_the_tenants_own(
    client: FlaskClient,
    other_tenant_client: FlaskClient,
    resources: dict[str, str],
    path: str,
) -> None:
    theirs = other_tenant_client.get(path)
    mine = client.get(path)

    assert theirs.status_code == mine.status_code == 200
    assert theirs.get_json()["items"] == []
    assert {item["id"] for item in mine.get_json()["items"]} & set(resources.values())


def test_idempotency_keys_do_not_cross_tenants(
    client: FlaskClient, other_tenant_client: FlaskClient
) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    body = {"owner_id": "user-1", "kind": "demo_orders"}
    mine = client.post("/v1/exports", json=body, headers=headers)
    theirs = other_tenant_client.post(
        "/v1/exports", json={**body, "format": "csv"}, headers=headers
    )

    assert mine.status_code == theirs.status_code == 202  # no 409 naming our job
    assert theirs.get_json()["id"] != mine.get_json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", "/v1/openapi.json", 405),
        ("DELETE", f"/v1/exports/{uuid.uuid4()}", 405),
        ("GET", "/v1/nothing-here", 404),
    ],
)
def test_no_route_is_a_404_or_405_even_without_a_key(
    app: Flask, method: str, path: str, status: int
) -> None:
    response = anonymous(app).open(path, method=method)

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_a_tenant_that_cannot_name_a_storage_folder_queues_nothing(
    app: Flask, db: psycopg.Connection
) -> None:
    # A key made before tenants were checked (issue 12): refused before anything is queued,
    # not failed after every retry of every export.
    key = "exp_0123456789ab_" + "k" * 43
    # As before migration 0008, whose CHECK keeps such tenants out of new rows.
    db.execute("ALTER TABLE exports.api_clients DROP CONSTRAINT api_clients_tenant_check")
    db.execute(
        "INSERT INTO exports.api_clients (name, tenant, key_prefix, key_hash)"
        " VALUES ('legacy', '..', '0123456789ab', %s)",
        [clients.hash_key(key)],
    )
    client = anonymous(app)
    bearer = {"Authorization": f"Bearer {key}"}

    export = client.post(
        "/v1/exports", json={"owner_id": "u", "kind": "demo_orders"}, headers=bearer
    )
    schedule = client.post(
        "/v1/schedules",
        json={"owner_id": "u", "kind": "demo_orders", "cron": "0 8 * * *", "timezone": "UTC"},
        headers=bearer,
    )

    for response in (export, schedule):
        assert response.status_code == 403
        assert response.get_json()["type"].endswith("/tenant-unusable")
    assert db.execute("SELECT count(*) AS n FROM exports.jobs").fetchone()["n"] == 0
    assert client.get("/v1/exports", headers=bearer).status_code == 200  # reading still works
