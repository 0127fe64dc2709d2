"""OpenAPI 3.1 paths and schemas of the schedule operations, and the request validation.

The request-body schemas here are the ones app/http/store.py validates with (JSON Schema
draft 2020-12), so the document cannot drift from what the server accepts. What JSON Schema
cannot say (the kind's params, a cron expression croniter accepts, a time zone zoneinfo
knows) is checked afterwards and documented in the descriptions.
"""

from __future__ import annotations

from typing import Any

from app.http import parsing
from app.http.schemas import validate
from app.schedules.timing import MAX_CRON, MAX_TIMEZONE, UPCOMING_RUNS

JSON = "application/json"
_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_HEADERS = "#/components/headers/"
_NO_NUL = r"^[^\x00]*$"

_CRON = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_CRON,
    "description": "5 fields: minute hour day-of-month month day-of-week (croniter syntax, "
    "e.g. `0 8 * * mon`, `0 0 1 * *`, `0 8 L * *` for the last day of the month), read in "
    "`timezone`. A time skipped by a DST change fires once, right after the jump; a "
    "repeated time fires once (its first occurrence) unless the hour field is `*`.",
}
_TIMEZONE = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TIMEZONE,
    "description": "An IANA time zone name, e.g. `Europe/Berlin`, `America/New_York`, `UTC`.",
}
_PARAMS = {
    "type": ["object", "null"],
    "description": "The kind's parameters, checked against the catalog (GET "
    "/v1/export-kinds) like POST /v1/exports; absent or null is the same as {}.",
}

SCHEDULE_REQUEST: dict[str, Any] = {
    "type": "object",
    "description": "A recurring export: every slot of `cron` in `timezone` queues the export "
    "(POST /v1/exports's fields). Unknown fields are a 422.",
    "required": ["owner_id", "kind", "cron", "timezone"],
    "additionalProperties": False,
    "properties": {
        "owner_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": parsing.MAX_OWNER_ID,
            "pattern": _NO_NUL,
            "description": "Whose data each export holds: not blank, no NUL.",
        },
        "kind": {"type": "string", "description": "An export kind of the catalog."},
        "params": _PARAMS,
        "format": {
            "type": "string",
            "default": parsing.DEFAULT_FORMAT,
            "description": "A file format the kind offers.",
        },
        "notify": {
            "type": ["object", "null"],
            "description": "Where each export's link is emailed; absent or null: no email.",
            "required": ["email"],
            "additionalProperties": False,
            "properties": {"email": {"type": "string", "format": "email"}},
        },
        "cron": _CRON,
        "timezone": _TIMEZONE,
        "enabled": {
            "type": "boolean",
            "default": True,
            "description": "false: created paused.",
        },
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
        "cron": _CRON,
        "timezone": _TIMEZONE,
        "params": _PARAMS,
        "enabled": {"type": "boolean"},
    },
}


def body_errors(schema: dict[str, Any], body: Any) -> dict[str, str]:
    """Every way `body` breaks `schema`, as {dotted field: what is wrong} (parsing.py's form).

    schemas.validate() (shared with POST /v1/exports) finds them as JSON Pointers;
    problems.invalid() turns the dotted fields back into pointers ("notify.email" →
    "/notify/email"); the first error per field wins.
    """
    return {
        pointer[1:].replace("/", "."): detail for pointer, detail in validate(schema, body).items()
    }


# --- the document --------------------------------------------------------------------------


def paths() -> dict[str, Any]:
    """The /v1/schedules operations, for openapi_document()."""
    schedule_id = {
        "name": "schedule_id",
        "in": "path",
        "required": True,
        "description": "The schedule's id (a UUID with hyphens; anything else is a 404).",
        "schema": {"type": "string", "format": "uuid"},
    }
    not_found = {
        "description": "`not-found`: no such schedule for this caller (also another tenant's).",
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }
    common = {
        "500": _response("InternalError"),
        "503": _response("DatabaseUnavailable"),
    }
    one = {"description": "The schedule.", "content": {JSON: {"schema": _ref("Schedule")}}}
    return {
        "/v1/schedules": {
            "post": {
                "operationId": "createSchedule",
                "tags": ["schedules"],
                "summary": "Create a recurring export",
                "description": "201 + Location. With an `Idempotency-Key`, the same owner, key "
                "and body again return the first schedule (201, `Idempotent-Replayed: "
                "true`); another body is a 409.",
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("ScheduleRequest")}},
                },
                "responses": {
                    "201": {
                        **one,
                        "headers": {
                            "Location": {"$ref": _HEADERS + "Location"},
                            "Idempotent-Replayed": {"$ref": _HEADERS + "IdempotentReplayed"},
                        },
                    },
                    "400": _response("BadRequest"),
                    "403": _response("TenantUnusable"),
                    "409": _response("ScheduleConflict"),
                    "413": _response("PayloadTooLarge"),
                    "415": _response("UnsupportedMediaType"),
                    "422": _response("ValidationFailed"),
                    **common,
                },
            },
            "get": {
                "operationId": "listSchedules",
                "tags": ["schedules"],
                "summary": "List schedules, newest first",
                "parameters": [
                    {
                        "name": "owner_id",
                        "in": "query",
                        "description": "Only this owner's schedules.",
                        "schema": {"type": "string", "pattern": _NO_NUL},
                    },
                    {
                        "name": "limit",
                        "in": "query",
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
                        "description": "Opaque: the `next_cursor` of the previous page.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "One page of schedules.",
                        "content": {JSON: {"schema": _ref("ScheduleList")}},
                    },
                    "422": _response("ValidationFailed"),
                    **common,
                },
            },
        },
        "/v1/schedules/{schedule_id}": {
            "get": {
                "operationId": "getSchedule",
                "tags": ["schedules"],
                "summary": "One schedule, with its next run times",
                "parameters": [schedule_id],
                "responses": {"200": one, "404": not_found, **common},
            },
            "patch": {
                "operationId": "updateSchedule",
                "tags": ["schedules"],
                "summary": "Change cron, timezone, params or enabled",
                "parameters": [schedule_id],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("SchedulePatch")}},
                },
                "responses": {
                    "200": one,
                    "400": _response("BadRequest"),
                    "404": not_found,
                    "413": _response("PayloadTooLarge"),
                    "415": _response("UnsupportedMediaType"),
                    "422": _response("ValidationFailed"),
                    **common,
                },
            },
            "delete": {
                "operationId": "deleteSchedule",
                "tags": ["schedules"],
                "summary": "Delete a schedule (its jobs stay, with schedule_id null)",
                "parameters": [schedule_id],
                "responses": {
                    "204": {"description": "Deleted."},
                    "404": not_found,
                    **common,
                },
            },
        },
    }


def schemas() -> dict[str, Any]:
    """Component schemas of the schedule operations, for openapi_document()."""
    timestamp = {"type": "string", "format": "date-time"}
    optional_timestamp = {"type": ["string", "null"], "format": "date-time"}
    properties: dict[str, Any] = {
        "id": {"type": "string", "format": "uuid"},
        "owner_id": {"type": "string"},
        "kind": {"type": "string"},
        "params": {"type": "object"},
        "format": {"type": "string"},
        "notify": {
            "type": ["object", "null"],
            "required": ["email"],
            "additionalProperties": False,
            "properties": {"email": {"type": "string"}},
        },
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "enabled": {"type": "boolean"},
        "next_run_at": {
            **optional_timestamp,
            "description": "UTC; null while disabled.",
        },
        "next_runs": {
            "type": "array",
            "maxItems": UPCOMING_RUNS,
            "items": timestamp,
            "description": f"The next {UPCOMING_RUNS} run times (UTC); empty while disabled.",
        },
        "last_run_at": {**optional_timestamp, "description": "The last slot fired (UTC)."},
        "last_job_id": {"type": ["string", "null"], "format": "uuid"},
        "last_skip_reason": {
            "type": ["string", "null"],
            "enum": ["owner_quota", None],
            "description": "Why the last slot queued no job: `owner_quota` when the owner "
            "already had EXPORTS_MAX_ACTIVE_PER_OWNER exports queued or running. Null when "
            "it queued `last_job_id`.",
        },
        "created_at": timestamp,
        "updated_at": timestamp,
    }
    return {
        "ScheduleRequest": SCHEDULE_REQUEST,
        "SchedulePatch": SCHEDULE_PATCH,
        "Schedule": {
            "type": "object",
            "description": "A recurring export. Slots missed while no poller ran fire once, "
            "for the most recent one. Jobs it queues carry its id as `schedule_id`.",
            "required": list(properties),
            "additionalProperties": False,
            "properties": properties,
        },
        "ScheduleList": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": _ref("Schedule")},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    }


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + schema}


def _response(name: str) -> dict[str, str]:
    return {"$ref": _RESPONSES + name}
