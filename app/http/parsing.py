"""Turning HTTP input into domain values, or a 4xx problem that says exactly what is wrong."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Request

from app.catalog import Catalog, ParamsInvalid
from app.http.problems import Problem, invalid
from app.jobs import STATES, ExportRequest

DEFAULT_FORMAT = "csv.gz"
MAX_OWNER_ID = 200
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_PAGE = 50
MAX_PAGE = 200

_REQUEST_FIELDS = {"owner_id", "kind", "params", "format", "notify"}
_LIST_ARGS = {"owner_id", "state", "limit", "cursor"}


def json_body(request: Request) -> Any:
    """The request's JSON document; 415 for another media type, 400 for malformed JSON."""
    if request.mimetype != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as application/json (got {request.mimetype or 'no Content-Type'}).",
        )
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise Problem(400, "malformed-json", "Malformed JSON", "The body is not UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
        ) from None
    except (ValueError, RecursionError):  # a 5,000-digit number, nesting 50,000 deep
        raise Problem(
            400,
            "malformed-json",
            "Malformed JSON",
            "The body is JSON we will not parse: "
            "numbers may have at most 4,300 digits and nesting must stay shallow.",
        ) from None


def export_request(body: Any, catalog: Catalog) -> ExportRequest:
    """Validate a POST /v1/exports body against the catalog; a 422 lists every bad field."""
    if not isinstance(body, dict):
        raise invalid({"": "the body must be a JSON object"})
    errors: dict[str, str] = {}
    for name in sorted(set(body) - _REQUEST_FIELDS):
        errors[name] = "is not a known field"

    owner_id = body.get("owner_id")
    if owner_id is None:
        errors["owner_id"] = "is required"
    elif problem := owner_id_problem(owner_id):
        errors["owner_id"] = problem

    kind = None
    kind_name = body.get("kind")
    if kind_name is None:
        errors["kind"] = "is required"
    elif not isinstance(kind_name, str):
        errors["kind"] = "must be a string"
    else:
        kind = catalog.get(kind_name)
        if kind is None:
            known = ", ".join(k.name for k in catalog)
            errors["kind"] = f"is not a known export kind (known: {known})"

    fmt = body.get("format", DEFAULT_FORMAT)
    if not isinstance(fmt, str):
        errors["format"] = "must be a string"
    elif kind is not None and fmt not in kind.formats:
        errors["format"] = f"must be one of {', '.join(kind.formats)}"

    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        errors["params"] = "must be an object"
    elif kind is not None:
        try:
            params = kind.validate_params(params)
        except ParamsInvalid as exc:
            errors.update(exc.errors)

    notify_email = _notify_email(body.get("notify"), errors)
    if errors:
        raise invalid(errors)
    return ExportRequest(
        owner_id=owner_id, kind=kind_name, params=params, format=fmt, notify_email=notify_email
    )


def owner_id_problem(owner_id: Any) -> str | None:
    """What is wrong with an owner id, or None if it is fine."""
    if not isinstance(owner_id, str) or not owner_id.strip():
        return "must be a non-empty string"
    if len(owner_id) > MAX_OWNER_ID:
        return f"must be at most {MAX_OWNER_ID} characters"
    return text_problem(owner_id)


def text_problem(text: str) -> str | None:
    """Text PostgreSQL cannot store: NUL characters or unpaired UTF-16 surrogates."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it contains an unpaired surrogate)"
    return None


def _notify_email(notify: Any, errors: dict[str, str]) -> str | None:
    if notify is None:
        return None
    if not isinstance(notify, dict):
        errors["notify"] = 'must be an object like {"email": "user@example.com"}'
        return None
    for name in sorted(set(notify) - {"email"}):
        errors[f"notify.{name}"] = "is not a known field"
    email = notify.get("email")
    if email is None:
        errors["notify.email"] = "is required when notify is given"
        return None
    if not isinstance(email, str):
        errors["notify.email"] = "must be a string"
        return None
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        errors["notify.email"] = f"is not a valid email address: {exc}"
        return None


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, if any; 400 if it is unusable."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise Problem(
            400,
            "invalid-header",
            "Invalid header",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters.",
        )
    return key


def list_arguments(args: Mapping[str, str]) -> dict[str, Any]:
    """Query arguments of GET /v1/exports: owner_id, state, limit, cursor."""
    errors: dict[str, str] = {}
    for name in sorted(set(args) - _LIST_ARGS):
        errors[name] = "is not a known query parameter"
    owner_id = args.get("owner_id") or None
    if owner_id is not None and (problem := text_problem(owner_id)):
        errors["owner_id"] = problem  # a filter only needs to be storable text
    state = args.get("state") or None
    if state is not None and state not in STATES:
        errors["state"] = f"must be one of {', '.join(STATES)}"
    limit = DEFAULT_PAGE
    if "limit" in args:
        try:
            limit = int(args["limit"])
        except ValueError:
            errors["limit"] = "must be a whole number"
        else:
            if not 1 <= limit <= MAX_PAGE:
                errors["limit"] = f"must be between 1 and {MAX_PAGE}"
    before = None
    if args.get("cursor"):
        try:
            before = decode_cursor(args["cursor"])
        except ValueError:
            errors["cursor"] = "is not a cursor this API returned"
    if errors:
        raise invalid(errors)
    return {"owner_id": owner_id, "state": state, "limit": limit, "before": before}


def encode_cursor(created_at: dt.datetime, job_id: uuid.UUID) -> str:
    """An opaque page cursor: the keyset position of the last job on the page."""
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """The keyset position in a cursor; ValueError if it was not made by encode_cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(job_id, str):
            raise TypeError("cursor fields must be strings")
        position = dt.datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    if position[0].tzinfo is None:
        raise ValueError("bad cursor")
    return position
