"""The /v1/schedules API: create, read, list, change and delete recurring exports."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request, url_for
from psycopg import Connection

from app.exports import jobs
from app.http import parsing, schemas
from app.http.problems import (
    Problem,
    idempotency_conflict,
    invalid,
    not_found,
    quota_exceeded,
)
from app.http.render import created_response, job_json, page, schedule_json
from app.http.tenancy import current_storing_tenant, current_tenant
from app.platform.services import current_services
from app.schedules import store
from app.schedules.store import Schedule
from app.schedules.timing import ScheduleInvalid

bp = Blueprint("schedules", __name__, url_prefix="/v1")


@bp.post("/schedules")
def create_schedule() -> Response:
    """Create a schedule; 201 + Location (an Idempotency-Key replay returns the first one)."""
    services = current_services()
    spec = parsing.schedule_request(parsing.json_body(request), services.catalog)
    export = spec.export
    key = parsing.idempotency_key(request)
    try:
        with services.pool.connection() as conn:
            schedule, created = store.create_schedule(
                conn,
                current_storing_tenant(),
                export,
                spec.timing,
                enabled=spec.enabled,
                now=store.database_now(conn),
                idempotency_key=key,
                max_per_owner=services.settings.max_schedules_per_owner,
                window_mode=spec.window_mode,
                ends=spec.ends,
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
        raise idempotency_conflict("schedule", exc.schedule.id) from None
    return created_response(
        schedule_json(schedule),
        status=201,
        location=url_for("schedules.get_schedule", schedule_id=schedule.id),
        created=created,
    )


@bp.get("/schedules/<uuid:schedule_id>")
def get_schedule(schedule_id: uuid.UUID) -> Response:
    """One schedule with its next run times."""
    with current_services().pool.connection() as conn:
        schedule = _schedule_or_404(conn, schedule_id)
    return jsonify(schedule_json(schedule))


@bp.get("/schedules")
def list_schedules() -> Response:
    """Schedules newest first, optionally one owner's, one keyset page at a time."""
    args = parsing.list_arguments(schemas.LIST_SCHEDULES_QUERY, request.args)
    with current_services().pool.connection() as conn:
        rows = store.list_schedules(
            conn,
            current_tenant(),
            owner_id=args["owner_id"],
            limit=args["limit"] + 1,
            before=args["before"],
        )
    return page(rows, args["limit"], schedule_json)


@bp.patch("/schedules/<uuid:schedule_id>")
def update_schedule(schedule_id: uuid.UUID) -> Response:
    """Change cron, timezone, params, enabled, ends_at or max_runs; the next runs are
    recomputed as needed."""
    services = current_services()
    body = parsing.json_body(request)
    with services.pool.connection() as conn:
        schedule = _schedule_or_404(conn, schedule_id)
        changes = parsing.schedule_changes(body, services.catalog.get(schedule.kind))
        try:
            schedule = store.update_schedule(
                conn, current_tenant(), schedule_id, changes, now=store.database_now(conn)
            )
        except ScheduleInvalid as exc:
            raise invalid({schemas.pointer_to(f): d for f, d in exc.errors.items()}) from None
    return jsonify(schedule_json(schedule))


@bp.post("/schedules/<uuid:schedule_id>/run")
def run_schedule(schedule_id: uuid.UUID) -> Response:
    """Queue one export now with the schedule's settings (its window ending now); 202 +
    Location + the job. An Idempotency-Key replay returns the job it made."""
    services = current_services()
    key = parsing.idempotency_key(request)
    with services.pool.connection() as conn:
        schedule = _schedule_or_404(conn, schedule_id)
        try:
            job, created = store.run_now(
                conn,
                schedule,
                now=store.database_now(conn),
                idempotency_key=key,
                max_attempts=services.settings.max_attempts,
                max_active=services.settings.max_active_per_owner,
            )
        except jobs.QuotaExceeded as exc:
            raise quota_exceeded(exc, schedule.owner_id) from None
        except jobs.IdempotencyConflict as exc:
            raise idempotency_conflict("job", exc.job.id) from None
    return created_response(
        job_json(job, services.links),
        status=202,
        location=url_for("exports.get_export", job_id=job.id),
        created=created,
    )


@bp.delete("/schedules/<uuid:schedule_id>")
def delete_schedule(schedule_id: uuid.UUID) -> Response:
    """Delete a schedule (204); its jobs stay. Unknown (or already deleted): 404."""
    with current_services().pool.connection() as conn:
        try:
            store.delete_schedule(conn, current_tenant(), schedule_id)
        except store.ScheduleNotFound:
            raise not_found(f"There is no schedule {schedule_id}.") from None
    return Response(status=204)


def _schedule_or_404(conn: Connection, schedule_id: uuid.UUID) -> Schedule:
    try:
        return store.get_schedule(conn, current_tenant(), schedule_id)
    except store.ScheduleNotFound:
        raise not_found(f"There is no schedule {schedule_id}.") from None
