"""The operator console in a real browser: Debian's Chromium driven by Playwright, against
the real exports-api (gunicorn) and a real exports-poller process on the test's database.

`make test` installs Chromium when it is missing (tests/support/browser.py says how it is
found). Every test leaves screenshots under var/console-screens/ for a reviewer to look at.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect

from app.exports import jobs
from app.exports.demo import seed_demo_orders
from app.operators import sessions
from app.platform.settings import Settings
from app.schedules import store
from app.schedules.timing import Timing
from app.tenancy import clients
from tests.support.api_server import ApiServer
from tests.support.browser import screenshot
from tests.support.exports import job_ended, job_row
from tests.support.processes import start_poller_process
from tests.support.waiting import wait_until


@pytest.fixture
def operator_key(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return clients.create_client(conn, "alice", operator=True)[1]


@pytest.fixture
def poller(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real `exports-poller` process on the test's database, stopped (SIGTERM) at the end."""
    process = start_poller_process(settings, tmp_path / "poller.log")
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def app_key(database_url: str) -> str:
    """A tenant's key (acme): it must not open the console."""
    with psycopg.connect(database_url) as conn:
        return clients.create_client(conn, "acme", "acme")[1]


@pytest.fixture
def page(browser: Browser, api_server: ApiServer) -> Iterator[Page]:
    """A fresh browser context (no cookies) at laptop width, on the running API."""
    context = browser.new_context(base_url=api_server.url, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Page, key: str) -> None:
    page.goto("/console/")
    page.fill("#key", key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator("h1")).to_have_text("Overview")


def request(
    db: psycopg.Connection, kind: str, params: dict[str, object] | None = None, *,
    max_attempts: int = 1,
) -> jobs.Job:  # fmt: skip
    """A job as the API would queue it (tenant acme), committed."""
    job, _ = jobs.request_export(
        db, "acme", jobs.ExportRequest("user-1", kind, params or {}, "csv", None),
        idempotency_key=None, max_attempts=max_attempts,
    )  # fmt: skip
    db.commit()
    return job


def shows_state(page: Page, job_id: uuid.UUID, state: str) -> bool:
    """Reload the job's page; True once its state reads `state`."""
    page.goto(f"/console/jobs/{job_id}")
    return page.locator("dd .state").first.inner_text() == state


def test_an_operator_signs_in_and_a_tenant_key_is_refused(
    page: Page, api_server: ApiServer, app_key: str, operator_key: str
) -> None:
    page.goto("/console/jobs")
    expect(page).to_have_url(f"{api_server.url}/console/login?reason=required")
    screenshot(page, "login")

    page.fill("#key", app_key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.locator(".notice")).to_contain_text("tenant keys cannot open the console")

    sign_in(page, operator_key)
    expect(page.locator("header")).to_contain_text("alice")
    screenshot(page, "overview-empty")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    screenshot(page, "overview-phone")


def test_a_failed_export_shows_its_errors_and_a_retry_makes_it_succeed(
    page: Page, db: psycopg.Connection, operator_key: str, poller: subprocess.Popen
) -> None:
    db.execute("UPDATE public.test_gate SET open = false")
    db.commit()
    job = request(db, "gated_orders", max_attempts=1)
    wait_until(lambda: job_ended(db, job.id), what="the export to fail")
    sign_in(page, operator_key)

    page.goto("/console/jobs?state=failed")
    screenshot(page, "jobs")
    page.click(f"a[href='/console/jobs/{job.id}']")
    expect(page.locator("dd .state").first).to_have_text("failed")
    expect(page.locator("table.timeline")).to_contain_text("test gate is closed")
    screenshot(page, "job-failed")

    db.execute("UPDATE public.test_gate SET open = true")
    db.commit()
    page.get_by_role("button", name="Retry export", exact=True).click()
    expect(page.locator(".notice")).to_have_text("Retry: queued again")
    wait_until(lambda: shows_state(page, job.id, "succeeded"), what="the retry to succeed")
    expect(page.locator("text=Download the file")).to_be_visible()
    screenshot(page, "job-succeeded")
    page.goto("/console/actions")
    expect(page.locator("table")).to_contain_text("retry_job")
    screenshot(page, "actions")
    page.goto("/console/")
    # The chart counts how jobs ended: the retried one ended well.
    expect(page.locator(".legend")).to_contain_text("succeeded 1 · failed 0")
    screenshot(page, "overview")


def test_cancelling_a_running_export_stops_it(
    page: Page, db: psycopg.Connection, operator_key: str, poller: subprocess.Popen
) -> None:
    seed_demo_orders(db, 60, owners=1)
    job = request(db, "slow_orders", {"pause": 0.5})  # ~20 rows of user-1: 10 s
    wait_until(lambda: job_row(db, job.id)["state"] == "running", what="the export to start")
    sign_in(page, operator_key)

    page.goto(f"/console/jobs/{job.id}")
    expect(page.locator("dd .state").first).to_have_text("running")
    page.get_by_role("button", name="Cancel export", exact=True).click()

    expect(page.locator(".notice")).to_have_text("Cancel: cancelled")
    wait_until(
        lambda: db.execute(
            "SELECT count(*) = 0 AS idle FROM exports.outbox"
            " WHERE job_id = %s AND topic = 'export.run' AND done_at IS NULL AND dead_at IS NULL",
            (job.id,),
        ).fetchone()["idle"],
        what="the poller to stop the export",
    )
    assert job_row(db, job.id)["state"] == "cancelled"
    assert job_row(db, job.id)["result_key"] is None  # no file was published


def test_dead_messages_are_requeued_from_the_problems_page(
    page: Page, db: psycopg.Connection, operator_key: str, poller: subprocess.Popen
) -> None:
    job = request(db, "broken_orders", max_attempts=1)
    wait_until(lambda: job_ended(db, job.id), what="the export to fail")
    sign_in(page, operator_key)

    page.goto("/console/problems")
    expect(page.locator("section").first).to_contain_text("export.run")
    screenshot(page, "problems")
    page.select_option("select[name=topic]", "export.run")
    page.get_by_role("button", name="Requeue", exact=True).click()

    expect(page.locator(".notice")).to_have_text("Requeue dead: 1 requeued")
    # Ran again (and, the query being broken, died again): a second attempt.
    wait_until(
        lambda: db.execute(
            "SELECT attempts = 2 AND dead_at IS NOT NULL AS again FROM exports.outbox"
            " WHERE job_id = %s AND topic = 'export.run'",
            (job.id,),
        ).fetchone()["again"],
        what="the requeued export to run again",
    )


def test_a_forged_action_without_the_token_is_refused(
    page: Page, db: psycopg.Connection, operator_key: str
) -> None:
    job = request(db, "demo_orders")  # no poller: it stays queued
    sign_in(page, operator_key)

    # A page that posts the console's cancel form with the session's cookie but without
    # its CSRF token: what a forged request would be if SameSite did not stop it first.
    page.goto(f"/console/jobs/{job.id}")
    page.evaluate(
        """jobId => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = `/console/jobs/${jobId}/cancel`;
            document.body.appendChild(form);
            form.submit();
        }""",
        str(job.id),
    )

    expect(page.locator(".error")).to_contain_text("CSRF token is missing or wrong")
    screenshot(page, "refused-forged-post")
    assert job_row(db, job.id)["state"] == "queued"


def test_a_session_expires_after_twelve_hours(
    page: Page, settings: Settings, api_server: ApiServer, operator_key: str
) -> None:
    sign_in(page, operator_key)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "exports_console"]
    session = sessions.SessionCookies(settings.secret_key).loads(cookie["value"])
    assert session is not None
    issued = time.time() - sessions.SESSION_SECONDS - 60  # signed in 12 h 1 min ago
    stale = sessions.SessionCookies(settings.secret_key, clock=lambda: issued).dumps(session)
    page.context.add_cookies([{**cookie, "value": stale}])  # type: ignore[list-item]

    page.goto("/console/jobs")

    expect(page).to_have_url(f"{api_server.url}/console/login?reason=expired")
    expect(page.locator(".notice")).to_have_text("Your session ended: sign in again.")
    screenshot(page, "login-expired")


def test_schedules_pause_and_resume(
    page: Page, db: psycopg.Connection, operator_key: str
) -> None:
    schedule, _ = store.create_schedule(
        db, "acme", jobs.ExportRequest("user-1", "demo_orders", {}, "csv", None),
        Timing("0 8 * * 1", "Europe/Berlin"), enabled=True, now=store.database_now(db),
        idempotency_key=None,
    )  # fmt: skip
    db.commit()
    sign_in(page, operator_key)

    page.goto("/console/schedules")
    expect(page.locator("table")).to_contain_text("(Europe/Berlin)")
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator(".notice")).to_have_text("Pause: paused")
    screenshot(page, "schedules")
    page.get_by_role("button", name="Resume", exact=True).click()

    expect(page.locator(".notice")).to_have_text("Resume: active")
    assert store.get_schedule(db, "acme", schedule.id).state == "active"
