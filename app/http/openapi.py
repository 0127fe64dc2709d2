"""The OpenAPI 3.1 document of the HTTP API: /v1/openapi.json, and as a page at /v1/docs.

Generated, not kept by hand beside the code: every request and response schema is one of
schemas.py's objects, the very ones parsing.py validates requests with. This module puts
paths, responses, parameters and headers around them; those mirror exports.py,
downloads.py, health.py, problems.py and auth.py (test_openapi.py and test_fuzz.py hold
the document to the running app).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from app.exports.catalog import Catalog
from app.exports.formats import FORMATS
from app.http import docs, openapi_schedules, openapi_webhooks, schemas
from app.http.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from app.http.problems import PROBLEM_BASE
from app.platform.services import current_services
from app.platform.version import package_version

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
_PARAMETERS = "#/components/parameters/"
_HEADERS = "#/components/headers/"
# auth.py guards every path under /v1/ except this blueprint's (the document and its page).
SECURED_PREFIX = "/v1/"
# ses_events checks the SNS signature instead (SNS cannot send a key).
PUBLIC_PATHS = frozenset({"/v1/openapi.json", "/v1/docs", "/v1/ses-events"})
BEARER = "bearerAuth"
_ref = schemas.ref


@bp.get("/v1/openapi.json")
def openapi_json() -> Response:
    """This API's OpenAPI 3.1 document."""
    return jsonify(openapi_document(current_services().catalog))


@bp.get("/v1/docs")
def docs_page() -> Response:
    """This API's reference as one self-contained HTML page, rendered from the document."""
    page = docs.render(openapi_document(current_services().catalog))
    return Response(page, mimetype="text/html")


def openapi_document(catalog: Catalog) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route, with the catalog's kinds and their params."""
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Exports API",
            "version": package_version(),  # the package's: one version everywhere
            "description": (
                "Queue data exports and follow them to a download link. JSON in and out; "
                f"every error is an RFC 9457 problem document ({PROBLEM_MEDIA_TYPE}) whose "
                f"`type` is {PROBLEM_BASE}<slug>. Every /v1 operation but this document and "
                "its page needs `Authorization: Bearer <API key>` (else 401 `unauthorized`). "
                "A method a path does not support gets 405 `method-not-allowed` with an "
                "`Allow` header; an unknown path gets 404 `not-found`; an unexpected failure "
                "gets 500 `internal` (never internals). Request bodies and query arguments "
                "are validated against the schemas below (JSON Schema 2020-12), then by the "
                "few checks a schema cannot express, which each description states."
            ),
        },
        "tags": [
            {"name": "exports", "description": "Export jobs and the export catalog."},
            {"name": "schedules", "description": "Recurring exports."},
            {"name": "webhooks", "description": "Where the app hears that its exports ended."},
            {"name": "downloads", "description": "The emailed download links."},
            {"name": "email-events", "description": "SES delivery events, posted by SNS."},
            {"name": "operations", "description": "Health, readiness, metrics, this document."},
        ],
        "security": [{BEARER: []}],
        "paths": _paths(),
        "components": {
            "schemas": schemas.component_schemas(catalog),
            "responses": _responses(),
            "parameters": _parameters(),
            "headers": _headers(),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (exports-admin create-key); it names the "
                    "tenant whose exports the request sees.",
                }
            },
        },
    }
    # Other modules' paths and schemas merge in here, before the security pass below.
    _merge(document, openapi_schedules.paths())
    _merge(document, openapi_webhooks.paths())
    _apply_security(document["paths"])
    return document


def _merge(document: dict[str, Any], paths: dict[str, Any]) -> None:
    """Add another module's paths (a path must not be documented twice)."""
    assert not set(paths) & set(document["paths"]), "a path is documented twice"
    document["paths"].update(paths)


def _apply_security(paths: dict[str, Any]) -> None:
    """Secured operations may answer 401, 403 to an operator's key (and 503: the key is
    looked up in the database); the open ones say `security: []`."""
    for path, item in paths.items():
        for operation in item.values():
            if path.startswith(SECURED_PREFIX) and path not in PUBLIC_PATHS:
                responses = operation["responses"]
                responses.setdefault("401", schemas.response_ref("Unauthorized"))
                responses.setdefault("403", schemas.response_ref("OperatorKey"))
                responses.setdefault("503", schemas.response_ref("DatabaseUnavailable"))
                operation["responses"] = dict(sorted(responses.items()))
            else:
                operation["security"] = []


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
                    "400": schemas.response_ref("BadRequest"),
                    "403": schemas.response_ref("TenantUnusable"),
                    "409": schemas.response_ref("IdempotencyConflict"),
                    "413": schemas.response_ref("PayloadTooLarge"),
                    "415": schemas.response_ref("UnsupportedMediaType"),
                    "422": schemas.response_ref("ValidationFailed"),
                    "429": schemas.response_ref("TooManyExports"),
                    "500": schemas.response_ref("InternalError"),
                    "503": schemas.response_ref("DatabaseUnavailable"),
                },
            },
            "get": {
                "operationId": "listExports",
                "tags": ["exports"],
                "summary": "List exports, newest first",
                "description": (
                    "Keyset pagination: pass `next_cursor` of a page as `cursor` for the next "
                    "one. Empty `owner_id`, `state` or `cursor` are the same as absent. Any "
                    "other query parameter is a 422 (schema: ListExportsQuery)."
                ),
                "parameters": schemas.query_parameters(schemas.LIST_EXPORTS_QUERY),
                "responses": {
                    "200": {
                        "description": "One page of exports.",
                        "content": {JSON: {"schema": _ref("JobList")}},
                    },
                    "422": schemas.response_ref("ValidationFailed"),
                    "500": schemas.response_ref("InternalError"),
                    "503": schemas.response_ref("DatabaseUnavailable"),
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
                    "404": schemas.response_ref("NotFound"),
                    "500": schemas.response_ref("InternalError"),
                    "503": schemas.response_ref("DatabaseUnavailable"),
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
                    "404": schemas.response_ref("NotFound"),
                    "409": schemas.response_ref("NotCancellable"),
                    "500": schemas.response_ref("InternalError"),
                    "503": schemas.response_ref("DatabaseUnavailable"),
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
                    "500": schemas.response_ref("InternalError"),
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
                    "500": schemas.response_ref("InternalError"),
                },
            },
        },
        "/v1/docs": {
            "get": {
                "operationId": "getDocs",
                "tags": ["operations"],
                "summary": "This document as a human-readable HTML page",
                "responses": {
                    "200": {
                        "description": "One self-contained page: operations, parameters, "
                        "responses, schemas and problem types.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "500": schemas.response_ref("InternalError"),
                },
            },
        },
        "/v1/ses-events": {"post": _ses_events_operation()},
        "/d/{token}": {"get": _download_operation()},
        "/d/{token}/{part}": {"get": _download_operation(part=True)},
        "/d/{token}/manifest.json": {"get": _download_operation(manifest=True)},
        "/": {
            "get": {
                "operationId": "index",
                "tags": ["operations"],
                "summary": "Where to start: links to the docs page and this document",
                "responses": {
                    "200": {
                        "description": "The service's name, version and documentation links.",
                        "content": {JSON: {"schema": _ref("Index")}},
                    },
                    "500": schemas.response_ref("InternalError"),
                },
            },
        },
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
                    "500": schemas.response_ref("InternalError"),
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
                    "500": schemas.response_ref("InternalError"),
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
                    "500": schemas.response_ref("InternalError"),
                },
            },
        },
    }


def _ses_events_operation() -> dict[str, Any]:
    signed = ["Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion"]
    message = {
        "type": "object",
        "description": "An Amazon SNS message (Notification, SubscriptionConfirmation or "
        "UnsubscribeConfirmation) whose Message is an SES event. Trusted only when signed by "
        "SNS for an allowed TopicArn, with a fresh Timestamp (checked in that order).",
        "required": [*signed, "Signature", "SigningCertURL"],
        "properties": {name: {"type": "string"} for name in [*signed, "Signature"]}
        | {"SigningCertURL": {"type": "string", "format": "uri"}},
    }
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    return {
        "operationId": "receiveSesEvent",
        "tags": ["email-events"],
        "summary": "SES delivery, bounce and complaint events, delivered by Amazon SNS",
        "description": "No API key: SNS signs its messages instead. Any content type (SNS "
        "sends text/plain). A repeated or unknown message is a 200 that changes nothing.",
        "requestBody": {
            "required": True,
            "content": {"text/plain": {"schema": message}, JSON: {"schema": message}},
        },
        "responses": {
            "200": {
                "description": "Recorded, confirmed or ignored.",
                "content": {JSON: {"schema": status}},
            },
            "400": {
                "description": "`sns-malformed`: not an SNS message, or an SES event we "
                "cannot read.",
                "content": _problem_content(_ref("Problem")),
            },
            "403": {
                "description": "`sns-unverified`: not signed by SNS, another topic, or stale.",
                "content": _problem_content(_ref("Problem")),
            },
            "413": schemas.response_ref("PayloadTooLarge"),
            "500": schemas.response_ref("InternalError"),
            "503": {
                "description": "`sns-unavailable` (the SNS certificate could not be fetched; "
                "SNS retries) or `database-unavailable`.",
                "headers": {"Retry-After": {"$ref": _HEADERS + "RetryAfter"}},
                "content": _problem_content(_ref("Problem")),
            },
        },
    }


def _download_operation(*, part: bool = False, manifest: bool = False) -> dict[str, Any]:
    """GET /d/{token}: the file or the list of its parts; /d/{token}/{part}: one part;
    /d/{token}/manifest.json: the manifest of a file in parts."""
    page_or_problem = {
        PROBLEM_MEDIA_TYPE: {"schema": _ref("Problem")},
        "text/html": {"schema": {"type": "string"}},
    }
    content_types = sorted({f.content_type for f in FORMATS.values()})
    if manifest:
        content_types = ["application/json"]
    file_content = {
        content_type: {"schema": {"type": "string", "contentMediaType": content_type}}
        for content_type in content_types
    }
    token = {
        "name": "token",
        "in": "path",
        "required": True,
        "description": "The signed token from the emailed link.",
        "schema": {"type": "string", "pattern": "^[^/]+$"},
    }
    parameters = [token]
    if part:
        parameters.append(
            {
                "name": "part",
                "in": "path",
                "required": True,
                "description": "The part's number, from 1 (404 past the last).",
                "schema": {"type": "integer", "minimum": 1},
            }
        )
    if part:
        operation_id, summary = "downloadPart", "One file of an export stored in parts"
    elif manifest:
        operation_id, summary = "downloadManifest", "The manifest of an export in parts"
    else:
        operation_id, summary = "download", "The emailed download link"
    ok: dict[str, Any] = {
        "description": "Local storage: the file, as an attachment.",
        "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
        "content": file_content,
    }
    if not part and not manifest:
        ok = {
            "description": "Local storage: the file, as an attachment. An export in several "
            "parts: the list of its parts instead (JSON for `Accept: application/json`, "
            "else a small HTML page), each with its own link.",
            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
            "content": {
                **file_content,
                "application/json": {"schema": _ref("DownloadParts")},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    return {
        "operationId": operation_id,
        "tags": ["downloads"],
        "summary": summary,
        "description": (
            "Checks the signed token and the job, then redirects to a fresh short-lived URL "
            "for the file (S3 storage) or sends the file itself (local storage). 404 and 410 "
            "are a small text/html page when the client prefers text/html (a browser), a "
            "problem document otherwise."
        ),
        "parameters": parameters,
        "responses": {
            "200": ok,
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
                "(tampered, truncated, another secret); `not-found`: no such part.",
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
            "500": schemas.response_ref("InternalError"),
            "503": schemas.response_ref("DatabaseUnavailable"),
        },
    }


# --- components ----------------------------------------------------------------------------


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
        "OperatorKey": problem(
            "`operator-key`: an operator's key, which opens the console (/console/), not "
            "this API: call it with a tenant's key."
        ),
        "TenantUnusable": problem(
            "`tenant-unusable`: the API key's tenant cannot name a storage folder (a key made "
            "before tenant names were checked); ask the operator for a new key. Or "
            "`operator-key`: an operator's key, which opens the console (/console/), not "
            "this API."
        ),
        "ScheduleConflict": problem(
            "`idempotency-conflict`: this Idempotency-Key was used with another body "
            "(`schedule_id` names the first schedule); or `too-many-schedules`: the owner "
            "already has as many schedules as allowed (`limit`, EXPORTS_MAX_SCHEDULES_PER_OWNER)."
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
        "Unauthorized": problem(
            "`unauthorized`: no `Authorization: Bearer <key>`, or the key is unknown or revoked.",
            **{"WWW-Authenticate": "WwwAuthenticate"},
        ),
        "TooManyExports": problem(
            "`too-many-exports`: the owner already has as many exports queued or running as "
            "allowed (`limit`); retry after Retry-After seconds.",
            **{"Retry-After": "RetryAfter"},
        ),
    }


def _parameters() -> dict[str, Any]:
    return {
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                f"1 to {schemas.MAX_IDEMPOTENCY_KEY} printable characters, unique per owner. "
                "Retrying with the same key and body returns the same job; with another body, "
                "a 409. An unusable key is a 400 `invalid-header`."
            ),
            "schema": schemas.IDEMPOTENCY_KEY,
        },
        "JobId": {
            "name": "job_id",
            "in": "path",
            "required": True,
            "description": "The export's id (a UUID with hyphens; anything else is a 404).",
            "schema": schemas.JOB_ID,
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
        "WwwAuthenticate": {
            "description": 'The Bearer challenge (RFC 6750), with error="invalid_token" '
            "for a key that is not valid.",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer "},
        },
        "Allow": {
            "description": "The methods the path supports.",
            "required": True,
            "schema": {"type": "string"},
        },
    }


# --- helpers -------------------------------------------------------------------------------


def _problem_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": schema}}
