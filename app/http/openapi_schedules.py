"""OpenAPI 3.1 paths of the schedule operations; their schemas are app/http/schemas.py's, the
ones the server validates with."""

from __future__ import annotations

from typing import Any

from app.http import schemas

JSON = "application/json"

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
        "content": {"application/problem+json": {"schema": schemas.ref("Problem")}},
    }
    common = {
        "500": schemas.response_ref("InternalError"),
        "503": schemas.response_ref("DatabaseUnavailable"),
    }
    one = {"description": "The schedule.", "content": {JSON: {"schema": schemas.ref("Schedule")}}}
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
                    "content": {JSON: {"schema": schemas.ref("ScheduleRequest")}},
                },
                "responses": {
                    "201": {
                        **one,
                        "headers": {
                            "Location": schemas.header_ref("Location"),
                            "Idempotent-Replayed": schemas.header_ref("IdempotentReplayed"),
                        },
                    },
                    "400": schemas.response_ref("BadRequest"),
                    "403": schemas.response_ref("TenantUnusable"),
                    "409": schemas.response_ref("ScheduleConflict"),
                    "413": schemas.response_ref("PayloadTooLarge"),
                    "415": schemas.response_ref("UnsupportedMediaType"),
                    "422": schemas.response_ref("ValidationFailed"),
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
                        "content": {JSON: {"schema": schemas.ref("ScheduleList")}},
                    },
                    "422": schemas.response_ref("ValidationFailed"),
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
                "summary": "Change cron, timezone, params, enabled, ends_at or max_runs",
                "parameters": [schedule_id],
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": schemas.ref("SchedulePatch")}},
                },
                "responses": {
                    "200": one,
                    "400": schemas.response_ref("BadRequest"),
                    "404": not_found,
                    "413": schemas.response_ref("PayloadTooLarge"),
                    "415": schemas.response_ref("UnsupportedMediaType"),
                    "422": schemas.response_ref("ValidationFailed"),
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
        "/v1/schedules/{schedule_id}/run": {
            "post": {
                "operationId": "runSchedule",
                "tags": ["schedules"],
                "summary": "Queue one export now with the schedule's settings",
                "description": "202 + Location + the job: the schedule's kind, params, format, "
                "file options and time zone; a windowed kind's window ends now (and starts "
                "as the schedule's next slot's would). An extra run: next_run_at, runs and "
                "max_runs are left alone, and it works on paused and ended schedules too. "
                "With an `Idempotency-Key` (unique per owner, like POST /v1/exports), the "
                "same key again returns the job it queued (`Idempotent-Replayed: true`).",
                "parameters": [schedule_id, {"$ref": "#/components/parameters/IdempotencyKey"}],
                "responses": {
                    "202": {
                        "description": "Queued (or the job a replayed key queued).",
                        "headers": {
                            "Location": schemas.header_ref("Location"),
                            "Idempotent-Replayed": schemas.header_ref("IdempotentReplayed"),
                        },
                        "content": {JSON: {"schema": schemas.ref("Job")}},
                    },
                    "400": schemas.response_ref("BadRequest"),
                    "403": schemas.response_ref("TenantUnusable"),
                    "404": not_found,
                    "409": schemas.response_ref("IdempotencyConflict"),
                    "429": schemas.response_ref("TooManyExports"),
                    **common,
                },
            },
        },
    }
