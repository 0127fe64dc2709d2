"""The OpenAPI 3.1 document of the HTTP API, built from the catalog, served at /v1/openapi.json.

Everything here mirrors what the code really does (parsing.py validates, render.py shapes,
problems.py answers errors): change them together. Notable details that JSON Schema cannot
say exactly are in the descriptions.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify

from app.catalog import FORMATS, PARAM_TYPES, Catalog, ExportKind, Param
from app.http import parsing
from app.http.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from app.http.problems import PROBLEM_BASE
from app.jobs import STATES
from app.services import current_services

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
JSON = "application/json"
_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_PARAMETERS = "#/components/parameters/"
_HEADERS = "#/components/headers/"

# Python's str.isspace() characters (what `owner_id.strip()` removes): an owner_id needs one
# character outside this class. Not regex \s: that differs (U+FEFF; U+001C-U+001F, U+0085).
_PY_WHITESPACE = r"\t-\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# PostgreSQL cannot store NUL in text: stored strings refuse it (a 422).
_NO_NUL = r"^[^\x00]*$"
# str.isprintable() over what an HTTP header can carry (ISO-8859-1).
_PRINTABLE_HEADER = r"^[\x20-\x7e\xa1-\xac\xae-\xff]+$"
# werkzeug's UUIDConverter: anything else does not match the route (404).
_UUID_PATTERN = r"^[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"
# What date.fromisoformat / datetime.fromisoformat take of RFC 3339 (no year 0, no leap second).
_DATE_PATTERN = r"^(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATETIME_PATTERN = (
    r"^(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@bp.get("/v1/openapi.json")
def openapi_json() -> Response:
    """This API's OpenAPI 3.1 document."""
    return jsonify(openapi_document(current_services().catalog))


def openapi_document(catalog: Catalog) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route, with the catalog's kinds and their params."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Exports API",
            "version": API_VERSION,
            "description": (
                "Queue data exports and follow them to a download link. JSON in and out; "
                f"every error is an RFC 9457 problem document ({PROBLEM_MEDIA_TYPE}) whose "
                f"`type` is {PROBLEM_BASE}<slug>. A method a path does not support gets 405 "
                "`method-not-allowed` with an `Allow` header; an unknown path gets 404 "
                "`not-found`; an unexpected failure gets 500 `internal` (never internals)."
            ),
        },
        "tags": [
            {"name": "exports", "description": "Export jobs and the export catalog."},
            {"name": "downloads", "description": "The emailed download links."},
            {"name": "operations", "description": "Health, readiness and metrics."},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(catalog),
            "responses": _responses(),
            "parameters": _parameters(),
            "headers": _headers(),
        },
    }


# --- paths ---------------------------------------------------------------------------------


def _paths() -> dict[str, Any]:
    job_id = {"$ref": _PARAMETERS + "JobId"}
    return {
        "/v1/exports": {
            "post": {
                "operationId": "createExport",
                "tags": ["exports"],
                "summary": "Queue an export",
                "description": (
                    "Validates the body against the catalog and queues the job (job row and "
                    "outbox message in one transaction). With an `Idempotency-Key`, the same "
                    "owner, key and body again return the first job (202, "
                    "`Idempotent-Replayed: true`) and create nothing; the same owner and key "
                    "with another body is a 409. "
                    "Checks run in this order: media type (415), body size (413), JSON "
                    "syntax (400), fields (422, every bad field listed), then the header "
                    "(400)."
                ),
                "parameters": [{"$ref": _PARAMETERS + "IdempotencyKey"}],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("ExportRequest")}},
                },
                "responses": {
                    "202": {
                        "description": "Queued (or, with a replayed Idempotency-Key, the "
                        "job the first request queued).",
                        "headers": {
                            "Location": {"$ref": _HEADERS + "Location"},
                            "Idempotent-Replayed": {"$ref": _HEADERS + "IdempotentReplayed"},
                        },
                        "content": {JSON: {"schema": _ref("Job")}},
                        "links": {
                            "GetExport": {
                                "operationId": "getExport",
                                "parameters": {"job_id": "$response.body#/id"},
                            },
                            "CancelExport": {
                                "operationId": "cancelExport",
                                "parameters": {"job_id": "$response.body#/id"},
                            },
                        },
                    },
                    "400": _problem_ref("BadRequest"),
                    "409": _problem_ref("IdempotencyConflict"),
                    "413": _problem_ref("PayloadTooLarge"),
                    "415": _problem_ref("UnsupportedMediaType"),
                    "422": _problem_ref("ValidationFailed"),
                    "500": _problem_ref("InternalError"),
                    "503": _problem_ref("DatabaseUnavailable"),
                },
            },
            "get": {
                "operationId": "listExports",
                "tags": ["exports"],
                "summary": "List exports, newest first",
                "description": (
                    "Keyset pagination: pass `next_cursor` of a page as `cursor` for the next "
                    "one. Empty `owner_id`, `state` or `cursor` are the same as absent. Any "
                    "other query parameter is a 422."
                ),
                "parameters": [
                    {
                        "name": "owner_id",
                        "in": "query",
                        "description": "Only this owner's exports.",
                        "schema": {"type": "string", "pattern": _NO_NUL},
                    },
                    {
                        "name": "state",
                        "in": "query",
                        "description": "Only exports in this state (empty: any state).",
                        "schema": {"type": "string", "enum": [*STATES, ""]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "Page size.",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": parsing.MAX_PAGE,
                            "default": parsing.DEFAULT_PAGE,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "Opaque: the `next_cursor` of the previous page. "
                        "Anything else is a 422.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "One page of exports.",
                        "content": {JSON: {"schema": _ref("JobList")}},
                    },
                    "422": _problem_ref("ValidationFailed"),
                    "500": _problem_ref("InternalError"),
                    "503": _problem_ref("DatabaseUnavailable"),
                },
            },
        },
        "/v1/exports/{job_id}": {
            "get": {
                "operationId": "getExport",
                "tags": ["exports"],
                "summary": "One export",
                "parameters": [job_id],
                "responses": {
                    "200": {"description": "The job.", "content": {JSON: {"schema": _ref("Job")}}},
                    "404": _problem_ref("NotFound"),
                    "500": _problem_ref("InternalError"),
                    "503": _problem_ref("DatabaseUnavailable"),
                },
            },
        },
        "/v1/exports/{job_id}/cancel": {
            "post": {
                "operationId": "cancelExport",
                "tags": ["exports"],
                "summary": "Cancel an export",
                "description": (
                    "queued or running → cancelled; a running export stops at its next chunk. "
                    "Cancelling a cancelled export again returns it (200). No request body."
                ),
                "parameters": [job_id],
                "responses": {
                    "200": {
                        "description": "The job, now cancelled.",
                        "content": {JSON: {"schema": _ref("Job")}},
                    },
                    "404": _problem_ref("NotFound"),
                    "409": _problem_ref("NotCancellable"),
                    "500": _problem_ref("InternalError"),
                    "503": _problem_ref("DatabaseUnavailable"),
                },
            },
        },
        "/v1/export-kinds": {
            "get": {
                "operationId": "listExportKinds",
                "tags": ["exports"],
                "summary": "The export catalog: kinds, formats, parameters",
                "responses": {
                    "200": {
                        "description": "Every kind, by name.",
                        "content": {JSON: {"schema": _ref("Kinds")}},
                    },
                    "500": _problem_ref("InternalError"),
                },
            },
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApiDocument",
                "tags": ["operations"],
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    "500": _problem_ref("InternalError"),
                },
            },
        },
        "/d/{token}": {"get": _download_operation()},
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "tags": ["operations"],
                "summary": "Liveness: the process serves requests (nothing else checked)",
                "responses": {
                    "200": {
                        "description": "Up.",
                        "content": {JSON: {"schema": _ref("Health")}},
                    },
                    "500": _problem_ref("InternalError"),
                },
            },
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "tags": ["operations"],
                "summary": "Readiness: the database answers and its schema is at this code's "
                "migration",
                "responses": {
                    "200": {
                        "description": "Ready for traffic.",
                        "content": {JSON: {"schema": _ref("Ready")}},
                    },
                    "500": _problem_ref("InternalError"),
                    "503": {
                        "description": "Not ready: `database-unavailable` (Retry-After: 5) or "
                        "`schema-out-of-date` (Retry-After: 30).",
                        "headers": {"Retry-After": {"$ref": _HEADERS + "RetryAfter"}},
                        "content": _problem_content(_ref("Problem")),
                    },
                },
            },
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["operations"],
                "summary": "Prometheus text exposition",
                "description": "Queue gauges are read from the database at scrape time; "
                "when it is away they are left out (still 200).",
                "responses": {
                    "200": {
                        "description": "Metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "500": _problem_ref("InternalError"),
                },
            },
        },
    }


def _download_operation() -> dict[str, Any]:
    page_or_problem = {
        PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")},
        "text/html": {"schema": {"type": "string"}},
    }
    file_content = {
        content_type: {"schema": {"type": "string", "contentMediaType": content_type}}
        for content_type in sorted(set(FORMATS.values()))
    }
    return {
        "operationId": "download",
        "tags": ["downloads"],
        "summary": "The emailed download link",
        "description": (
            "Checks the signed token and the job, then redirects to a fresh short-lived URL "
            "for the file (S3 storage) or sends the file itself (local storage). 404 and 410 "
            "are a small text/html page when the client prefers text/html (a browser), a "
            "problem document otherwise."
        ),
        "parameters": [
            {
                "name": "token",
                "in": "path",
                "required": True,
                "description": "The signed token from the emailed link.",
                "schema": {"type": "string", "pattern": "^[^/]+$"},
            }
        ],
        "responses": {
            "200": {
                "description": "Local storage: the file, as an attachment.",
                "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                "content": file_content,
            },
            "206": {
                "description": "Local storage: the requested byte range of the file.",
                "content": file_content,
            },
            "302": {
                "description": "S3 storage: redirect to a fresh presigned URL.",
                "headers": {
                    "Location": {"required": True, "schema": {"type": "string", "format": "uri"}},
                    "Cache-Control": {"schema": {"type": "string", "const": "no-store"}},
                },
            },
            "304": {"description": "Local storage: not modified (If-None-Match)."},
            "404": {
                "description": "`link-invalid`: the token was not made by this service "
                "(tampered, truncated, another secret).",
                "content": page_or_problem,
            },
            "410": {
                "description": "`link-expired`: the link or the file expired, or the export "
                "is no longer downloadable.",
                "content": page_or_problem,
            },
            "412": {"description": "Local storage: If-Match did not match."},
            "416": {
                "description": "Local storage: the requested range is not satisfiable "
                "(`http-error`).",
                "content": _problem_content(_ref("Problem")),
            },
            "500": _problem_ref("InternalError"),
            "503": _problem_ref("DatabaseUnavailable"),
        },
    }


# --- components ----------------------------------------------------------------------------


def _schemas(catalog: Catalog) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "ExportRequest": _export_request(catalog),
        "OwnerId": {
            "type": "string",
            "minLength": 1,
            "maxLength": parsing.MAX_OWNER_ID,
            "pattern": f"^[^\\x00]*[^{_PY_WHITESPACE}\\x00][^\\x00]*$",
            "description": "Whose export this is: not blank, at most "
            f"{parsing.MAX_OWNER_ID} characters, no NUL.",
        },
        "Notify": {
            "type": ["object", "null"],
            "description": "Where to send the download link; absent or null: no email.",
            "required": ["email"],
            "additionalProperties": False,
            "properties": {
                "email": {
                    "type": "string",
                    "format": "email",
                    "description": "Checked with email-validator (syntax only, no DNS): the "
                    "domain needs a dot and must not be a special-use name such as .test "
                    "or localhost; stored normalised.",
                }
            },
        },
        "Job": _job(),
        "JobList": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": _ref("Job")},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass as `cursor` for the next page; null on the last page.",
                },
            },
        },
        "Kinds": _kinds(),
        "Problem": _problem(),
        "ValidationProblem": {
            "description": "422 `validation`: every bad field, each with a JSON Pointer into "
            "the request body (or the name of the query parameter).",
            "allOf": [
                _ref("Problem"),
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
        schemas[_kind_schema_name(kind)] = _export_request_for(kind)
    return schemas


def _export_request(catalog: Catalog) -> dict[str, Any]:
    kinds = list(catalog)
    return {
        "type": "object",
        "description": (
            "A request for an export: one complete schema per kind (`kind` tells them apart). "
            "Unknown fields are a 422. `params` are checked against the kind's declared "
            "parameters (GET /v1/export-kinds): unknown ones are a 422, null or absent ones "
            "take the declared default, and the stored job holds every declared parameter "
            "(null when it has no value)."
        ),
        "required": ["owner_id", "kind"],
        "properties": {
            "kind": {
                "type": "string",
                "enum": [kind.name for kind in kinds],
                "description": "The export kind.",
            },
        },
        "oneOf": [_ref(_kind_schema_name(kind)) for kind in kinds],
        "discriminator": {
            "propertyName": "kind",
            "mapping": {kind.name: _SCHEMAS + _kind_schema_name(kind) for kind in kinds},
        },
    }


def _kind_schema_name(kind: ExportKind) -> str:
    return f"ExportRequest.{kind.name}"


def _export_request_for(kind: ExportKind) -> dict[str, Any]:
    """ExportRequest for one kind: its params, its formats."""
    must_give = [p.name for p in kind.params if p.required and p.default is None]
    params: dict[str, Any] = {
        "type": "object" if must_give else ["object", "null"],
        "description": "The kind's parameters"
        + ("." if must_give else "; absent or null is the same as {}."),
        "additionalProperties": False,
        "properties": {p.name: _param(p) for p in kind.params},
    }
    if must_give:
        params["required"] = must_give
    required = ["owner_id", "kind"]
    if must_give:
        required.append("params")
    fmt: dict[str, Any] = {
        "type": "string",
        "enum": list(kind.formats),
        "description": "The file format.",
    }
    if parsing.DEFAULT_FORMAT in kind.formats:
        fmt["default"] = parsing.DEFAULT_FORMAT
    else:
        required.append("format")  # the default format would be refused
    return {
        "type": "object",
        "title": kind.name,
        "description": kind.description,
        "required": required,
        "additionalProperties": False,
        "properties": {
            "owner_id": _ref("OwnerId"),
            "kind": {"const": kind.name},
            "params": params,
            "format": fmt,
            "notify": _ref("Notify"),
        },
    }


def _param(param: Param) -> dict[str, Any]:
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
    "string": {"type": "string", "maxLength": 1000, "pattern": _NO_NUL},
    "integer": {"type": "integer", "minimum": _INT64_MIN, "maximum": _INT64_MAX},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date", "pattern": _DATE_PATTERN},
    "datetime": {"type": "string", "format": "date-time", "pattern": _DATETIME_PATTERN},
}
_PARAM_NOTES = {
    "string": "A string of at most 1000 characters, without NUL.",
    "integer": "A whole JSON number, 64-bit, written without a fraction or exponent "
    "(1.0 and 1e3 are refused).",
    "number": "A JSON number.",
    "boolean": "true or false.",
    "date": "A date like 2024-01-31.",
    "datetime": "A timestamp with a time zone, like 2024-01-31T12:00:00Z.",
}


def _job() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time"}
    optional_timestamp = {"type": ["string", "null"], "format": "date-time"}
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
            "required": ["key", "rows", "bytes", "sha256", "content_type", "expires_at"],
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string"},
                "rows": count,
                "bytes": count,
                "sha256": {"type": "string", "description": "Of the stored object."},
                "content_type": {"type": "string", "enum": sorted(set(FORMATS.values()))},
                "expires_at": timestamp,
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


def _kinds() -> dict[str, Any]:
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
        "required": ["name", "description", "formats", "params"],
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
        },
    }
    return {
        "type": "object",
        "required": ["kinds"],
        "additionalProperties": False,
        "properties": {"kinds": {"type": "array", "items": kind}},
    }


def _problem() -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            "RFC 9457 problem details. `type` is stable: "
            f"{PROBLEM_BASE}<slug>, slugs: malformed-json, invalid-header, "
            "unsupported-media-type, payload-too-large, validation, not-found, "
            "idempotency-conflict (with `job_id`), not-cancellable (with `state`), "
            "method-not-allowed, link-invalid, link-expired, database-unavailable, "
            "schema-out-of-date, http-error, internal."
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
        },
    }


def _responses() -> dict[str, Any]:
    def problem(description: str, schema: str = "Problem", **headers: str) -> dict[str, Any]:
        response: dict[str, Any] = {
            "description": description,
            "content": _problem_content(_ref(schema)),
        }
        if headers:
            response["headers"] = {name: {"$ref": _HEADERS + ref} for name, ref in headers.items()}
        return response

    return {
        "BadRequest": problem(
            "`malformed-json`: the body is not UTF-8 JSON; or `invalid-header`: the "
            "Idempotency-Key is unusable."
        ),
        "NotFound": problem(
            "`not-found`: no such export for this caller (also for another tenant's export, "
            "and for an id that is not a UUID)."
        ),
        "MethodNotAllowed": problem(
            "`method-not-allowed`: the path does not support this method (any path, any "
            "undocumented method).",
            Allow="Allow",
        ),
        "IdempotencyConflict": problem(
            "`idempotency-conflict`: this Idempotency-Key was used with another body; "
            "`job_id` names the first job."
        ),
        "NotCancellable": problem(
            "`not-cancellable`: the export already ended (succeeded, failed or expired); "
            "`state` says how."
        ),
        "PayloadTooLarge": problem(
            "`payload-too-large`: the body is over the limit (EXPORTS_MAX_BODY_BYTES)."
        ),
        "UnsupportedMediaType": problem(
            "`unsupported-media-type`: the body is not sent as application/json."
        ),
        "ValidationFailed": problem(
            "`validation`: the request is well-formed but fields are wrong.",
            "ValidationProblem",
        ),
        "DatabaseUnavailable": problem(
            "`database-unavailable`: the database cannot be reached right now.",
            **{"Retry-After": "RetryAfter"},
        ),
        "InternalError": problem("`internal`: an unexpected failure (no internals shown)."),
    }


def _parameters() -> dict[str, Any]:
    return {
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                f"1 to {parsing.MAX_IDEMPOTENCY_KEY} printable characters, unique per owner. "
                "Retrying with the same key and body returns the same job; with another body, "
                "a 409. An unusable key is a 400 `invalid-header`."
            ),
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": parsing.MAX_IDEMPOTENCY_KEY,
                "pattern": _PRINTABLE_HEADER,
            },
        },
        "JobId": {
            "name": "job_id",
            "in": "path",
            "required": True,
            "description": "The export's id (a UUID with hyphens; anything else is a 404).",
            "schema": {"type": "string", "format": "uuid", "pattern": _UUID_PATTERN},
        },
    }


def _headers() -> dict[str, Any]:
    return {
        "Location": {
            "description": "The export's URL (GET /v1/exports/{job_id}).",
            "required": True,
            "schema": {"type": "string", "format": "uri-reference"},
        },
        "IdempotentReplayed": {
            "description": "Present when an Idempotency-Key replay returned an existing job.",
            "schema": {"type": "string", "const": "true"},
        },
        "RetryAfter": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        },
        "Allow": {
            "description": "The methods the path supports.",
            "required": True,
            "schema": {"type": "string"},
        },
    }


# --- helpers -------------------------------------------------------------------------------


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + schema}


def _problem_ref(response: str) -> dict[str, str]:
    return {"$ref": _RESPONSES + response}


def _problem_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": schema}}
