"""Turning HTTP input into domain values, or a 4xx problem that says exactly what is wrong."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Request, current_app, g

from app.exports import priorities
from app.exports.catalog import Catalog, ExportKind, ParamsInvalid
from app.exports.formats import (
    CSV_FAMILY,
    DEFAULT_FORMAT,
    DEFAULT_PART_BYTES,
    DEFAULT_TIMEZONE,
    CsvOptions,
    FileOptions,
)
from app.exports.jobs import ExportRequest
from app.exports.windows import Window
from app.http import schemas
from app.http.problems import Problem, invalid
from app.http.schemas import (  # the limits live with the schemas that state them
    DEFAULT_PAGE,
    MAX_IDEMPOTENCY_KEY,
    MAX_OWNER_ID,
    MAX_PAGE,
)
from app.notifications.webhook_addresses import UnsafeAddress, resolve
from app.notifications.webhooks import EVENT_TYPES, EndpointChanges, EndpointRequest
from app.platform.settings import IPNetwork
from app.schedules.store import (
    UNCHANGED,
    WINDOW_PER_SLOT,
    ScheduleChanges,
    ScheduleEnds,
    ScheduleSpec,
)
from app.schedules.timing import cron_problem, timezone_problem, timing_of

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
    kind_name = body.get("kind") if isinstance(body, dict) else None
    kind = catalog.get(kind_name) if isinstance(kind_name, str) else None
    schema = schemas.ENVELOPE if kind is None else schemas.kind_schema_name(kind)
    errors = schemas.validate_in_catalog(catalog, schema, body)
    if not isinstance(body, dict):
        raise invalid(errors)

    owner_id = body.get("owner_id")
    if not _under(errors, "/owner_id") and (problem := text_problem(owner_id)):
        errors["/owner_id"] = problem
    params = body.get("params") or {}
    if kind is not None and not _under(errors, "/params"):
        try:
            params = kind.validate_params(params)
        except ParamsInvalid as exc:
            errors.update(_params_errors(exc))
        else:
            if (size := params_size(params)) > MAX_PARAMS_BYTES:
                errors["/params"] = f"must be at most {MAX_PARAMS_BYTES} bytes as JSON ({size})"
    notify = body.get("notify") if isinstance(body.get("notify"), dict) else {}
    notify_email = None
    if notify.get("email") is not None and not _under(errors, "/notify"):
        try:
            notify_email = validate_email(notify["email"], check_deliverability=False).normalized
        except EmailNotValidError as exc:
            errors["/notify/email"] = f"is not a valid email address: {exc}"
    file_format = body.get("format", DEFAULT_FORMAT)
    if "csv" in body and file_format not in CSV_FAMILY and not _under(errors, "/format"):
        errors["/csv"] = f"applies to the csv and csv.gz formats only, not {file_format}"
    timezone = body.get("timezone", DEFAULT_TIMEZONE)
    if "/timezone" not in errors and (problem := timezone_problem(timezone)):
        errors["/timezone"] = problem
    window, derived = None, False
    if kind is not None and kind.window and not _under(errors, "/window"):
        try:
            window, derived = _window(body.get("window"), kind)
        except ValueError as exc:
            errors["/window"] = str(exc)
    if errors:
        raise invalid(errors)
    columns = body.get("columns")
    return ExportRequest(
        owner_id=owner_id,
        kind=kind_name,
        params=params,
        format=file_format,
        notify_email=notify_email,
        notify_webhook=notify.get("webhook", True),
        options=FileOptions(
            columns=tuple(columns) if columns is not None else None,
            timezone=timezone,
            csv=CsvOptions.from_json(body.get("csv")),
            safe_cells=body.get("safe_cells", True),
            max_part_bytes=body.get("max_part_bytes", DEFAULT_PART_BYTES),
        ),
        window=window,
        window_derived=derived,
        priority=body.get("priority", priorities.INTERACTIVE),
    )


def _window(given: dict[str, str] | None, kind: ExportKind) -> tuple[Window | None, bool]:
    """(the requested window, or the kind's default; whether it was worked out here).
    ValueError says what is wrong with it."""
    if given is None:
        if kind.window_default is None:
            return None, False  # the schema already requires it: a schedule's slots give it
        return Window.last(kind.window_default, dt.datetime.now(dt.UTC)), True
    edges: dict[str, dt.datetime | None] = {}
    for edge in ("start", "end"):
        try:
            edges[edge] = instant(given[edge]) if given.get(edge) else None
        except ValueError as exc:
            raise ValueError(f"{edge} {exc}") from None
    return Window(edges["start"], edges["end"]), False


def instant(text: str) -> dt.datetime:
    """An RFC 3339 timestamp (the schemas' DATETIME_PATTERN) as UTC; ValueError for one that
    UTC cannot hold (0001-01-01T00:00:00+23:59 is in year 0)."""
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range: it must fall in the years 1 to 9999 in UTC") from None


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


def list_arguments(
    schema: Mapping[str, Any], args: Mapping[str, str], *, ids: type = uuid.UUID
) -> dict[str, Any]:
    """A list's query arguments, checked against its query schema (LIST_EXPORTS_QUERY, ...):
    empty filters become None, `limit` its default, and the cursor the keyset position
    `before` (whose id must be of type `ids`); a 422 lists every bad argument."""
    query = schemas.query_instance(schema, args)
    errors = schemas.validate(schema, query)
    owner_id = query.get("owner_id") or None
    if owner_id is not None and "/owner_id" not in errors and (problem := text_problem(owner_id)):
        errors["/owner_id"] = problem  # a filter only needs to be storable text
    before = None
    if query.get("cursor") and "/cursor" not in errors:
        try:
            before = decode_cursor(query["cursor"])
        except ValueError:
            before = None
        if before is None or not isinstance(before[1], ids):
            errors["/cursor"] = "is not a cursor this API returned"
    if errors:
        raise invalid(errors)
    filters = {
        name: query.get(name) or None
        for name in schema["properties"]
        if name not in ("limit", "cursor")
    }
    return {**filters, "limit": query.get("limit", DEFAULT_PAGE), "before": before}


def schedule_request(body: Any, catalog: Catalog) -> ScheduleSpec:
    """Validate a POST /v1/schedules body: the ScheduleRequest schema, the export fields
    exactly as POST /v1/exports checks them, then cron and time zone; a 422 lists every
    bad field at once."""
    errors = schemas.validate_in_catalog(catalog, "ScheduleRequest", body)
    if not isinstance(body, dict):
        raise invalid(errors)
    export = None
    try:
        export = export_request(
            {k: body[k] for k in schemas.SCHEDULE_EXPORT_FIELDS if k in body}, catalog
        )
    except Problem as problem:
        for pointer, detail in problem.errors.items():
            if pointer != "/window":  # a schedule's jobs get theirs from their slots
                errors.setdefault(pointer, detail)
    kind = catalog.get(body.get("kind")) if isinstance(body.get("kind"), str) else None
    if "window" in body and kind is not None and not kind.window and "/window" not in errors:
        errors["/window"] = f"kind {kind.name!r} exports no time window"
    ends_at = None
    if "ends_at" in body and "/ends_at" not in errors:
        try:
            ends_at = instant(body["ends_at"])
        except ValueError as exc:
            errors["/ends_at"] = str(exc)
        else:
            if ends_at <= dt.datetime.now(dt.UTC):
                errors["/ends_at"] = "must be in the future"
    _timing_errors(body, errors)
    if errors:
        raise invalid(errors)
    assert export is not None and kind is not None
    # Its exports run in the schedule's time zone, over the windows its slots cut.
    export = replace(
        export,
        options=replace(export.options, timezone=body["timezone"]),
        window=None,
        window_derived=False,
    )
    ends = ScheduleEnds(
        ends_at=ends_at,
        max_runs=int(body["max_runs"]) if "max_runs" in body else None,  # 3.0 is 3
    )
    window_mode = body.get("window", WINDOW_PER_SLOT) if kind.window else None
    return ScheduleSpec(
        export=export,
        timing=timing_of(body["cron"], body["timezone"]),
        enabled=body.get("enabled", True),
        window_mode=window_mode,
        ends=ends,
    )


def schedule_changes(body: Any, kind: ExportKind | None) -> ScheduleChanges:
    """Validate a PATCH /v1/schedules/{id} body for a schedule of `kind` (None: the kind has
    left the catalog, so params cannot be changed); a 422 lists every bad field."""
    errors = schemas.validate(schemas.SCHEDULE_PATCH, body)
    if not isinstance(body, dict):
        raise invalid(errors)
    _timing_errors(body, errors)
    params = None
    if "params" in body and not _under(errors, "/params"):
        if kind is None:
            errors["/params"] = "cannot be checked: the schedule's kind is no longer in the catalog"
        else:
            try:
                params = kind.validate_params(body["params"] or {})
            except ParamsInvalid as exc:
                errors.update(_params_errors(exc))
    ends_at = UNCHANGED
    if "ends_at" in body and "/ends_at" not in errors:
        try:
            ends_at = instant(body["ends_at"]) if body["ends_at"] else None
        except ValueError as exc:
            errors["/ends_at"] = str(exc)
    if errors:
        raise invalid(errors)
    return ScheduleChanges(
        cron=body.get("cron"),
        timezone=body.get("timezone"),
        params=params,
        enabled=body.get("enabled"),
        ends_at=ends_at,
        max_runs=(
            UNCHANGED
            if "max_runs" not in body
            else None if body["max_runs"] is None else int(body["max_runs"])
        ),
    )


def endpoint_request(
    body: Any, *, allowed: Sequence[IPNetwork], require_https: bool
) -> EndpointRequest:
    """Validate a POST /v1/webhook-endpoints body; the URL must be one we may call."""
    errors = schemas.validate(schemas.WEBHOOK_ENDPOINT_REQUEST, body)
    if not isinstance(body, dict):
        raise invalid(errors)
    _url_errors(body, errors, allowed=allowed, require_https=require_https)
    if errors:
        raise invalid(errors)
    return EndpointRequest(
        url=body["url"],
        events=tuple(body.get("events") or EVENT_TYPES),
        description=body.get("description", ""),
        enabled=body.get("enabled", True),
    )


def endpoint_changes(
    body: Any, *, allowed: Sequence[IPNetwork], require_https: bool
) -> EndpointChanges:
    """Validate a PATCH /v1/webhook-endpoints/{id} body."""
    errors = schemas.validate(schemas.WEBHOOK_ENDPOINT_PATCH, body)
    if not isinstance(body, dict):
        raise invalid(errors)
    _url_errors(body, errors, allowed=allowed, require_https=require_https)
    if errors:
        raise invalid(errors)
    events = body.get("events")
    return EndpointChanges(
        url=body.get("url"),
        events=tuple(events) if events is not None else None,
        description=body.get("description"),
        enabled=body.get("enabled"),
    )


def _url_errors(
    body: dict[str, Any],
    errors: dict[str, str],
    *,
    allowed: Sequence[IPNetwork],
    require_https: bool,
) -> None:
    """Add why the webhook URL may not be called (its form, then its host's addresses)."""
    if "url" not in body or "/url" in errors:
        return
    try:
        resolve(body["url"], allowed, require_https=require_https)
    except UnsafeAddress as exc:
        errors["/url"] = str(exc)


def _timing_errors(body: dict[str, Any], errors: dict[str, str]) -> None:
    """Add what croniter and zoneinfo say about `cron` and `timezone` (both, not the first)."""
    for field, check in (("cron", cron_problem), ("timezone", timezone_problem)):
        pointer = "/" + field
        if field in body and pointer not in errors and (problem := check(body[field])):
            errors[pointer] = problem


def _under(errors: Mapping[str, str], pointer: str) -> bool:
    """Something at or under `pointer` was refused already."""
    return any(p == pointer or p.startswith(pointer + "/") for p in errors)


def _params_errors(exc: ParamsInvalid) -> dict[str, str]:
    """The catalog's errors (by parameter name) as JSON Pointers into the body."""
    return {schemas.pointer_to("params", name): detail for name, detail in exc.errors.items()}


# A cursor is base64url of "<created_at ISO 8601 with offset>,<id>" (a UUID, or a bigint for
# webhook deliveries): a fixed shape,
# checked by one regular expression before anything is parsed, so no input can make the
# decoder recurse or allocate (a JSON cursor could: 3,000 nested "[" was a 500).
_CURSOR_TEXT = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}:\d{2}),"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]{1,19})"
)
MAX_CURSOR = 128  # characters; a genuine cursor is under 90
_MAX_BIGINT = 2**63 - 1


def encode_cursor(created_at: dt.datetime, item_id: uuid.UUID | int) -> str:
    """An opaque page cursor: the keyset position (created_at, id) of the last item on a page."""
    raw = f"{created_at.isoformat()},{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID | int]:
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
    if match[2].isdigit():
        item: uuid.UUID | int = int(match[2])
        if item > _MAX_BIGINT:  # 19 digits can still overflow the bigint it is compared to
            raise ValueError("bad cursor")
    else:
        item = uuid.UUID(match[2])
    return dt.datetime.fromisoformat(match[1]), item
