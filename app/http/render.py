"""Domain values as the JSON shapes in DESIGN.md (the app backend codes against them), and
the responses every resource answers the same way: created (201/202), a keyset page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Response, jsonify

from app.exports.catalog import Catalog
from app.exports.formats import CSV_FAMILY, FileOptions
from app.exports.jobs import Job
from app.exports.links import LinkSigner
from app.http.parsing import encode_cursor
from app.notifications.webhooks import Endpoint
from app.schedules.store import Schedule


def job_json(job: Job, links: LinkSigner) -> dict[str, Any]:
    """One job: state, progress, result and a download link once it succeeded."""
    result = None
    link = links.link_for(job.id) if job.state == "succeeded" else None
    if job.result_key is not None:
        parts = job.parts
        result = {
            "key": job.result_key,
            "rows": job.result_rows,
            "bytes": job.result_bytes,
            "sha256": job.result_sha256,
            "content_type": job.result_content_type,
            "expires_at": timestamp(job.expires_at),
            "parts": [
                {
                    "number": number,
                    "key": part.key,
                    "rows": part.rows,
                    "bytes": part.bytes,
                    "sha256": part.sha256,
                    "download_url": f"{link}/{number}" if link else None,
                }
                for number, part in enumerate(parts, start=1)
            ],
            "manifest_key": job.result_key if len(parts) > 1 else None,
        }
    return {
        "id": str(job.id),
        "owner_id": job.owner_id,
        "kind": job.kind,
        "params": job.params,
        "format": job.format,
        **options_json(job.format, job.options),
        "timezone": job.timezone,
        "priority": job.priority,
        "window": (
            {"start": timestamp(job.window_start), "end": timestamp(job.window_end)}
            if job.window is not None
            else None
        ),
        "state": job.state,
        "attempts": job.attempts,
        "progress": {"rows": job.progress_rows, "bytes": job.progress_bytes},
        "result": result,
        "download_url": link,
        "last_error": job.last_error,
        "schedule_id": str(job.schedule_id) if job.schedule_id else None,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }


def options_json(file_format: str, options: FileOptions) -> dict[str, Any]:
    """The file options a job or schedule has, every default filled in."""
    return {
        "columns": list(options.columns) if options.columns is not None else None,
        "csv": options.csv.to_json() if file_format in CSV_FAMILY else None,
        "safe_cells": options.safe_cells,
        "max_part_bytes": options.max_part_bytes,
    }


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    """A schedule as the API shows it, with its next run times."""
    return {
        "id": str(schedule.id),
        "owner_id": schedule.owner_id,
        "kind": schedule.kind,
        "params": schedule.params,
        "format": schedule.format,
        **options_json(schedule.format, schedule.export.options),
        "notify": {"email": schedule.notify_email, "webhook": schedule.notify_webhook},
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "state": schedule.state,
        "window": schedule.window_mode,
        "ends_at": timestamp(schedule.ends_at),
        "max_runs": schedule.max_runs,
        "runs": schedule.runs,
        "next_run_at": timestamp(schedule.next_run_at),
        "next_runs": [timestamp(t) for t in schedule.upcoming()],
        "last_run_at": timestamp(schedule.last_run_at),
        "last_job_id": str(schedule.last_job_id) if schedule.last_job_id else None,
        "last_skip_reason": schedule.last_skip_reason,
        "created_at": timestamp(schedule.created_at),
        "updated_at": timestamp(schedule.updated_at),
    }


T = TypeVar("T")


def page(rows: Sequence[T], limit: int, to_json: Callable[[T], dict[str, Any]]) -> Response:
    """One keyset page, newest first by (created_at, id): `rows` were fetched with
    limit + 1, so a row beyond `limit` means there is a next page, whose cursor is the last
    shown row's position (rows are domain values or dict rows)."""
    shown = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last: Any = shown[-1]
        created_at, item_id = (
            (last["created_at"], last["id"])
            if isinstance(last, dict)
            else (last.created_at, last.id)
        )
        next_cursor = encode_cursor(created_at, item_id)
    return jsonify({"items": [to_json(row) for row in shown], "next_cursor": next_cursor})


def created_response(
    body: dict[str, Any], *, status: int, location: str, created: bool
) -> Response:
    """201/202 + Location for a new resource; an Idempotency-Key replay says so
    (Idempotent-Replayed: true) and answers with the status the first request got."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Location"] = location
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def webhook_endpoint_json(endpoint: Endpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """A webhook endpoint; its secret only when it was just made (create, rotate)."""
    shown: dict[str, Any] = {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "last_success_at": timestamp(endpoint.last_success_at),
        "failing_since": timestamp(endpoint.failing_since),
        "created_at": timestamp(endpoint.created_at),
        "updated_at": timestamp(endpoint.updated_at),
    }
    if with_secret:
        shown["secret"] = endpoint.secret
    return shown


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    """One webhook delivery: which event, how its last attempt went, what comes next."""
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "type": row["event_type"],
        "job_id": str(row["job_id"]) if row["job_id"] else None,
        "state": row["state"],
        "attempts": row["attempts"],
        "last_status_code": row["last_status_code"],
        "last_error": row["last_error"],
        "duration_ms": row["last_duration_ms"],
        "next_attempt_at": timestamp(row["next_attempt_at"])
        if row["state"] in ("pending", "retrying")
        else None,
        "created_at": timestamp(row["created_at"]),
        "delivered_at": timestamp(row["delivered_at"]),
    }


def kinds_json(catalog: Catalog) -> dict[str, Any]:
    """The export catalog: kinds, their formats, parameters and output columns."""
    return {
        "kinds": [
            {
                "name": kind.name,
                "description": kind.description,
                "formats": list(kind.formats),
                "params": [
                    {
                        "name": p.name,
                        "type": p.type,
                        "required": p.required,
                        "default": p.default,
                        "description": p.description,
                    }
                    for p in kind.params
                ],
                "columns": [column.to_json() for column in kind.columns],
                "window": (
                    {
                        "default_days": (
                            kind.window_default.days if kind.window_default else None
                        )
                    }
                    if kind.window
                    else None
                ),
            }
            for kind in catalog
        ]
    }


def timestamp(value: dt.datetime | None) -> str | None:
    """A time as the API writes every time: ISO 8601 in UTC with a Z (null stays null)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
