"""The operator console (app/http/console.py) through Flask's test client on real
PostgreSQL: who may open it, its session cookie and CSRF token, what each action changes
and records. The same flows in a real browser: tests/acceptance/test_console_browser.py.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.exports import jobs
from app.operators import sessions
from app.platform.settings import Settings
from app.queue import outbox
from app.schedules import store
from app.schedules.timing import Timing
from app.tenancy import clients
from tests.support.operations import (
    REQUEST,
    claim,
    failed_job,
    job_with_dead_email,
    queued_job,
)


@pytest.fixture
def operator_key(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return clients.create_client(conn, "alice", operator=True)[1]


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    """A client without the tests' bearer key: what a browser sends is cookies and forms."""
    return FlaskClient(app, use_cookies=True)


def sign_in(browser: FlaskClient, key: str) -> str:
    """Sign in; the session's CSRF token, as the pages' forms carry it."""
    response = browser.post("/console/login", data={"key": key})
    assert response.status_code == 303, response.text
    return csrf_of(browser.get("/console/").text)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has no form with a CSRF token"
    return match[1]


def audit(db: psycopg.Connection) -> list[tuple[str, str, str, str]]:
    rows = db.execute(
        "SELECT operator_name, action, target, result FROM exports.operator_actions ORDER BY id"
    ).fetchall()
    return [(r["operator_name"], r["action"], r["target"], r["result"]) for r in rows]


def test_an_operator_key_signs_in_with_a_strict_http_only_cookie(
    browser: FlaskClient, operator_key: str
) -> None:
    response = browser.post("/console/login", data={"key": operator_key})

    assert response.status_code == 303 and response.location == "/console/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("exports_console=")
    assert operator_key not in cookie  # the key is checked once and never stored
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=43200"):
        assert flag in cookie
    assert "Secure" not in cookie  # tests run over plain http; see the next test
    page = browser.get("/console/")
    assert page.status_code == 200 and "alice" in page.text


def test_in_production_the_cookie_is_secure(settings: Settings, operator_key: str) -> None:
    app = create_app(dataclasses.replace(settings, env="production"))
    try:
        response = FlaskClient(app).post("/console/login", data={"key": operator_key})
        assert "; Secure" in response.headers["Set-Cookie"]
    finally:
        app.extensions["exports"].close()


def test_a_tenant_key_cannot_open_the_console(app: Flask, browser: FlaskClient) -> None:
    response = browser.post("/console/login", data={"key": app.config["TEST_API_KEY"]})

    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert "tenant keys cannot open the console" in response.text


def test_an_operator_key_cannot_call_the_tenant_api(
    browser: FlaskClient, operator_key: str
) -> None:
    response = browser.get("/v1/exports", headers={"Authorization": f"Bearer {operator_key}"})

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.json is not None and response.json["type"].endswith("operator-key")


def test_every_page_needs_a_session(browser: FlaskClient) -> None:
    for page in ("/console/", "/console/jobs", "/console/problems", "/console/actions"):
        response = browser.get(page)
        assert (response.status_code, response.location) == (
            303,
            "/console/login?reason=required",
        )


def test_a_session_ends_after_twelve_hours(
    browser: FlaskClient, settings: Settings, operator_key: str
) -> None:
    sign_in(browser, operator_key)
    cookie = browser.get_cookie("exports_console", path="/console")
    assert cookie is not None
    signed = sessions.SessionCookies(settings.secret_key).loads(cookie.value)
    assert signed is not None
    # The same session as if signed in 12 hours and a minute ago.
    issued = time.time() - sessions.SESSION_SECONDS - 60
    stale = sessions.SessionCookies(settings.secret_key, clock=lambda: issued).dumps(signed)
    browser.set_cookie("exports_console", stale, path="/console")

    response = browser.get("/console/jobs")

    assert (response.status_code, response.location) == (303, "/console/login?reason=expired")


def test_revoking_the_key_ends_its_sessions(
    browser: FlaskClient, database_url: str, operator_key: str
) -> None:
    sign_in(browser, operator_key)
    with psycopg.connect(database_url) as conn:
        clients.revoke(conn, operator_key.split("_")[1])

    assert browser.get("/console/").status_code == 303


def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    job = queued_job(db)
    db.commit()
    sign_in(browser, operator_key)

    forged = browser.post(f"/console/jobs/{job.id}/cancel", data={"csrf": "guessed"})
    missing = browser.post(f"/console/jobs/{job.id}/cancel")

    assert forged.status_code == missing.status_code == 403
    found = jobs.find_job(db, job.id)
    assert found is not None and found.state == "queued"
    assert audit(db) == []


def test_cancel_and_retry_call_the_domain_and_are_audited(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    queued, failed = queued_job(db), failed_job(db)
    db.commit()
    csrf = sign_in(browser, operator_key)

    cancelled = browser.post(f"/console/jobs/{queued.id}/cancel", data={"csrf": csrf})
    assert cancelled.status_code == 303
    assert "Cancel: cancelled" in browser.get(cancelled.location).text
    retried = browser.post(f"/console/jobs/{failed.id}/retry", data={"csrf": csrf})
    again = browser.post(f"/console/jobs/{failed.id}/retry", data={"csrf": csrf})

    assert retried.status_code == again.status_code == 303
    found = [jobs.find_job(db, job_id) for job_id in (queued.id, failed.id)]
    assert [job.state if job else None for job in found] == ["cancelled", "queued"]
    assert audit(db) == [
        ("alice", "cancel_job", str(queued.id), "cancelled"),
        ("alice", "retry_job", str(failed.id), "queued again"),
        ("alice", "retry_job", str(failed.id), "not retried: the job is queued"),
    ]
    assert "not retried: the job is queued" in browser.get("/console/actions").text


def test_requeue_dead_revives_the_topic_and_is_audited(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    job = failed_job(db, error="relation orders does not exist")
    db.commit()
    csrf = sign_in(browser, operator_key)
    assert "relation orders does not exist" in browser.get("/console/problems").text

    response = browser.post(
        "/console/dead/requeue", data={"csrf": csrf, "topic": "export.run", "since": "24h"}
    )

    assert response.status_code == 303
    assert "Requeue dead: 1 requeued" in browser.get(response.location).text
    found = jobs.find_job(db, job.id)
    assert found is not None and found.state == "queued"
    [(_, action, target, result)] = audit(db)
    assert (action, result) == ("requeue_dead", "1 requeued")
    assert target.startswith("topic=export.run since=")


def test_a_jobs_dead_email_is_requeued_from_its_page(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    job = job_with_dead_email(db)
    [notify] = [
        row["id"] for row in db.execute(
            "SELECT id FROM exports.outbox WHERE job_id = %s AND topic = 'export.notify'",
            (job.id,),
        )
    ]  # fmt: skip
    other = queued_job(db)
    db.commit()
    csrf = sign_in(browser, operator_key)
    page = browser.get(f"/console/jobs/{job.id}").text
    assert f'action="/console/jobs/{job.id}/messages/{notify}/requeue"' in page

    wrong_job = browser.post(
        f"/console/jobs/{other.id}/messages/{notify}/requeue", data={"csrf": csrf}
    )
    response = browser.post(
        f"/console/jobs/{job.id}/messages/{notify}/requeue", data={"csrf": csrf}
    )

    assert wrong_job.status_code == response.status_code == 303
    found = jobs.find_job(db, job.id)
    assert found is not None and found.email_status == "pending"
    assert [a[3] for a in audit(db)] == [
        "not requeued: it is not a dead message of this job",
        "requeued",
    ]


def test_requeue_refuses_a_window_it_does_not_offer(
    browser: FlaskClient, operator_key: str
) -> None:
    csrf = sign_in(browser, operator_key)

    response = browser.post("/console/dead/requeue", data={"csrf": csrf, "since": "1y"})

    assert response.status_code == 400


def test_the_job_page_shows_its_error_history(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    job = queued_job(db, max_attempts=3)
    message = claim(db, job.id)
    outbox.retry_message(db, message, "connection reset by peer", delay_seconds=0)
    db.commit()
    sign_in(browser, operator_key)

    page = browser.get(f"/console/jobs/{job.id}")

    assert page.status_code == 200
    assert "connection reset by peer" in page.text
    assert f'action="/console/jobs/{job.id}/cancel"' in page.text  # queued: cancellable
    assert "/retry" not in page.text


def test_jobs_are_listed_newest_first_filtered_and_paged_without_gaps(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    made = []
    for i in range(120):
        request = dataclasses.replace(REQUEST, owner_id=f"user-{i % 3}")
        job, _ = jobs.request_export(
            db, "acme" if i % 2 else "globex", request, idempotency_key=None, max_attempts=1
        )
        made.append(job)
    db.commit()
    sign_in(browser, operator_key)

    seen: list[str] = []
    page = "/console/jobs?tenant=acme"
    while page:
        text = browser.get(page).text
        seen += re.findall(r'href="/console/jobs/([0-9a-f-]{36})"', text)
        nxt = re.search(r'rel="next" href="([^"]+)"', text)
        page = nxt[1].replace("&amp;", "&") if nxt else ""

    acme = [str(j.id) for j in reversed(made) if j.tenant == "acme"]
    assert seen == acme  # 60 jobs over two pages, newest first, none twice or missing


def test_a_job_id_search_opens_the_job_and_nonsense_is_a_400(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    job = queued_job(db)
    db.commit()
    sign_in(browser, operator_key)

    assert browser.get(f"/console/jobs?q={job.id}").location == f"/console/jobs/{job.id}"
    assert browser.get("/console/jobs?q=not-a-uuid").status_code == 400
    assert browser.get("/console/jobs?state=bogus").status_code == 400
    for nul in ("tenant=a%00b", "owner=%00", "kind=demo%00"):  # PostgreSQL cannot hold NUL
        assert browser.get(f"/console/jobs?{nul}").status_code == 400, nul
    assert browser.get(f"/console/jobs/{uuid.uuid4()}").status_code == 404


def test_pause_and_resume_a_schedule(
    browser: FlaskClient, db: psycopg.Connection, operator_key: str
) -> None:
    now = store.database_now(db)
    schedule, _ = store.create_schedule(
        db, "acme", REQUEST, Timing("0 8 * * *", "Europe/Berlin"), enabled=True, now=now,
        idempotency_key=None,
    )  # fmt: skip
    db.commit()
    csrf = sign_in(browser, operator_key)
    assert "(Europe/Berlin)" in browser.get("/console/schedules").text

    paused = browser.post(f"/console/schedules/{schedule.id}/pause", data={"csrf": csrf})
    assert store.get_schedule(db, "acme", schedule.id).state == "paused"
    resumed = browser.post(f"/console/schedules/{schedule.id}/resume", data={"csrf": csrf})

    assert paused.status_code == resumed.status_code == 303
    assert store.get_schedule(db, "acme", schedule.id).state == "active"
    assert [a[1:] for a in audit(db)] == [
        ("pause_schedule", str(schedule.id), "paused"),
        ("resume_schedule", str(schedule.id), "active"),
    ]


def test_pages_forbid_framing_caching_and_foreign_scripts(
    browser: FlaskClient, operator_key: str
) -> None:
    sign_in(browser, operator_key)

    for page in ("/console/", "/console/jobs", "/console/problems", "/console/schedules",
                 "/console/actions", "/console/login"):  # fmt: skip
        response = browser.get(page)
        assert response.status_code == 200, page
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "<script" not in response.text

