"""Liveness and readiness for load balancers and ECS, and GET / pointing to the docs."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, url_for

from app.http.problems import Problem
from app.platform.schema import head_revision
from app.platform.services import current_services
from app.platform.version import package_version

bp = Blueprint("health", __name__)


@bp.get("/")
def index() -> Response:
    """Where to start: the API's docs page and OpenAPI document (no key needed)."""
    return jsonify(
        {
            "name": "exports",
            "version": package_version(),
            "docs": url_for("openapi.docs_page", _external=True),
            "openapi": url_for("openapi.openapi_json", _external=True),
        }
    )


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests (no dependencies checked)."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready for traffic: the database answers and its schema is at the code's migration."""
    services = current_services()
    expected = head_revision()
    found = None  # also when the database was never migrated at all
    with services.pool.connection(timeout=5) as conn:
        migrated = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()
        if migrated and migrated[0] is not None:
            row = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
            found = row[0] if row else None
    if found != expected:
        raise Problem(
            503,
            "schema-out-of-date",
            "Not ready",
            f"Database schema is at {found!r}, this code needs {expected!r}: "
            "run `exports-admin migrate`.",
            headers={"Retry-After": "30"},
        )
    return jsonify({"status": "ready", "schema": found})
