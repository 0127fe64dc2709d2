"""The API's JSON Schemas (Draft 2020-12): what requests must be and what responses are.

One source: parsing.py validates requests with these very objects (validate()), and
openapi.py emits them into /v1/openapi.json, so the document cannot drift from the checks.
What JSON Schema cannot say is checked after validation, by small functions in parsing.py
and catalog.py, and each schema's description says so: dates that do not exist
(2024-02-30), an integer written 1.0, numbers too large for a double, unpaired UTF-16
surrogates, email addresses email-validator refuses, cursors this API did not issue.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from app.exports import priorities
from app.exports.catalog import PARAM_TYPES, Catalog, ExportKind, Param
from app.exports.columns import OUTPUT_TYPES
from app.exports.formats import (
    CSV_DELIMITERS,
    DEFAULT_FORMAT,
    DEFAULT_PART_BYTES,
    DEFAULT_TIMEZONE,
    FORMATS,
    MAX_PART_BYTES,
    MIN_PART_BYTES,
)
from app.exports.jobs import STATES
from app.http.problems import PROBLEM_BASE
from app.notifications.webhooks import EVENT_TYPES, TEST_EVENT
from app.schedules.timing import MAX_CRON, MAX_TIMEZONE, UPCOMING_RUNS

MAX_OWNER_ID = 200
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_STRING_PARAM = 1000  # catalog.py's string converter holds the same limit

COMPONENTS = "#/components/schemas/"

# Python's str.isspace() characters (what `owner_id.strip()` removes): an owner_id needs one
# character outside this class. Not regex \s: that differs (U+FEFF; U+001C-U+001F, U+0085).
_PY_WHITESPACE = r"\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# PostgreSQL cannot store NUL in text: stored strings refuse it (a 422).
NO_NUL = r"^[^\x00]*$"
NOT_BLANK_NO_NUL = f"^[^\\x00]*[^{_PY_WHITESPACE}\\x00][^\\x00]*$"
# owner_id (security issue): plain ASCII ids only, so they are safe in logs, file names and
# DBA queries alike; length is MAX_OWNER_ID (maxLength).
OWNER_ID_PATTERN = r"^[A-Za-z0-9._:@+|-]+$"
# str.isprintable() over what an HTTP header can carry (ISO-8859-1).
PRINTABLE_HEADER = r"^[\x20-\x7e\xa1-\xac\xae-\xff]+$"
# werkzeug's UUIDConverter: anything else does not match the route (404).
UUID_PATTERN = r"^[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"
# What date.fromisoformat / datetime.fromisoformat take of RFC 3339 (no year 0, no leap second).
DATE_PATTERN = r"^(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATETIME_PATTERN = (
    r"^(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# What a failed `pattern` means, in words (a regex is no error message).
_PATTERN_MESSAGES = {
    NO_NUL: "must not contain NUL characters",
    NOT_BLANK_NO_NUL: "must not be blank or contain NUL characters",
    OWNER_ID_PATTERN: "must be letters, digits and . _ : @ + | - only",
    PRINTABLE_HEADER: "must be printable characters",
    UUID_PATTERN: "must be a UUID",
    DATE_PATTERN: "must be a date like 2024-01-31",
    DATETIME_PATTERN: "must be a timestamp with a time zone, like 2024-01-31T12:00:00Z",
}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def ref(name: str) -> dict[str, str]:
    """A $ref to the named schema in components/schemas."""
    return {"$ref": COMPONENTS + name}


def response_ref(name: str) -> dict[str, str]:
    """A $ref to the named response in components/responses (the problem responses)."""
    return {"$ref": "#/components/responses/" + name}


def header_ref(name: str) -> dict[str, str]:
    """A $ref to the named header in components/headers."""
    return {"$ref": "#/components/headers/" + name}


# --- validation -----------------------------------------------------------------------------


def validate(
    schema: Mapping[str, Any], instance: Any, *, components: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Every way `instance` breaks `schema`: {JSON Pointer: what is wrong}, in schema order.

    One message per pointer (the first); a missing property and an unknown one each get
    their own pointer. `$ref`s to #/components/schemas/<name> resolve in `components`.
    """
    root: Mapping[str, Any] = schema
    if components is not None:  # "#/components/..." then resolves inside this root
        root = {"components": {"schemas": components}, "allOf": [schema]}
    return _errors(Draft202012Validator(root), instance)


# Validators of each catalog's request schemas, built on first use. Building one (every
# component schema, then the validator and its $ref registry) cost more than validating a
# body with it: ~0.1 ms of a POST /v1/exports (bench/README.md, "Enqueue: what limits it").
_CATALOG_VALIDATORS: weakref.WeakKeyDictionary[Catalog, dict[str, Draft202012Validator]] = (
    weakref.WeakKeyDictionary()
)
ENVELOPE = "ExportRequest envelope"  # export_request_envelope(): for a body naming no kind


def validate_in_catalog(catalog: Catalog, name: str, instance: Any) -> dict[str, str]:
    """validate() against the component schema `name` (or ENVELOPE) of `catalog`'s
    document, with a validator built once per catalog."""
    validators = _CATALOG_VALIDATORS.setdefault(catalog, {})
    validator = validators.get(name)
    if validator is None:  # two threads may both build it: the same validator either way
        schema = export_request_envelope(catalog) if name == ENVELOPE else ref(name)
        root = {"components": {"schemas": component_schemas(catalog)}, "allOf": [schema]}
        validator = validators[name] = Draft202012Validator(root)
    return _errors(validator, instance)


def _errors(validator: Draft202012Validator, instance: Any) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in validator.iter_errors(instance):
        for pointer, message in _explain(error):
            errors.setdefault(pointer, message)
    return errors


def query_instance(schema: Mapping[str, Any], args: Mapping[str, str]) -> dict[str, Any]:
    """Query arguments as the JSON instance `schema` describes: whole numbers where it wants
    an integer (anything else stays a string, so the schema refuses it)."""
    properties = schema.get("properties", {})
    instance: dict[str, Any] = {}
    for name, value in args.items():
        # At most 18 digits: a longer run is no page size, and int() refuses past 4,300.
        wants_integer = _types(properties.get(name, {})) & {"integer"}
        if wants_integer and re.fullmatch(r"[+-]?[0-9]{1,18}", value):
            instance[name] = int(value)
        else:
            instance[name] = value
    return instance


def query_parameters(query: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OpenAPI parameters, one per property of a query schema (the schema validates them)."""
    return [
        {"name": name, "in": "query", "description": schema["description"], "schema": schema}
        for name, schema in query["properties"].items()
    ]


def pointer_to(*parts: str | int) -> str:
    """The JSON Pointer of a path ("" is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _explain(error: ValidationError) -> Iterable[tuple[str, str]]:
    path = list(error.absolute_path)
    here = pointer_to(*path)
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "required":
        for name in expected:
            if isinstance(instance, dict) and name not in instance:
                yield pointer_to(*path, name), "is required"
    elif keyword == "additionalProperties" and expected is False and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        noun = error.schema.get("title", "field")
        for name in sorted(instance):
            if name not in known and not any(re.search(p, name) for p in patterns):
                yield pointer_to(*path, name), f"is not a known {noun}"
    else:
        yield here, _message(keyword, expected, error.schema)


def _message(keyword: str, expected: Any, schema: Mapping[str, Any]) -> str:
    """What a failed keyword means, without echoing the (possibly huge) value."""
    if keyword == "type":
        types = [t for t in ([expected] if isinstance(expected, str) else expected) if t != "null"]
        return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types or ["null"])
    if keyword == "enum":
        shown = ", ".join(str(v) for v in expected if v not in ("", None))
        if "title" in schema:
            return f"is not a known {schema['title']} (known: {shown})"
        return f"must be one of {shown}"
    if keyword == "const":
        return f"must be {json.dumps(expected)}"
    if keyword == "pattern":
        return pattern_message(expected)
    if keyword == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    if keyword == "maxLength":
        return f"must be at most {expected} characters"
    if keyword in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"must be between {low} and {high}"
        return f"must be at least {low}" if keyword == "minimum" else f"must be at most {high}"
    if keyword in ("minItems", "maxItems"):
        return f"must have {'at least' if keyword == 'minItems' else 'at most'} {expected} items"
    if keyword == "minProperties":
        return f"must have at least {expected} field{'s' if expected != 1 else ''}"
    if keyword == "uniqueItems":
        return "must not repeat items"
    if keyword in ("oneOf", "anyOf"):
        return "does not match any of the allowed forms"
    return f"is invalid ({keyword})"


def pattern_message(pattern: str) -> str:
    """What failing one of these schemas' patterns means, in words."""
    return _PATTERN_MESSAGES.get(pattern, "is not in the expected form")


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


# --- requests -------------------------------------------------------------------------------


def kind_schema_name(kind: ExportKind) -> str:
    """The name of one kind's request schema in components/schemas."""
    return f"ExportRequest.{kind.name}"


def export_request_envelope(catalog: Catalog) -> dict[str, Any]:
    """ExportRequest without its per-kind branches: what is checked when `kind` names none."""
    return {
        "type": "object",
        "description": (
            "A request for an export: one complete schema per kind (`kind` tells them apart, "
            "and the server validates the body against that kind's schema). Unknown fields "
            "are a 422. `params` are checked against the kind's declared parameters (GET "
            "/v1/export-kinds): unknown ones are a 422, null or absent ones take the declared "
            "default, and the stored job holds every declared parameter (null when it has no "
            "value)."
        ),
        "required": ["owner_id", "kind"],
        "additionalProperties": False,
        "properties": {
            "owner_id": ref("OwnerId"),
            "kind": {
                "type": "string",
                "title": "export kind",
                "enum": [kind.name for kind in catalog],
                "description": "The export kind.",
            },
            "format": {"type": "string", "enum": list(FORMATS), "description": "The file format."},
            "params": {"type": ["object", "null"], "description": "The kind's parameters."},
            "columns": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string"},
                "description": "The kind's output columns to include, in this order "
                "(checked against the kind's columns: GET /v1/export-kinds).",
            },
            **FILE_OPTIONS,
            "priority": REQUEST_PRIORITY,
            "window": {
                "type": "object",
                "description": "Windowed kinds only: the period [start, end) to export.",
            },
            "notify": ref("Notify"),
        },
    }


def export_request(catalog: Catalog) -> dict[str, Any]:
    """ExportRequest: the envelope, then exactly one kind's schema (by `kind`)."""
    kinds = list(catalog)
    return {
        **export_request_envelope(catalog),
        "oneOf": [ref(kind_schema_name(kind)) for kind in kinds],
        "discriminator": {
            "propertyName": "kind",
            "mapping": {kind.name: COMPONENTS + kind_schema_name(kind) for kind in kinds},
        },
    }


def export_request_for(kind: ExportKind) -> dict[str, Any]:
    """ExportRequest for one kind: its params, its formats."""
    must_give = [p.name for p in kind.params if p.required and p.default is None]
    params: dict[str, Any] = {
        "type": "object" if must_give else ["object", "null"],
        "title": f"parameter of {kind.name}",
        "description": "The kind's parameters"
        + ("." if must_give else "; absent or null is the same as {}."),
        "additionalProperties": False,
        "properties": {p.name: param_schema(p) for p in kind.params},
    }
    required = ["owner_id", "kind"]
    if must_give:
        params["required"] = must_give
        required.append("params")
    window: dict[str, Any] = {}
    if kind.window:
        window = {"window": window_schema(kind)}
        if kind.window_default is None:
            required.append("window")
    fmt: dict[str, Any] = {
        "type": "string",
        "enum": list(kind.formats),
        "description": "The file format.",
    }
    if DEFAULT_FORMAT in kind.formats:
        fmt["default"] = DEFAULT_FORMAT
    else:
        required.append("format")  # the default format would be refused
    return {
        "type": "object",
        "description": kind.description,
        "required": required,
        "additionalProperties": False,
        "properties": {
            "owner_id": ref("OwnerId"),
            "kind": {"const": kind.name},
            "format": fmt,
            "params": params,
            "columns": columns_schema(kind),
            **FILE_OPTIONS,
            "priority": REQUEST_PRIORITY,
            **window,
            "notify": ref("Notify"),
        },
    }


def window_schema(kind: ExportKind) -> dict[str, Any]:
    """`window` of a windowed kind: the period [start, end) its query exports."""
    default = (
        f" Absent: the last {kind.window_default.days} days up to the request."
        if kind.window_default is not None
        else " Required."
    )
    moment = {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "start": {**moment, "description": "Inclusive; absent: open start."},
            "end": {**moment, "description": "Exclusive; absent: open end."},
        },
        "description": "The period to export, [start, end) (checked after the schema: start "
        "before end)." + default,
    }


def columns_schema(kind: ExportKind) -> dict[str, Any]:
    """`columns` of one kind: a subset of its output columns, in the order wanted."""
    listed = ", ".join(f"`{c.name}` ({c.type})" for c in kind.columns)
    return {
        "type": "array",
        "minItems": 1,
        "uniqueItems": True,
        "items": {"type": "string", "enum": list(kind.column_names())},
        "description": "The output columns to include, in this order; absent: all of them, "
        f"in the query's order: {listed}.",
    }


CSV_OPTIONS: dict[str, Any] = {
    "type": "object",
    "description": "CSV dialect (formats csv and csv.gz only; a 422 with any other format).",
    "additionalProperties": False,
    "properties": {
        "delimiter": {"type": "string", "enum": list(CSV_DELIMITERS), "default": ","},
        "header": {"type": "boolean", "default": True, "description": "A first row of names."},
        "bom": {
            "type": "boolean",
            "default": False,
            "description": "Start with a UTF-8 byte-order mark, so Excel reads accents right.",
        },
    },
}
EXPORT_TIMEZONE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TIMEZONE,
    "default": DEFAULT_TIMEZONE,
    "description": "IANA time zone the export runs in (checked after the schema: zoneinfo "
    "must know it): timestamps in the file carry its offset, and the query's date "
    "arithmetic uses it.",
}
FILE_OPTIONS: dict[str, Any] = {
    "timezone": EXPORT_TIMEZONE,
    "csv": CSV_OPTIONS,
    "safe_cells": {
        "type": "boolean",
        "default": True,
        "description": "csv and xlsx: a text cell starting with = + - @ tab or carriage "
        "return gets a leading ' so spreadsheets show it instead of running it as a formula "
        "(OWASP CSV injection); numbers stay numbers.",
    },
    "max_part_bytes": {
        "type": "integer",
        "minimum": MIN_PART_BYTES,
        "maximum": MAX_PART_BYTES,
        "default": DEFAULT_PART_BYTES,
        "description": "A bigger export is stored as several files (parts), each complete "
        "in its format, plus a manifest.json; the result lists them.",
    },
}

REQUEST_PRIORITY: dict[str, Any] = {
    "type": "string",
    "enum": list(priorities.REQUESTABLE),
    "default": priorities.INTERACTIVE,
    "description": "bulk: for backfills and other big batches; the tenant's interactive "
    "exports go first, but a bulk one waits behind newer ones for at most "
    "EXPORTS_PRIORITY_MAX_WAIT (10 min by default). Schedules' exports are `scheduled`.",
}


def param_schema(param: Param) -> dict[str, Any]:
    """One declared parameter: its type's schema, nullable unless it must be given."""
    schema: dict[str, Any] = dict(_PARAM_SCHEMAS[param.type])
    notes = [param.description, _PARAM_NOTES[param.type]]
    if param.required and param.default is None:
        notes.append("Required.")
    else:  # null and absent both mean "not given"
        schema["type"] = [schema["type"], "null"]
        if param.default is None:
            notes.append("Optional: null or absent means no value.")
        else:
            schema["default"] = param.default
            notes.append("Null or absent means the default.")
    schema["description"] = " ".join(note for note in notes if note)
    return schema


_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string", "maxLength": MAX_STRING_PARAM, "pattern": NO_NUL},
    "integer": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date", "pattern": DATE_PATTERN},
    "datetime": {"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN},
}
_PARAM_NOTES = {
    "string": f"A string of at most {MAX_STRING_PARAM} characters, without NUL or unpaired "
    "surrogates.",
    "integer": "A whole JSON number, 64-bit, written without a fraction or exponent "
    "(1.0 and 1e3 are refused, checked after the schema).",
    "number": "A JSON number that fits a double (checked after the schema).",
    "boolean": "true or false.",
    "date": "A date like 2024-01-31 that exists (2024-02-30 is refused, checked after the schema).",
    "datetime": "A timestamp with a time zone, like 2024-01-31T12:00:00Z.",
}


OWNER_ID: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_OWNER_ID,
    "pattern": OWNER_ID_PATTERN,
    "description": f"Whose export this is: 1 to {MAX_OWNER_ID} of A-Z a-z 0-9 and . _ : @ + | - "
    "(user ids, UUIDs, emails, auth0|ids).",
}
NOTIFY: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "Who is told when the export ends: the end user by email (with the "
    "download link), the app by its webhook endpoints. Absent or null: no email, webhooks.",
    "additionalProperties": False,
    "properties": {
        "email": {
            "type": "string",
            "format": "email",
            "description": "Absent: no email. Checked after the schema with email-validator "
            "(syntax only, no DNS): the domain needs a dot and must not be a special-use name "
            "such as .test or localhost; stored normalised.",
        },
        "webhook": {
            "type": "boolean",
            "default": True,
            "description": "Whether the tenant's webhook endpoints hear of this export.",
        },
    },
}
# The paging arguments every list shares (GET /v1/exports, GET /v1/schedules).
OWNER_FILTER: dict[str, Any] = {
    "type": "string",
    "pattern": NO_NUL,
    "description": "Only this owner's items (empty: every owner).",
}
PAGE_LIMIT: dict[str, Any] = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_PAGE,
    "default": DEFAULT_PAGE,
    "description": "Page size.",
}
PAGE_CURSOR: dict[str, Any] = {
    "type": "string",
    "description": "Opaque: the `next_cursor` of the previous page (empty: the first "
    "page). Anything else is a 422, checked after the schema.",
}
LIST_EXPORTS_QUERY: dict[str, Any] = {
    "type": "object",
    "title": "query parameter",
    "description": "The query of GET /v1/exports. Any other query parameter is a 422.",
    "additionalProperties": False,
    "properties": {
        "owner_id": OWNER_FILTER,
        "state": {
            "type": "string",
            "enum": [*STATES, ""],
            "description": "Only exports in this state (empty: any state).",
        },
        "schedule_id": {
            "type": "string",
            "pattern": f"^({UUID_PATTERN[1:-1]})?$",
            "description": "Only the jobs this schedule queued (empty: any).",
        },
        "limit": PAGE_LIMIT,
        "cursor": PAGE_CURSOR,
    },
}
LIST_SCHEDULES_QUERY: dict[str, Any] = {
    "type": "object",
    "title": "query parameter",
    "description": "The query of GET /v1/schedules. Any other query parameter is a 422.",
    "additionalProperties": False,
    "properties": {"owner_id": OWNER_FILTER, "limit": PAGE_LIMIT, "cursor": PAGE_CURSOR},
}
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDEMPOTENCY_KEY,
    "pattern": PRINTABLE_HEADER,
}
JOB_ID: dict[str, Any] = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}


# --- webhook endpoints ----------------------------------------------------------------------

WEBHOOK_URL: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 2000,
    "description": "Where events are POSTed: https (http only outside production), no user "
    "or password. Checked after the schema: its host must resolve to public addresses only "
    "(not loopback, private, link-local, CGNAT, multicast...), unless the operator allowed "
    "a network (EXPORTS_WEBHOOK_ALLOW_NETWORKS); it is resolved and checked again at every "
    "delivery.",
}
WEBHOOK_EVENTS: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string", "enum": list(EVENT_TYPES)},
    "description": "The events it receives (default: all four).",
}
WEBHOOK_ENDPOINT_REQUEST: dict[str, Any] = {
    "type": "object",
    "title": "field",
    "description": "A webhook endpoint. Unknown fields are a 422.",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": WEBHOOK_URL,
        "events": {**WEBHOOK_EVENTS, "default": list(EVENT_TYPES)},
        "description": {"type": "string", "maxLength": 500, "pattern": NO_NUL, "default": ""},
        "enabled": {"type": "boolean", "default": True},
    },
}
WEBHOOK_ENDPOINT_PATCH: dict[str, Any] = {
    "type": "object",
    "title": "field",
    "description": "Change an endpoint: any of these fields. Enabling it clears why the "
    "service had disabled it.",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "url": WEBHOOK_URL,
        "events": WEBHOOK_EVENTS,
        "description": {"type": "string", "maxLength": 500, "pattern": NO_NUL},
        "enabled": {"type": "boolean"},
    },
}
PAGE_QUERY: dict[str, Any] = {
    "type": "object",
    "title": "query parameter",
    "description": "Paging arguments. Any other query parameter is a 422.",
    "additionalProperties": False,
    "properties": {"limit": PAGE_LIMIT, "cursor": PAGE_CURSOR},
}


# The fields a schedule adds to an export request.
CRON: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_CRON,
    "description": "5 fields: minute hour day-of-month month day-of-week (croniter syntax, "
    "e.g. `0 8 * * mon`, `0 0 1 * *`, `0 8 L * *` for the last day of the month), read in "
    "`timezone`. A time skipped by a DST change fires once, right after the jump; a "
    "repeated time fires once (its first occurrence) unless the hour field is `*`. "
    "Checked after the schema: croniter must accept it, it must match some date, and "
    "croniter's random `R` is refused.",
}
TIMEZONE: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TIMEZONE,
    "description": "An IANA time zone name, e.g. `Europe/Berlin`, `America/New_York`, `UTC` "
    "(checked after the schema: zoneinfo must know it).",
}
KIND_PARAMS: dict[str, Any] = {
    "type": ["object", "null"],
    "description": "The kind's parameters; absent or null is the same as {}. Checked after "
    "the schema against the kind's declared parameters (GET /v1/export-kinds, or "
    "ExportRequest.<kind>), exactly as POST /v1/exports checks them.",
}
# Export fields a schedule request carries (the rest are its timing).
SCHEDULE_EXPORT_FIELDS = (
    "owner_id",
    "kind",
    "params",
    "format",
    "columns",
    "csv",
    "safe_cells",
    "max_part_bytes",
    "notify",
)


def schedule_request(catalog: Catalog) -> dict[str, Any]:
    """ScheduleRequest: POST /v1/exports's fields plus cron, timezone and enabled."""
    envelope = export_request_envelope(catalog)["properties"]
    return {
        "type": "object",
        "description": "A recurring export: every slot of `cron` in `timezone` queues the "
        "export (POST /v1/exports's fields, checked the same way). Unknown fields are a 422.",
        "required": ["owner_id", "kind", "cron", "timezone"],
        "additionalProperties": False,
        "properties": {
            **{name: envelope[name] for name in SCHEDULE_EXPORT_FIELDS},
            "params": KIND_PARAMS,
            "cron": CRON,
            "timezone": {
                **TIMEZONE,
                "description": TIMEZONE["description"] + " Its exports run in it too.",
            },
            "enabled": {"type": "boolean", "default": True, "description": "false: paused."},
            "window": SCHEDULE_WINDOW,
            **SCHEDULE_ENDS,
        },
    }


SCHEDULE_WINDOW: dict[str, Any] = {
    "type": "string",
    "enum": ["slot", "since_last_success"],
    "default": "slot",
    "description": "Windowed kinds only (a 422 otherwise): `slot` exports, at each slot, the "
    "period since the previous slot, in the schedule's time zone; `since_last_success` "
    "starts where the last succeeded job's window ended, so failed runs and outages lose "
    "nothing (its first run exports one period).",
}
SCHEDULE_ENDS: dict[str, Any] = {
    "ends_at": {
        "type": "string",
        "format": "date-time",
        "pattern": DATETIME_PATTERN,
        "description": "No slot after this fires; then `state` is `ended` (checked after the "
        "schema: in the future).",
    },
    "max_runs": {
        "type": "integer",
        "minimum": 1,
        "maximum": 1_000_000,
        "description": "The schedule ends after this many slots queued a job.",
    },
}


SCHEDULE_PATCH: dict[str, Any] = {
    "type": "object",
    "description": "Change a schedule: any of these fields. A new cron or timezone, or "
    "enabling a paused schedule, recomputes the next run from now (slots that passed while "
    "paused are not caught up); disabling clears it.",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        "cron": CRON,
        "timezone": TIMEZONE,
        "params": KIND_PARAMS,
        "enabled": {"type": "boolean"},
        "ends_at": {
            **SCHEDULE_ENDS["ends_at"],
            "type": ["string", "null"],
            "description": "A new end date (null: none); a later one reopens an ended schedule.",
        },
        "max_runs": {
            **SCHEDULE_ENDS["max_runs"],
            "type": ["integer", "null"],
            "description": "A new limit (null: none); a higher one reopens an ended schedule.",
        },
    },
}


# --- responses (render.py's shapes) ---------------------------------------------------------

TIMESTAMP = {"type": "string", "format": "date-time", "description": "UTC, ending in Z."}
OPTIONAL_TIMESTAMP = {**TIMESTAMP, "type": ["string", "null"]}


def page_of(item: str) -> dict[str, Any]:
    """A keyset page of `item`s (render.page)."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as `cursor` for the next page; null on the last page.",
            },
        },
    }


def webhook_endpoint(*, with_secret: bool = False) -> dict[str, Any]:
    """render.webhook_endpoint_json (with the secret: what create and rotate answer)."""
    properties: dict[str, Any] = {
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string"},
        "description": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string", "enum": list(EVENT_TYPES)}},
        "enabled": {"type": "boolean"},
        "disabled_reason": {
            "type": ["string", "null"],
            "description": "Why the service disabled it (410 Gone, failing for 5 days).",
        },
        "last_success_at": OPTIONAL_TIMESTAMP,
        "failing_since": OPTIONAL_TIMESTAMP,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
    if with_secret:
        properties["secret"] = {
            "type": "string",
            "pattern": "^whsec_",
            "description": "The signing secret (Standard Webhooks), shown only now.",
        }
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def webhook_delivery() -> dict[str, Any]:
    """render.delivery_json."""
    properties: dict[str, Any] = {
        "id": {"type": "integer"},
        "event_id": {"type": "string", "description": "The webhook-id header."},
        "type": {"type": "string", "enum": [*EVENT_TYPES, TEST_EVENT]},
        "job_id": {"type": ["string", "null"], "format": "uuid"},
        "state": {"type": "string", "enum": ["pending", "succeeded", "retrying", "failed"]},
        "attempts": {"type": "integer", "minimum": 0},
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "duration_ms": {"type": ["integer", "null"]},
        "next_attempt_at": OPTIONAL_TIMESTAMP,
        "created_at": TIMESTAMP,
        "delivered_at": OPTIONAL_TIMESTAMP,
    }
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def shown_options() -> dict[str, Any]:
    """The file options as jobs and schedules show them (every default filled in)."""
    return {
        "columns": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "The output columns chosen, in file order; null: all of them.",
        },
        "csv": {
            "type": ["object", "null"],
            "required": ["delimiter", "header", "bom"],
            "additionalProperties": False,
            "properties": CSV_OPTIONS["properties"],
            "description": "The CSV dialect; null for other formats.",
        },
        "safe_cells": {"type": "boolean"},
        "max_part_bytes": {"type": "integer"},
    }


def schedule() -> dict[str, Any]:
    """render.schedule_json."""
    properties: dict[str, Any] = {
        "id": {"type": "string", "format": "uuid"},
        "owner_id": {"type": "string"},
        "kind": {"type": "string"},
        "params": {"type": "object"},
        "format": {"type": "string", "enum": list(FORMATS)},
        **shown_options(),
        "notify": {
            "type": "object",
            "required": ["email", "webhook"],
            "additionalProperties": False,
            "properties": {"email": {"type": ["string", "null"]}, "webhook": {"type": "boolean"}},
        },
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "enabled": {"type": "boolean"},
        "state": {
            "type": "string",
            "enum": ["active", "paused", "ended"],
            "description": "paused: enabled is false; ended: ends_at or max_runs was reached.",
        },
        "window": {"type": ["string", "null"], "enum": ["slot", "since_last_success", None]},
        "ends_at": OPTIONAL_TIMESTAMP,
        "max_runs": {"type": ["integer", "null"]},
        "runs": {"type": "integer", "minimum": 0, "description": "Slots that queued a job."},
        "next_run_at": {**OPTIONAL_TIMESTAMP, "description": "UTC; null while disabled."},
        "next_runs": {
            "type": "array",
            "maxItems": UPCOMING_RUNS,
            "items": TIMESTAMP,
            "description": f"The next {UPCOMING_RUNS} run times (UTC); empty while disabled.",
        },
        "last_run_at": {**OPTIONAL_TIMESTAMP, "description": "The last slot fired (UTC)."},
        "last_job_id": {"type": ["string", "null"], "format": "uuid"},
        "last_skip_reason": {
            "type": ["string", "null"],
            "enum": ["owner_quota", None],
            "description": "Why the last slot queued no job: `owner_quota` when the owner "
            "already had EXPORTS_MAX_ACTIVE_PER_OWNER exports queued or running. Null when "
            "it queued `last_job_id`.",
        },
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
    return {
        "type": "object",
        "description": "A recurring export. Slots missed while no poller ran fire once, "
        "for the most recent one. Jobs it queues carry its id as `schedule_id`.",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def job() -> dict[str, Any]:
    """render.job_json."""
    timestamp = TIMESTAMP
    optional_timestamp = OPTIONAL_TIMESTAMP
    count = {"type": "integer", "minimum": 0}
    properties: dict[str, Any] = {
        "id": {"type": "string", "format": "uuid"},
        "owner_id": {"type": "string"},
        "kind": {"type": "string"},
        "params": {
            "type": "object",
            "description": "Every declared parameter of the kind, defaults filled in.",
        },
        "format": {"type": "string", "enum": list(FORMATS)},
        **shown_options(),
        "timezone": {"type": "string", "description": "The IANA zone the export ran in."},
        "priority": {
            "type": "string",
            "enum": list(priorities.PRIORITIES),
            "description": "interactive (requests), scheduled (a schedule's slots) or bulk "
            "(asked for): the order within the tenant's share of the pollers.",
        },
        "window": {
            "type": ["object", "null"],
            "required": ["start", "end"],
            "additionalProperties": False,
            "properties": {"start": OPTIONAL_TIMESTAMP, "end": OPTIONAL_TIMESTAMP},
            "description": "Windowed kinds: the period [start, end) exported; null otherwise.",
        },
        "state": {
            "type": "string",
            "enum": list(STATES),
            "description": "queued → running → succeeded | failed; queued | running → "
            "cancelled; a transient failure puts a running job back to queued (with "
            "last_error) until its retry.",
        },
        "attempts": count,
        "progress": {
            "type": "object",
            "required": ["rows", "bytes"],
            "additionalProperties": False,
            "properties": {"rows": count, "bytes": count},
        },
        "result": {
            "type": ["object", "null"],
            "required": [
                "key",
                "rows",
                "bytes",
                "sha256",
                "content_type",
                "expires_at",
                "parts",
                "manifest_key",
            ],
            "additionalProperties": False,
            "properties": {
                "key": {
                    "type": "string",
                    "description": "The stored file, or its manifest.json when in parts.",
                },
                "rows": count,
                "bytes": {**count, "description": "Every part together."},
                "sha256": {"type": "string", "description": "Of the object `key` names."},
                "content_type": {
                    "type": "string",
                    "enum": sorted({f.content_type for f in FORMATS.values()}),
                },
                "expires_at": timestamp,
                "parts": {
                    "type": "array",
                    "minItems": 1,
                    "description": "The stored files in order, each complete on its own.",
                    "items": {
                        "type": "object",
                        "required": ["number", "key", "rows", "bytes", "sha256", "download_url"],
                        "additionalProperties": False,
                        "properties": {
                            "number": {"type": "integer", "minimum": 1},
                            "key": {"type": "string"},
                            "rows": count,
                            "bytes": count,
                            "sha256": {"type": "string"},
                            "download_url": {
                                "type": ["string", "null"],
                                "format": "uri",
                                "description": "This part's own link; null unless succeeded.",
                            },
                        },
                    },
                },
                "manifest_key": {
                    "type": ["string", "null"],
                    "description": "manifest.json (every part's key, rows, bytes, sha256) "
                    "when there is more than one part.",
                },
            },
        },
        "download_url": {"type": ["string", "null"], "format": "uri"},
        "last_error": {"type": ["string", "null"]},
        "schedule_id": {"type": ["string", "null"], "format": "uuid"},
        "created_at": timestamp,
        "started_at": optional_timestamp,
        "finished_at": optional_timestamp,
    }
    return {
        "type": "object",
        "description": "An export job. `result` is set once the export succeeded, "
        "`download_url` exactly when its state is succeeded.",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def download_parts() -> dict[str, Any]:
    """downloads.parts_listing: GET /d/{token} of an export stored in several parts."""
    count = {"type": "integer", "minimum": 0}
    part = {
        "type": "object",
        "required": ["number", "url", "file_name", "rows", "bytes", "sha256"],
        "additionalProperties": False,
        "properties": {
            "number": {"type": "integer", "minimum": 1},
            "url": {"type": "string", "format": "uri", "description": "GET /d/{token}/{part}."},
            "file_name": {"type": "string"},
            "rows": count,
            "bytes": count,
            "sha256": {"type": "string"},
        },
    }
    properties: dict[str, Any] = {
        "job_id": {"type": "string", "format": "uuid"},
        "kind": {"type": "string"},
        "format": {"type": "string", "enum": list(FORMATS)},
        "rows": count,
        "bytes": count,
        "expires_at": TIMESTAMP,
        "manifest_url": {"type": ["string", "null"], "format": "uri"},
        "parts": {"type": "array", "minItems": 1, "items": part},
    }
    return {
        "type": "object",
        "description": "The files of an export stored in parts, each with its own link.",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


def kinds() -> dict[str, Any]:
    """render.kinds_json."""
    param = {
        "type": "object",
        "required": ["name", "type", "required", "default", "description"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": list(PARAM_TYPES)},
            "required": {"type": "boolean"},
            "default": {
                "description": "JSON value used when the parameter is not given; null if none."
            },
            "description": {"type": "string"},
        },
    }
    kind = {
        "type": "object",
        "required": ["name", "description", "formats", "params", "columns", "window"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "formats": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": list(FORMATS)},
            },
            "params": {"type": "array", "items": param},
            "columns": {
                "type": "array",
                "description": "The query's output columns, in order, with their types as "
                "PostgreSQL describes them.",
                "items": {
                    "type": "object",
                    "required": ["name", "type", "pg_type"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "enum": list(OUTPUT_TYPES)},
                        "pg_type": {"type": "string"},
                    },
                },
            },
            "window": {
                "type": ["object", "null"],
                "description": "Windowed kinds: they export a period (`window` in requests; a "
                "schedule's slots cut it). `default_days`: the period a request without a "
                "window gets (null: a window is required). Null for other kinds.",
                "required": ["default_days"],
                "additionalProperties": False,
                "properties": {"default_days": {"type": ["integer", "null"]}},
            },
        },
    }
    return {
        "type": "object",
        "required": ["kinds"],
        "additionalProperties": False,
        "properties": {"kinds": {"type": "array", "items": kind}},
    }


PROBLEM_SLUGS = (
    "malformed-json",
    "invalid-header",
    "unsupported-media-type",
    "payload-too-large",
    "validation",
    "unauthorized",
    "not-found",
    "idempotency-conflict",
    "not-cancellable",
    "method-not-allowed",
    "too-many-exports",
    "sns-malformed",
    "sns-unverified",
    "sns-unavailable",
    "link-invalid",
    "link-expired",
    "database-unavailable",
    "schema-out-of-date",
    "http-error",
    "internal",
)


def problem() -> dict[str, Any]:
    """problems.Problem.to_response."""
    return {
        "type": "object",
        "description": (
            f"RFC 9457 problem details. `type` is stable: {PROBLEM_BASE}<slug>, slugs: "
            + ", ".join(PROBLEM_SLUGS)
            + ". idempotency-conflict carries `job_id`, not-cancellable `state`, "
            "too-many-exports `limit`."
        ),
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri", "pattern": "^" + re.escape(PROBLEM_BASE)},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "validation only: what is wrong with each field.",
                "items": {
                    "type": "object",
                    "required": ["pointer", "detail"],
                    "additionalProperties": False,
                    "properties": {
                        "pointer": {
                            "type": "string",
                            "description": 'JSON Pointer into the body, e.g. "/params/since" '
                            '("" is the whole body); for a query parameter "/<name>".',
                        },
                        "detail": {"type": "string"},
                    },
                },
            },
            "job_id": {
                "type": "string",
                "format": "uuid",
                "description": "idempotency-conflict: the job the key was first used for.",
            },
            "state": {
                "type": "string",
                "enum": list(STATES),
                "description": "not-cancellable: the job's state.",
            },
            "limit": {
                "type": "integer",
                "description": "too-many-exports: how many exports an owner may have queued "
                "or running at once.",
            },
        },
    }


def component_schemas(catalog: Catalog) -> dict[str, Any]:
    """Every named schema: requests (one per kind) and responses, for components/schemas."""
    schemas: dict[str, Any] = {
        "ExportRequest": export_request(catalog),
        "OwnerId": OWNER_ID,
        "Notify": NOTIFY,
        "ListExportsQuery": LIST_EXPORTS_QUERY,
        "Job": job(),
        "JobList": page_of("Job"),
        "ScheduleRequest": schedule_request(catalog),
        "SchedulePatch": SCHEDULE_PATCH,
        "ListSchedulesQuery": LIST_SCHEDULES_QUERY,
        "Schedule": schedule(),
        "ScheduleList": page_of("Schedule"),
        "WebhookEndpointRequest": WEBHOOK_ENDPOINT_REQUEST,
        "WebhookEndpointPatch": WEBHOOK_ENDPOINT_PATCH,
        "WebhookEndpoint": webhook_endpoint(),
        "WebhookEndpointWithSecret": webhook_endpoint(with_secret=True),
        "WebhookEndpointList": page_of("WebhookEndpoint"),
        "WebhookDelivery": webhook_delivery(),
        "WebhookDeliveryList": page_of("WebhookDelivery"),
        "Kinds": kinds(),
        "DownloadParts": download_parts(),
        "Problem": problem(),
        "ValidationProblem": {
            "description": "422 `validation`: every bad field, each with a JSON Pointer into "
            "the request body (or the name of the query parameter).",
            "allOf": [
                ref("Problem"),
                {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "type": {"const": PROBLEM_BASE + "validation"},
                        "status": {"const": 422},
                        "errors": {"minItems": 1},
                    },
                },
            ],
        },
        "Index": {
            "type": "object",
            "required": ["name", "version", "docs", "openapi"],
            "additionalProperties": False,
            "properties": {
                "name": {"const": "exports"},
                "version": {"type": "string"},
                "docs": {"type": "string", "format": "uri", "description": "GET /v1/docs."},
                "openapi": {"type": "string", "format": "uri", "description": "This document."},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "additionalProperties": False,
            "properties": {"status": {"const": "ok"}},
        },
        "Ready": {
            "type": "object",
            "required": ["status", "schema"],
            "additionalProperties": False,
            "properties": {
                "status": {"const": "ready"},
                "schema": {"type": "string", "description": "The database's migration."},
            },
        },
    }
    for kind in catalog:
        schemas[kind_schema_name(kind)] = export_request_for(kind)
    return schemas
