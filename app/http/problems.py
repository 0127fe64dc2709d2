"""Errors as RFC 9457 problem documents (application/problem+json), never a traceback."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException

from app.platform.db import RowKeptVanishing

if TYPE_CHECKING:
    from app.exports.jobs import QuotaExceeded

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://exports.invalid/problems/"  # stable identifiers, not fetched
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An HTTP error with a stable type slug, a human detail and optional per-field errors."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors or {}
        self.headers = headers or {}
        self.extra = extra

    def to_response(self) -> Response:
        """The problem as a Flask response."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }
        if self.errors:  # keyed by JSON Pointer into the body (or the query argument)
            body["errors"] = [
                {"pointer": pointer, "detail": detail} for pointer, detail in self.errors.items()
            ]
        response = Response(json.dumps(body), status=self.status, mimetype=MEDIA_TYPE)
        response.headers.update(self.headers)
        return response


def invalid(errors: dict[str, str]) -> Problem:
    """422 for a well-formed request whose fields are wrong: {JSON Pointer: what is wrong}."""
    assert all(p == "" or p.startswith("/") for p in errors), "errors are keyed by JSON Pointer"
    count = len(errors)
    return Problem(
        422,
        "validation",
        "Invalid request",
        f"{count} field{'s' if count > 1 else ''} of the request "
        f"{'are' if count > 1 else 'is'} invalid: "
        + "; ".join(f"{k.lstrip('/') or 'the body'} {v}" for k, v in errors.items()),
        errors=errors,
    )


# A slot frees when an export ends, typically within seconds to minutes.
QUOTA_RETRY_AFTER_SECONDS = 30


def quota_exceeded(exc: QuotaExceeded, owner_id: str) -> Problem:
    """429: the owner is at EXPORTS_MAX_ACTIVE_PER_OWNER (a jobs.QuotaExceeded)."""
    return Problem(
        429,
        "too-many-exports",
        "Too many exports",
        f"Owner {owner_id!r} already has {exc.active} exports queued or running (the limit is "
        f"{exc.limit}); retry when one has finished.",
        headers={"Retry-After": str(QUOTA_RETRY_AFTER_SECONDS)},
        limit=exc.limit,
    )


def idempotency_conflict(resource: str, first_id: object) -> Problem:
    """409: the Idempotency-Key was used before with another body; names the first one."""
    return Problem(
        409,
        "idempotency-conflict",
        "Idempotency key reused",
        "This Idempotency-Key was already used with a different request body "
        f"({resource} {first_id}); use a new key for a new {resource}.",
        **{f"{resource}_id": str(first_id)},
    )


def not_found(detail: str) -> Problem:
    """404 for an unknown resource (including another tenant's)."""
    return Problem(404, "not-found", "Not found", detail)


def _retry_later(slug: str, detail: str, *, seconds: int) -> Response:
    """503 with Retry-After: our trouble, which passes."""
    return Problem(
        503, slug, "Service unavailable", detail, headers={"Retry-After": str(seconds)}
    ).to_response()


def register_problem_handlers(app: Flask) -> None:
    """Turn every error, ours or Flask's, into a problem document."""

    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem.to_response()

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        slug = {
            404: "not-found",
            405: "method-not-allowed",
            413: "payload-too-large",
            415: "unsupported-media-type",
        }.get(exc.code or 500, "http-error")
        detail = exc.description or exc.name
        if exc.code == 413:  # a Content-Length over the limit: parsing.read_body's limit
            limit = g.get("body_limit", app.config["EXPORTS_MAX_BODY_BYTES"])
            detail = f"The request body is larger than the limit of {limit} bytes."
        headers = dict(exc.get_headers()) if exc.code == 405 else {}
        headers.pop("Content-Type", None)
        return Problem(exc.code or 500, slug, exc.name, detail, headers=headers).to_response()

    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(psycopg_pool.PoolTimeout)
    def _database_unavailable(exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        return _retry_later(
            "database-unavailable",
            "The database cannot be reached right now; retry shortly.",
            seconds=5,
        )

    @app.errorhandler(RowKeptVanishing)
    def _lost_race(exc: RowKeptVanishing) -> Response:
        log.warning("idempotent insert kept losing to deletes: %s", exc)
        return _retry_later(
            "busy",
            "The resource this Idempotency-Key names is being deleted and created "
            "concurrently; retry shortly.",
            seconds=1,
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")  # Sentry's logging integration picks this up
        return Problem(
            500, "internal", "Internal error", "Something went wrong on our side."
        ).to_response()
