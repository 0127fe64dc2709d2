"""GET /d/<token>: the emailed link. Checks the token and the job, then hands out the file.

An export stored in several parts answers a small page instead (HTML for a browser, JSON
for `Accept: application/json`) with a link per part, /d/<token>/<n>, and one to the
manifest, /d/<token>/manifest.json.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, request, send_file

from app.exports import jobs
from app.exports.formats import zone
from app.exports.links import LinkExpired, LinkInvalid
from app.http.problems import Problem
from app.http.render import timestamp
from app.platform.services import current_services

bp = Blueprint("downloads", __name__)
MANIFEST_TYPE = "application/json"


@bp.get("/d/<token>")
def download(token: str) -> Response:
    """302 to a fresh short-lived URL for the job's file (or the file itself, locally); the
    list of parts when it has several."""
    job = _downloadable_job(token)
    if isinstance(job, Response):
        return job
    parts = job.parts
    if len(parts) == 1:
        return _hand_out(job, parts[0].key, download_filename(job))
    return _parts_page(job, current_services().links.url_of(token))


@bp.get("/d/<token>/<int:part>")
def download_part(token: str, part: int) -> Response:
    """Part `part` (from 1) of the job's file."""
    job = _downloadable_job(token)
    if isinstance(job, Response):
        return job
    parts = job.parts
    if not 1 <= part <= len(parts):
        return _page(_no_such_part(part, len(parts)))
    return _hand_out(job, parts[part - 1].key, download_filename(job, part))


@bp.get("/d/<token>/manifest.json")
def download_manifest(token: str) -> Response:
    """The manifest of a file in several parts."""
    job = _downloadable_job(token)
    if isinstance(job, Response):
        return job
    if len(job.parts) == 1:
        return _page(_no_such_part("manifest.json", 1))
    assert job.result_key is not None
    name = download_filename(job).removesuffix(f".{job.format}") + "-manifest.json"
    return _hand_out(job, job.result_key, name, MANIFEST_TYPE)


def download_filename(job: jobs.Job, part: int | None = None) -> str:
    """A friendly name for the saved file, e.g. demo_orders-2026-11-22.csv.gz, or
    demo_orders-2026-11-22-part-2-of-3.csv.gz; the date is the request's, in the job's zone."""
    day = job.created_at.astimezone(zone(job.timezone))
    stem = f"{job.kind}-{day:%Y-%m-%d}"
    if part is not None and len(job.parts) > 1:
        stem += f"-part-{part}-of-{len(job.parts)}"
    return f"{stem}.{job.format}"


def parts_listing(job: jobs.Job, link: str) -> dict[str, Any]:
    """The parts of a succeeded job with a link each under `link`, its download URL."""
    return {
        "job_id": str(job.id),
        "kind": job.kind,
        "format": job.format,
        "rows": job.result_rows,
        "bytes": job.result_bytes,
        "expires_at": timestamp(job.expires_at),
        "manifest_url": f"{link}/manifest.json" if len(job.parts) > 1 else None,
        "parts": [
            {
                "number": number,
                "url": f"{link}/{number}",
                "file_name": download_filename(job, number),
                "rows": part.rows,
                "bytes": part.bytes,
                "sha256": part.sha256,
            }
            for number, part in enumerate(job.parts, start=1)
        ],
    }


def _downloadable_job(token: str) -> jobs.Job | Response:
    """The succeeded, unexpired job the token names, or the page that says why not."""
    services = current_services()
    try:
        job_id = services.links.job_id_from(token)
    except LinkExpired:
        return _page(_gone())
    except LinkInvalid:
        return _page(
            Problem(
                404,
                "link-invalid",
                "Link not valid",
                "This download link is not valid. Check that it was copied whole.",
            )
        )
    with services.pool.connection() as conn:
        job = jobs.find_job(conn, job_id)
    now = dt.datetime.now(dt.UTC)
    if job is None or job.state != "succeeded" or job.expires_at is None or job.expires_at <= now:
        return _page(_gone())
    return job


def _hand_out(job: jobs.Job, key: str, filename: str, content_type: str | None = None) -> Response:
    """302 to a fresh presigned URL for `key` (S3), or the file itself (local storage)."""
    content_type = content_type or job.result_content_type
    assert content_type is not None
    target = current_services().storage.download(key, filename, content_type)
    if target.redirect_url:
        response = redirect(target.redirect_url, code=302)
        response.headers["Cache-Control"] = "no-store"
        return response
    assert target.path is not None
    return send_file(
        target.path, mimetype=content_type, as_attachment=True, download_name=filename
    )


def _parts_page(job: jobs.Job, link: str) -> Response:
    # The parts' links extend the one the visitor came with: no new token per visit (one
    # made in another second would differ), and they expire with it.
    listing = parts_listing(job, link)
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    if best != "text/html" or not request.accept_mimetypes.accept_html:
        response = jsonify(listing)
    else:
        items = "".join(
            f"<li><a href='{html.escape(part['url'])}' download>"
            f"{html.escape(part['file_name'])}</a> ({part['rows']:,} rows, "
            f"{part['bytes']:,} bytes)</li>"
            for part in listing["parts"]
        )
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>Your export: {len(listing['parts'])} files</title>"
            "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
            f"<h1>Your export is in {len(listing['parts'])} files</h1>"
            f"<p>{html.escape(job.kind)} as {html.escape(job.format)}: "
            f"{listing['rows']:,} rows. Download each file:</p><ol>{items}</ol>"
            f"<p><a href='{html.escape(listing['manifest_url'])}'>manifest.json</a> lists them "
            "with their sizes and SHA-256 checksums.</p></body></html>"
        )
        response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept"
    return response


def _no_such_part(part: int | str, parts: int) -> Problem:
    return Problem(
        404,
        "not-found",
        "No such file",
        f"This export has {parts} file{'s' if parts != 1 else ''}; there is no {part}.",
    )


def _gone() -> Problem:
    return Problem(
        410,
        "link-expired",
        "Link expired",
        "This download link has expired. Ask for a new export from the app.",
    )


def _page(problem: Problem) -> Response:
    """Browsers get a readable page; API clients get the problem document."""
    best = request.accept_mimetypes.best_match(["application/problem+json", "text/html"])
    if best != "text/html" or not request.accept_mimetypes.accept_html:
        return problem.to_response()
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(problem.title)}</title>"
        "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
        f"<h1>{html.escape(problem.title)}</h1><p>{html.escape(problem.detail)}</p></body></html>"
    )
    return Response(body, status=problem.status, mimetype="text/html")
