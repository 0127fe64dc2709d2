"""The /v1/schedules API: create, read, list, change and delete recurring exports."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for
from psycopg import Connection

from app.exports.catalog import Catalog, ParamsInvalid
from app.exports.jobs import ExportRequest
from app.http import parsing
from app.http.openapi_schedules import SCHEDULE_PATCH, SCHEDULE_REQUEST, body_errors
from app.http.problems import Problem, invalid, not_found
from app.http.render import timestamp
from app.http.tenancy import current_storing_tenant, current_tenant
from app.platform.services import current_services
from app.schedules import store, timing
from app.schedules.store import Schedule, ScheduleChanges
from app.schedules.timing import Timing

bp = Blueprint("schedules", __name__, url_prefix="/v1")

_EXPORT_FIELDS = ("owner_id", "kind", "params", "format", "notify")
_LIST_ARGS = {"owner_id", "limit", "cursor"}


@bp.post("/schedules")
def create_schedule() -> Response:
    """Create a schedule; 201 + Location (an Idempotency-Key replay returns the first one)."""
    services = current_services()
    export, timing, enabled = _schedule_request(parsing.json_body(request), services.catalog)
    key = parsing.idempotency_key(request)
    try:
        with services.pool.connection() as conn:
            schedule, created = store.create_schedule(
                conn,
                current_storing_tenant(),
                export,
                timing,
                enabled=enabled,
                now=store.database_now(conn),
                idempotency_key=key,
                max_per_owner=services.settings.max_schedules_per_owner,
            )
    except store.TooManySchedules as exc:
        raise Problem(
            409,
            "too-many-schedules",
            "Too many schedules",
            f"Owner {export.owner_id!r} already has {exc.count} schedules (the limit is "
            f"{exc.limit}); delete one before creating another.",
            limit=exc.limit,
        ) from None
    except store.ScheduleIdempotencyConflict as exc:
        raise Problem(
            409,
            "idempotency-conflict",
            "Idempotency key reused",
            "This Idempotency-Key was already used with a different request body "
            f"(schedule {exc.schedule.id}); use a new key for a new schedule.",
            schedule_id=str(exc.schedule.id),
        ) from None
    response = jsonify(schedule_json(schedule))
    response.status_code = 201
    response.headers["Location"] = url_for("schedules.get_schedule", schedule_id=schedule.id)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/schedules/<uuid:schedule_id>")
def get_schedule(schedule_id: uuid.UUID) -> Response:
    """One schedule with its next run times."""
    with current_services().pool.connection() as conn:
        schedule = _schedule_or_404(conn, schedule_id)
    return jsonify(schedule_json(schedule))


@bp.get("/schedules")
def list_schedules() -> Response:
    """Schedules newest first, optionally one owner's, one keyset page at a time."""
    owner_id, limit, before = _list_arguments(request.args)
    with current_services().pool.connection() as conn:
        page = store.list_schedules(
            conn, current_tenant(), owner_id=owner_id, limit=limit + 1, before=before
        )
    next_cursor = None
    if len(page) > limit:
        page = page[:limit]
        next_cursor = parsing.encode_cursor(page[-1].created_at, page[-1].id)
    return jsonify({"items": [schedule_json(s) for s in page], "next_cursor": next_cursor})


@bp.patch("/schedules/<uuid:schedule_id>")
def update_schedule(schedule_id: uuid.UUID) -> Response:
    """Change cron, timezone, params or enabled; the next runs are recomputed as needed."""
    services = current_services()
    body = parsing.json_body(request)
    errors = body_errors(SCHEDULE_PATCH, body)
    if not errors:
        for field, check in (
            ("cron", timing.cron_problem),
            ("timezone", timing.timezone_problem),
        ):
            if field in body and (problem := check(body[field])):
                errors[field] = problem
    with services.pool.connection() as conn:
        schedule = _schedule_or_404(conn, schedule_id)
        params = None
        if not errors and "params" in body:
            params = _params(schedule.kind, body["params"], services.catalog, errors)
        if errors:
            raise invalid(errors)
        changes = ScheduleChanges(
            cron=body.get("cron"),
            timezone=body.get("timezone"),
            params=params,
            enabled=body.get("enabled"),
        )
        try:
            schedule = store.update_schedule(
                conn, current_tenant(), schedule_id, changes, now=store.database_now(conn)
            )
        except timing.ScheduleInvalid as exc:
            raise invalid(exc.errors) from None
    return jsonify(schedule_json(schedule))


@bp.delete("/schedules/<uuid:schedule_id>")
def delete_schedule(schedule_id: uuid.UUID) -> Response:
    """Delete a schedule (204); its jobs stay. Unknown (or already deleted): 404."""
    with current_services().pool.connection() as conn:
        try:
            store.delete_schedule(conn, current_tenant(), schedule_id)
        except store.ScheduleNotFound:
            raise not_found(f"There is no schedule {schedule_id}.") from None
    return Response(status=204)


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    """A schedule as the API shows it, with its next run times."""
    return {
        "id": str(schedule.id),
        "owner_id": schedule.owner_id,
        "kind": schedule.kind,
        "params": schedule.params,
        "format": schedule.format,
        "notify": {"email": schedule.notify_email} if schedule.notify_email else None,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "next_run_at": timestamp(schedule.next_run_at),
        "next_runs": [timestamp(t) for t in schedule.upcoming()],
        "last_run_at": timestamp(schedule.last_run_at),
        "last_job_id": str(schedule.last_job_id) if schedule.last_job_id else None,
        "last_skip_reason": schedule.last_skip_reason,
        "created_at": timestamp(schedule.created_at),
        "updated_at": timestamp(schedule.updated_at),
    }


# --- parsing -------------------------------------------------------------------------------


def _schedule_request(body: Any, catalog: Catalog) -> tuple[ExportRequest, Timing, bool]:
    """Validate a POST /v1/schedules body; a 422 lists every bad field."""
    errors = body_errors(SCHEDULE_REQUEST, body)
    if "" in errors:  # not an object: nothing else to check
        raise invalid(errors)
    export = None
    try:  # the export fields exactly as POST /v1/exports checks them (catalog, email, ...)
        export = parsing.export_request({k: body[k] for k in _EXPORT_FIELDS if k in body}, catalog)
    except Problem as problem:
        for field, detail in problem.errors.items():
            errors.setdefault(field, detail)
    for field, check in (
        ("cron", timing.cron_problem),
        ("timezone", timing.timezone_problem),
    ):
        if field not in errors and field in body and (problem_text := check(body[field])):
            errors[field] = problem_text
    schedule_timing = None
    if not errors:
        try:
            schedule_timing = Timing(body["cron"], body["timezone"])
        except timing.ScheduleInvalid as exc:
            errors.update(exc.errors)
    if errors:
        raise invalid(errors)
    assert export is not None and schedule_timing is not None
    return export, schedule_timing, body.get("enabled", True)


def _params(kind_name: str, params: Any, catalog: Catalog, errors: dict[str, str]) -> Any:
    kind = catalog.get(kind_name)
    if kind is None:
        errors["params"] = f"cannot be checked: kind {kind_name!r} is no longer in the catalog"
        return None
    try:
        return kind.validate_params(params or {})
    except ParamsInvalid as exc:
        errors.update(exc.errors)
        return None


def _list_arguments(
    args: Mapping[str, str],
) -> tuple[str | None, int, tuple[dt.datetime, uuid.UUID] | None]:
    errors: dict[str, str] = {}
    for name in sorted(set(args) - _LIST_ARGS):
        errors[name] = "is not a known query parameter"
    owner_id = args.get("owner_id") or None
    if owner_id is not None and (problem := parsing.text_problem(owner_id)):
        errors["owner_id"] = problem
    limit = parsing.DEFAULT_PAGE
    if "limit" in args:
        try:
            limit = int(args["limit"])
        except ValueError:
            errors["limit"] = "must be a whole number"
        else:
            if not 1 <= limit <= parsing.MAX_PAGE:
                errors["limit"] = f"must be between 1 and {parsing.MAX_PAGE}"
    before = None
    if args.get("cursor"):
        try:
            before = parsing.decode_cursor(args["cursor"])
        except ValueError:
            errors["cursor"] = "is not a cursor this API returned"
    if errors:
        raise invalid(errors)
    return owner_id, limit, before


def _schedule_or_404(conn: Connection, schedule_id: uuid.UUID) -> Schedule:
    try:
        return store.get_schedule(conn, current_tenant(), schedule_id)
    except store.ScheduleNotFound:
        raise not_found(f"There is no schedule {schedule_id}.") from None
