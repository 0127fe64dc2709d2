"""Domain values as the JSON shapes in DESIGN.md (the app backend codes against them)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.exports.catalog import Catalog
from app.exports.jobs import Job
from app.exports.links import LinkSigner


def job_json(job: Job, links: LinkSigner) -> dict[str, Any]:
    """One job: state, progress, result and a download link once it succeeded."""
    result = None
    if job.result_key is not None:
        result = {
            "key": job.result_key,
            "rows": job.result_rows,
            "bytes": job.result_bytes,
            "sha256": job.result_sha256,
            "content_type": job.result_content_type,
            "expires_at": timestamp(job.expires_at),
        }
    return {
        "id": str(job.id),
        "owner_id": job.owner_id,
        "kind": job.kind,
        "params": job.params,
        "format": job.format,
        "state": job.state,
        "attempts": job.attempts,
        "progress": {"rows": job.progress_rows, "bytes": job.progress_bytes},
        "result": result,
        "download_url": links.link_for(job.id) if job.state == "succeeded" else None,
        "last_error": job.last_error,
        "schedule_id": str(job.schedule_id) if job.schedule_id else None,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }


def kinds_json(catalog: Catalog) -> dict[str, Any]:
    """The export catalog: kinds, their formats and parameters."""
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
            }
            for kind in catalog
        ]
    }


def timestamp(value: dt.datetime | None) -> str | None:
    """A time as the API writes every time: ISO 8601 in UTC with a Z (null stays null)."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
