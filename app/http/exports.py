"""The /v1 JSON API: request, read, list and cancel exports; list export kinds."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request, url_for

from app.exports import jobs
from app.http import parsing, schemas
from app.http.problems import Problem, idempotency_conflict, not_found, quota_exceeded
from app.http.render import created_response, job_json, kinds_json, page
from app.http.tenancy import current_storing_tenant, current_tenant
from app.platform.services import Services, current_services

bp = Blueprint("exports", __name__, url_prefix="/v1")


@bp.post("/exports")
def create_export() -> Response:
    """Queue an export: job and outbox message in one transaction; 202 + Location."""
    services: Services = current_services()
    export = parsing.export_request(parsing.json_body(request), services.catalog)
    key = parsing.idempotency_key(request)
    try:
        with services.pool.connection() as conn:
            job, created = jobs.request_export(
                conn,
                current_storing_tenant(),
                export,
                idempotency_key=key,
                max_attempts=services.settings.max_attempts,
                max_active=services.settings.max_active_per_owner,
                dedupe_seconds=services.settings.dedupe_seconds,
                priority_max_wait=services.settings.priority_max_wait,
            )
    except jobs.QuotaExceeded as exc:
        raise quota_exceeded(exc, export.owner_id) from None
    except jobs.IdempotencyConflict as exc:
        raise idempotency_conflict("job", exc.job.id) from None
    return created_response(
        job_json(job, services.links),
        status=202,
        location=url_for("exports.get_export", job_id=job.id),
        created=created,
    )


@bp.get("/exports/<uuid:job_id>")
def get_export(job_id: uuid.UUID) -> Response:
    """One job."""
    services = current_services()
    with services.pool.connection() as conn:
        job = _job_or_404(conn, job_id)
    return jsonify(job_json(job, services.links))


@bp.get("/exports")
def list_exports() -> Response:
    """Jobs newest first, filtered by owner, state and schedule, one keyset page at a time."""
    services = current_services()
    args = parsing.list_arguments(schemas.LIST_EXPORTS_QUERY, request.args)
    with services.pool.connection() as conn:
        rows = jobs.list_jobs(
            conn,
            current_tenant(),
            owner_id=args["owner_id"],
            state=args["state"],
            schedule_id=uuid.UUID(args["schedule_id"]) if args["schedule_id"] else None,
            limit=args["limit"] + 1,
            before=args["before"],
        )
    return page(rows, args["limit"], lambda job: job_json(job, services.links))


@bp.post("/exports/<uuid:job_id>/cancel")
def cancel_export(job_id: uuid.UUID) -> Response:
    """queued/running → cancelled; 409 if the job already ended otherwise."""
    services = current_services()
    try:
        with services.pool.connection() as conn:
            job = jobs.cancel_job(conn, current_tenant(), job_id)
    except jobs.JobNotFound:
        raise not_found(f"There is no export {job_id}.") from None
    except jobs.NotCancellable as exc:
        raise Problem(
            409,
            "not-cancellable",
            "Export already ended",
            f"Export {job_id} is {exc.job.state} and can no longer be cancelled.",
            state=exc.job.state,
        ) from None
    return jsonify(job_json(job, services.links))


@bp.get("/export-kinds")
def list_kinds() -> Response:
    """The export catalog."""
    return jsonify(kinds_json(current_services().catalog))


def _job_or_404(conn, job_id: uuid.UUID) -> jobs.Job:
    try:
        return jobs.get_job(conn, current_tenant(), job_id)
    except jobs.JobNotFound:
        raise not_found(f"There is no export {job_id}.") from None
