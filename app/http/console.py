"""The operator console under /console/: server-rendered pages (Jinja), no scripts.

Operators sign in with an operator key (`exports-admin create-key --operator`) once; the
session is a signed cookie (app/operators/sessions.py): HttpOnly, SameSite=Strict, Secure
outside development and tests, 12 hours. Every action is a POST carrying the session's
CSRF token, calls app/operators/console.py (the same domain functions as the CLI) and is
written to exports.operator_actions. Tenant keys cannot open it; operator keys cannot call
/v1 (app/http/auth.py).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, redirect, request

from app.exports.jobs import STATES as JOB_STATES
from app.exports.topics import EXPORT_NOTIFY, EXPORT_RUN
from app.http.parsing import text_problem
from app.http.templates import page_templates
from app.notifications.webhooks import TOPIC as WEBHOOK_TOPIC
from app.operators import console, reads, sessions
from app.platform.services import current_services
from app.schedules import store

bp = Blueprint("console", __name__, url_prefix="/console")

COOKIE = "exports_console"
# Pages never end up in a cache, a frame or another site's referrer; they load only their
# own stylesheet (the chart is inline SVG) and post forms only to themselves.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
TOPICS = (EXPORT_RUN, EXPORT_NOTIFY, WEBHOOK_TOPIC)
REQUEUE_WINDOWS = {"1h": 1, "24h": 24, "7d": 24 * 7, "all": None}  # hours
# Reachable without a session: the login form, signing in, and the stylesheet.
_PUBLIC = frozenset({"console.login", "console.sign_in", "console.stylesheet"})

_templates = page_templates("templates/console")


def _when(value: dt.datetime | None) -> str:
    """A timestamp in UTC, to the second; empty for none."""
    if value is None:
        return ""
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _local(value: dt.datetime, zone: str) -> str:
    """A timestamp in a schedule's time zone, with the zone's name."""
    return f"{value.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z} ({zone})"


def _seconds(value: dt.timedelta | None) -> str:
    """A duration as seconds (one decimal below a minute), or a dash for none."""
    if value is None:
        return "—"
    total = value.total_seconds()
    if total < 60:
        return f"{total:.1f} s"
    minutes, secs = divmod(int(total), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _show(value: Any) -> str:
    """A job column's value for the page: timestamps in UTC, JSON for structures."""
    if isinstance(value, dt.datetime):
        return _when(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


_templates.filters.update(when=_when, local=_local, seconds=_seconds, show=_show)


def _cookies() -> sessions.SessionCookies:
    return sessions.SessionCookies(current_services().settings.secret_key)


def render(template: str, *, status: int = 200, **context: Any) -> Response:
    """A console page: the template with the signed-in operator and the notice, if any."""
    body = _templates.get_template(template).render(
        operator=g.get("operator"),
        notice=request.args.get("notice"),
        path=request.path,
        **context,
    )
    return Response(body, status=status, mimetype="text/html", headers=PAGE_HEADERS)


def _to(page: str, **query: str) -> Response:
    """303 See Other to a console page (after a POST: reloading does not post again)."""
    target = page + ("?" + urlencode(query) if query else "")
    return redirect(target, code=303)  # type: ignore[return-value]


@bp.before_request
def require_operator() -> Response | None:
    """Every page but the login form needs a live session; every POST its CSRF token."""
    if request.endpoint in _PUBLIC:
        return None
    session = _cookies().loads(request.cookies.get(COOKIE))
    if session is not None:
        with current_services().pool.connection() as conn:
            if not sessions.key_still_valid(conn, session):
                session = None
    if session is None:
        reason = "expired" if request.cookies.get(COOKIE) else "required"
        response = _to("/console/login", reason=reason)
        response.delete_cookie(COOKIE, path="/console")
        return response
    g.operator = session
    if request.method == "POST" and not session.csrf_matches(request.form.get("csrf")):
        return render(
            "refused.html",
            status=403,
            title="Refused",
            detail="This form was not sent by your console page (its CSRF token is missing "
            "or wrong). Open the page again and repeat the action.",
        )
    return None


@bp.get("/static/console.css")
def stylesheet() -> Response:
    """The console's one stylesheet."""
    css = _templates.loader.get_source(_templates, "console.css")[0]
    return Response(css, mimetype="text/css", headers={"Cache-Control": "max-age=3600"})


@bp.get("/login")
def login() -> Response:
    """The sign-in form."""
    messages = {
        "expired": "Your session ended: sign in again.",
        "required": "Sign in with an operator key.",
        "signed-out": "Signed out.",
    }
    message = messages.get(request.args.get("reason", ""))
    return render("login.html", title="Sign in", message=message)


@bp.post("/login")
def sign_in() -> Response:
    """Check the operator key once; a session cookie stands for it from then on."""
    key = request.form.get("key", "").strip()
    with current_services().pool.connection() as conn:
        session = sessions.sign_in(conn, key) if key else None
    if session is None:
        return render(
            "login.html",
            status=401,
            title="Sign in",
            message="That is not an operator key (tenant keys cannot open the console; "
            "exports-admin create-key --operator makes one).",
        )
    cookies = _cookies()
    response = _to("/console/")
    response.set_cookie(
        COOKIE,
        cookies.dumps(session),
        max_age=cookies.seconds,
        path="/console",
        httponly=True,
        secure=current_services().settings.is_production,
        samesite="Strict",
    )
    return response


@bp.post("/logout")
def sign_out() -> Response:
    """Forget the session cookie."""
    response = _to("/console/login", reason="signed-out")
    response.delete_cookie(COOKIE, path="/console")
    return response


@bp.get("/")
def overview() -> Response:
    """Queue health per topic, pollers, jobs by state (24 h), endings per minute (1 h)."""
    with current_services().pool.connection() as conn:
        health = reads.queue_health(conn)
        pollers = reads.workers(conn)
        by_state = reads.jobs_by_state(conn, hours=24)
        minutes = console.finished_per_minute(conn)
    return render(
        "overview.html",
        title="Overview",
        health=health,
        pollers=pollers,
        by_state=by_state,
        states=JOB_STATES,
        chart=chart(minutes),
    )


def chart(minutes: list[dict[str, Any]], *, width: int = 600, height: int = 120) -> dict[str, Any]:
    """Bars for succeeded and failed jobs per minute, scaled to the busiest minute."""
    peak = max([1, *(m["succeeded"] + m["failed"] for m in minutes)])
    step = width / max(1, len(minutes))
    bars = []
    for index, minute in enumerate(minutes):
        ok = minute["succeeded"] * height / peak
        bad = minute["failed"] * height / peak
        bars.append(
            {
                "x": round(index * step, 1),
                "width": round(max(1.0, step - 1), 1),
                "ok_y": round(height - ok, 1),
                "ok_height": round(ok, 1),
                "bad_y": round(height - ok - bad, 1),
                "bad_height": round(bad, 1),
                "label": f"{minute['minute']:%H:%M} UTC: {minute['succeeded']} succeeded, "
                f"{minute['failed']} failed",
            }
        )
    return {
        "width": width,
        "height": height,
        "peak": peak,
        "bars": bars,
        "succeeded": sum(m["succeeded"] for m in minutes),
        "failed": sum(m["failed"] for m in minutes),
    }


@bp.get("/jobs")
def jobs_list() -> Response:
    """Every tenant's jobs, newest first, filtered, 50 a page (keyset paging)."""
    args = request.args
    search = args.get("q", "").strip()
    if search:
        try:
            return _to(f"/console/jobs/{uuid.UUID(search)}")
        except ValueError:
            return render(
                "jobs.html", status=400, title="Jobs", page=None, filters=_filter_values(),
                states=JOB_STATES, error=f"{search!r} is not a job id (a UUID)",
            )  # fmt: skip
    texts = {key: args[key] for key in ("tenant", "owner", "kind") if args.get(key)}
    if problems := {key: p for key, text in texts.items() if (p := text_problem(text))}:
        return render(
            "jobs.html", status=400, title="Jobs", page=None, filters={}, states=JOB_STATES,
            error="; ".join(f"{key} {problem}" for key, problem in problems.items()),
        )  # fmt: skip
    try:
        filters = console.JobFilters(
            state=_choice(args.get("state"), JOB_STATES),
            tenant=args.get("tenant") or None,
            owner_id=args.get("owner") or None,
            kind=args.get("kind") or None,
            schedule_id=uuid.UUID(args["schedule"]) if args.get("schedule") else None,
        )
        before = (
            (dt.datetime.fromisoformat(args["before_at"]), uuid.UUID(args["before_id"]))
            if args.get("before_at") and args.get("before_id")
            else None
        )
    except ValueError as exc:
        return render(
            "jobs.html", status=400, title="Jobs", page=None, filters=_filter_values(),
            states=JOB_STATES, error=f"a filter is not valid: {exc}",
        )  # fmt: skip
    with current_services().pool.connection() as conn:
        page = console.jobs_page(conn, filters, before)
    next_link = None
    if page.next_before is not None:
        at, last_id = page.next_before
        next_link = "/console/jobs?" + urlencode(
            {**_filter_values(), "before_at": at.isoformat(), "before_id": str(last_id)}
        )
    return render(
        "jobs.html", title="Jobs", page=page, filters=_filter_values(), states=JOB_STATES,
        error=None, next_link=next_link,
    )  # fmt: skip


def _filter_values() -> dict[str, str]:
    keys = ("state", "tenant", "owner", "kind", "schedule")
    return {key: request.args[key] for key in keys if request.args.get(key)}


def _choice(value: str | None, allowed: tuple[str, ...]) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise ValueError(f"state must be one of {', '.join(allowed)}")
    return value


@bp.get("/jobs/<uuid:job_id>")
def job_page(job_id: uuid.UUID) -> Response:
    """One job: its fields, timeline with the error history, messages, deliveries, link."""
    services = current_services()
    with services.pool.connection() as conn:
        job = console.job(conn, job_id)
        if job is None:
            return render(
                "refused.html", status=404, title="No such job",
                detail=f"No job has the id {job_id}.",
            )  # fmt: skip
        timeline = reads.job_timeline(conn, job_id)
        messages = reads.job_messages(conn, job_id)
        deliveries = console.job_deliveries(conn, job_id)
    # A fresh signed link to the file, like the one the owner was sent.
    link = services.links.link_for(job_id) if job["state"] == "succeeded" else None
    return render(
        "job.html", title=f"Job {job_id}", job=job, timeline=timeline, messages=messages,
        deliveries=deliveries, link=link,
    )  # fmt: skip


@bp.post("/jobs/<uuid:job_id>/cancel")
def cancel(job_id: uuid.UUID) -> Response:
    """Cancel a queued or running export."""
    with current_services().pool.connection() as conn:
        result = console.cancel_job(conn, g.operator, job_id)
    return _to(f"/console/jobs/{job_id}", notice=f"Cancel: {result}")


@bp.post("/jobs/<uuid:job_id>/retry")
def retry(job_id: uuid.UUID) -> Response:
    """Run a failed or cancelled export again."""
    services = current_services()
    with services.pool.connection() as conn:
        result = console.retry_job(
            conn, g.operator, job_id, max_attempts=services.settings.max_attempts
        )
    return _to(f"/console/jobs/{job_id}", notice=f"Retry: {result}")


@bp.post("/jobs/<uuid:job_id>/messages/<int:message_id>/requeue")
def requeue_message(job_id: uuid.UUID, message_id: int) -> Response:
    """Bring one dead message of the job back (its export, or its email)."""
    with current_services().pool.connection() as conn:
        result = console.requeue_message(conn, g.operator, job_id, message_id)
    return _to(f"/console/jobs/{job_id}", notice=f"Requeue: {result}")


@bp.get("/problems")
def problems() -> Response:
    """Stuck messages, the last day's failures, dead messages per topic."""
    with current_services().pool.connection() as conn:
        stuck = reads.stuck(conn)
        failures = reads.recent_failures(conn, limit=50)
        dead = console.dead_by_topic(conn)
    return render(
        "problems.html", title="Problems", stuck=stuck, failures=failures, dead=dead,
        topics=TOPICS, windows=REQUEUE_WINDOWS,
    )  # fmt: skip


@bp.post("/dead/requeue")
def requeue_dead() -> Response:
    """Requeue every dead message of a topic that died within the chosen window."""
    topic = request.form.get("topic") or None
    window = request.form.get("since", "24h")
    if (topic is not None and topic not in TOPICS) or window not in REQUEUE_WINDOWS:
        return render(
            "refused.html", status=400, title="Not requeued",
            detail="Choose a topic and one of the offered windows.",
        )  # fmt: skip
    hours = REQUEUE_WINDOWS[window]
    with current_services().pool.connection() as conn:
        since = None
        if hours is not None:
            since = store.database_now(conn) - dt.timedelta(hours=hours)
        result = console.requeue_dead(conn, g.operator, topic=topic, since=since)
    return _to("/console/problems", notice=f"Requeue dead: {result}")


@bp.get("/schedules")
def schedules_list() -> Response:
    """Every tenant's schedules: next run in its time zone, last job, pause/resume."""
    with current_services().pool.connection() as conn:
        rows = console.schedules(conn)
    return render("schedules.html", title="Schedules", schedules=rows)


@bp.post("/schedules/<uuid:schedule_id>/<any(pause, resume):change>")
def schedule_enabled(schedule_id: uuid.UUID, change: str) -> Response:
    """Pause or resume a schedule."""
    with current_services().pool.connection() as conn:
        result = console.set_schedule_enabled(
            conn, g.operator, schedule_id, enabled=change == "resume",
            now=store.database_now(conn),
        )  # fmt: skip
    return _to("/console/schedules", notice=f"{change.title()}: {result}")


@bp.get("/actions")
def audit_log() -> Response:
    """What operators did in the console, newest first."""
    with current_services().pool.connection() as conn:
        rows = console.actions(conn)
    return render("actions.html", title="Operator actions", actions=rows)

