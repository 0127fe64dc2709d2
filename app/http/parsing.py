"""Turning HTTP input into domain values, or a 4xx problem that says exactly what is wrong."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Request, current_app, g

from app.exports.catalog import Catalog, ParamsInvalid
from app.exports.jobs import ExportRequest
from app.http import schemas
from app.http.problems import Problem, invalid
from app.http.schemas import (  # the limits live with the schemas that state them
    DEFAULT_FORMAT,
    DEFAULT_PAGE,
    MAX_IDEMPOTENCY_KEY,
    MAX_OWNER_ID,
    MAX_PAGE,
)

__all__ = ["DEFAULT_FORMAT", "DEFAULT_PAGE", "MAX_IDEMPOTENCY_KEY", "MAX_OWNER_ID", "MAX_PAGE"]

# Stored params (UTF-8 JSON, after the kind's defaults are filled in) may not exceed this:
# they are kept in every job row and bound into the export query. The shipped kinds' params
# stay far below it (one 1,000-character string param is at most 4,000 bytes).
MAX_PARAMS_BYTES = 16 * 1024


def params_size(params: Mapping[str, Any]) -> int:
    """Bytes of `params` as the UTF-8 JSON stored in exports.jobs.params."""
    text = json.dumps(params, ensure_ascii=False, default=str)
    return len(text.encode("utf-8", "surrogatepass"))


def read_body(request: Request, limit: int) -> bytes:
    """The whole request body; 413 when it is longer than `limit` bytes, however framed.

    werkzeug stops a chunked body (no Content-Length) at the limit without saying so, which
    once let a body of valid JSON plus 3 MiB of spaces through as its first 64 KiB. So we
    let it read one byte more than the limit, and a body that fills that byte is refused.
    """
    g.body_limit = limit  # for the 413 of a Content-Length over it (problems.py)
    request.max_content_length = limit + 1
    stream = request.stream
    chunks: list[bytes] = []
    wanted = limit + 1
    while wanted > 0 and (chunk := stream.read(min(wanted, 64 * 1024))):
        chunks.append(chunk)
        wanted -= len(chunk)
    if wanted <= 0:
        raise body_too_large(limit)
    return b"".join(chunks)


def body_too_large(limit: int) -> Problem:
    """413: the body is over `limit` bytes."""
    return Problem(
        413,
        "payload-too-large",
        "Request Entity Too Large",
        f"The request body is larger than the limit of {limit} bytes.",
    )


def json_body(request: Request) -> Any:
    """The request's JSON document; 415 for another media type, 400 for malformed JSON,
    413 past EXPORTS_MAX_BODY_BYTES."""
    if request.mimetype != "application/json":
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as application/json (got {request.mimetype or 'no Content-Type'}).",
        )
    raw = read_body(request, current_app.config["EXPORTS_MAX_BODY_BYTES"])
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


# A cursor is base64url of "<created_at ISO 8601 with offset>,<job id>": a fixed shape,
# checked by one regular expression before anything is parsed, so no input can make the
# decoder recurse or allocate (a JSON cursor could: 3,000 nested "[" was a 500).
_CURSOR_TEXT = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}:\d{2}),"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
MAX_CURSOR = 128  # characters; a genuine cursor is under 90


def encode_cursor(created_at: dt.datetime, item_id: uuid.UUID) -> str:
    """An opaque page cursor: the keyset position (created_at, id) of the last item on a page."""
    raw = f"{created_at.isoformat()},{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """The keyset position in a cursor; ValueError for anything encode_cursor did not make."""
    if not 0 < len(cursor) <= MAX_CURSOR or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise ValueError("bad cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("bad cursor") from exc
    match = _CURSOR_TEXT.fullmatch(raw)
    if match is None:
        raise ValueError("bad cursor")
    return dt.datetime.fromisoformat(match[1]), uuid.UUID(match[2])
