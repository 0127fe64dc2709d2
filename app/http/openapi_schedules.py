"""OpenAPI 3.1 paths of the schedule operations; their schemas are app/http/schemas.py's, the
ones the server validates with."""

from __future__ import annotations

from typing import Any

from app.http import schemas

JSON = "application/json"
_SCHEMAS = "#/components/schemas/"
_RESPONSES = "#/components/responses/"
_HEADERS = "#/components/headers/"

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
                "parameters": schemas.query_parameters(schemas.LIST_SCHEDULES_QUERY),
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


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": _SCHEMAS + schema}


def _response(name: str) -> dict[str, str]:
    return {"$ref": _RESPONSES + name}
