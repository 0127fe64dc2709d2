"""GET /d/<token>: the emailed link. Checks the token and the job, then hands out the file."""

from __future__ import annotations

import datetime as dt
import html

from flask import Blueprint, Response, redirect, request, send_file

from app.exports import jobs
from app.exports.links import LinkExpired, LinkInvalid
from app.http.problems import Problem
from app.platform.services import current_services

bp = Blueprint("downloads", __name__)


@bp.get("/d/<token>")
def download(token: str) -> Response:
    """302 to a fresh short-lived URL for the job's file (or the file itself, locally)."""
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
    assert job.result_key is not None and job.result_content_type is not None
    target = services.storage.download(
        job.result_key, download_filename(job), job.result_content_type
    )
    if target.redirect_url:
        response = redirect(target.redirect_url, code=302)
        response.headers["Cache-Control"] = "no-store"
        return response
    assert target.path is not None
    return send_file(
        target.path,
        mimetype=job.result_content_type,
        as_attachment=True,
        download_name=download_filename(job),
    )


def download_filename(job: jobs.Job) -> str:
    """A friendly name for the saved file, e.g. demo_orders-2026-11-22.csv.gz."""
    return f"{job.kind}-{job.created_at:%Y-%m-%d}.{job.format}"


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
