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
from app.http import schemas
from app.http.problems import Problem, invalid
from app.http.schemas import (  # the limits live with the schemas that state them
    DEFAULT_FORMAT,
    DEFAULT_PAGE,
    MAX_IDEMPOTENCY_KEY,
    MAX_OWNER_ID,
    MAX_PAGE,
)
from app.jobs import ExportRequest

__all__ = ["DEFAULT_FORMAT", "DEFAULT_PAGE", "MAX_IDEMPOTENCY_KEY", "MAX_OWNER_ID", "MAX_PAGE"]

# Stored params (UTF-8 JSON, after the kind's defaults are filled in) may not exceed this:
# they are kept in every job row and bound into the export query. The shipped kinds' params
# stay far below it (one 1,000-character string param is at most 4,000 bytes).
MAX_PARAMS_BYTES = 16 * 1024


def params_size(params: Mapping[str, Any]) -> int:
    """Bytes of `params` as the UTF-8 JSON stored in exports.jobs.params."""
    text = json.dumps(params, ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))


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
    """Validate a POST /v1/exports body against its kind's schema; a 422 lists every bad field.

    Like the document's discriminator: a body whose `kind` names a kind is checked against
    that kind's schema, any other body against the envelope (which says what kinds exist).
    Then, where the schema found nothing wrong, the checks JSON Schema cannot express.
    """
    components = schemas.component_schemas(catalog)
    kind_name = body.get("kind") if isinstance(body, dict) else None
    kind = catalog.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        errors = schemas.validate(
            schemas.export_request_envelope(catalog), body, components=components
        )
    else:
        errors = schemas.validate(
            schemas.ref(schemas.kind_schema_name(kind)), body, components=components
        )
    if not isinstance(body, dict):
        raise invalid(errors)

    def clean(pointer: str) -> bool:  # nothing under `pointer` was refused yet
        return not any(p == pointer or p.startswith(pointer + "/") for p in errors)

    owner_id = body.get("owner_id")
    if clean("/owner_id") and (problem := text_problem(owner_id)):
        errors["/owner_id"] = problem
    params = body.get("params") or {}
    if kind is not None and clean("/params"):
        try:
            params = kind.validate_params(params)
        except ParamsInvalid as exc:
            errors.update({"/" + k.replace(".", "/"): v for k, v in exc.errors.items()})
        else:
            if (size := params_size(params)) > MAX_PARAMS_BYTES:
                errors["/params"] = f"must be at most {MAX_PARAMS_BYTES} bytes as JSON ({size})"
    notify_email = None
    if body.get("notify") is not None and clean("/notify"):
        try:
            notify_email = validate_email(
                body["notify"]["email"], check_deliverability=False
            ).normalized
        except EmailNotValidError as exc:
            errors["/notify/email"] = f"is not a valid email address: {exc}"
    if errors:
        raise invalid(errors)
    return ExportRequest(
        owner_id=owner_id,
        kind=kind_name,
        params=params,
        format=body.get("format", DEFAULT_FORMAT),
        notify_email=notify_email,
    )


def owner_id_problem(owner_id: Any) -> str | None:
    """What is wrong with an owner id (schemas.OWNER_ID, then text_problem), or None."""
    errors = schemas.validate(schemas.OWNER_ID, owner_id)
    return next(iter(errors.values()), None) or text_problem(owner_id)


def text_problem(text: str) -> str | None:
    """Text PostgreSQL cannot store: NUL characters or unpaired UTF-16 surrogates."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it contains an unpaired surrogate)"
    return None


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header, if any; 400 if it breaks schemas.IDEMPOTENCY_KEY."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if schemas.validate(schemas.IDEMPOTENCY_KEY, key):
        raise Problem(
            400,
            "invalid-header",
            "Invalid header",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters.",
        )
    return key


def list_arguments(args: Mapping[str, str]) -> dict[str, Any]:
    """Query arguments of GET /v1/exports (schemas.LIST_EXPORTS_QUERY), cursor decoded."""
    query = schemas.query_instance(schemas.LIST_EXPORTS_QUERY, args)
    errors = schemas.validate(schemas.LIST_EXPORTS_QUERY, query)
    owner_id = query.get("owner_id") or None
    if owner_id is not None and "/owner_id" not in errors and (problem := text_problem(owner_id)):
        errors["/owner_id"] = problem  # a filter only needs to be storable text
    before = None
    if query.get("cursor") and "/cursor" not in errors:
        try:
            before = decode_cursor(query["cursor"])
        except ValueError:
            errors["/cursor"] = "is not a cursor this API returned"
    if errors:
        raise invalid(errors)
    return {
        "owner_id": owner_id,
        "state": query.get("state") or None,
        "limit": query.get("limit", DEFAULT_PAGE),
        "before": before,
    }


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
