"""Health checks for load balancers and ECS."""

from __future__ import annotations

import psycopg
from flask.testing import FlaskClient

from app.platform.schema import head_revision


def test_healthz_answers_without_dependencies(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_checks_database_and_schema(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "schema": head_revision()}


def test_readyz_refuses_traffic_when_migrations_are_missing(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    db.execute("UPDATE public.alembic_version SET version_num = '0000'")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "exports-admin migrate" in response.get_json()["detail"]


def test_readyz_on_a_never_migrated_database_is_503(
    client: FlaskClient, db: psycopg.Connection
) -> None:
    db.execute("DROP TABLE public.alembic_version")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.get_json()["type"].endswith("/schema-out-of-date")


def test_the_root_points_to_the_docs(client: FlaskClient) -> None:
    # Issue 13: GET / was a bare JSON 404 for a new user following the README.
    index = client.get("/", headers={"Authorization": ""})

    assert index.status_code == 200
    links = index.get_json()
    assert links["docs"].endswith("/v1/docs") and links["openapi"].endswith("/v1/openapi.json")
    assert client.get(links["docs"]).status_code == 200
