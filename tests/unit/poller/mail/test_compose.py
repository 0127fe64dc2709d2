"""The ready and failed emails: both parts carry the facts, HTML is escaped, no internals leak."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from typing import Any

import pytest

from poller.mail.compose import (
    compose_failed_email,
    compose_ready_email,
    format_utc,
    human_rows,
    human_size,
)

LINK = "https://exports.example.com/d/eyJqb2IiOiIxMjMifQ.ZmFrZQ.c2lnbmF0dXJl"
JOB_ID = "0b7f3d4e-5a61-4c2b-9a0e-6f1d2c3b4a59"
SECRET_SQL = "syntax error at or near SELECT * FROM internal_billing"


def make_job(**overrides: Any) -> dict[str, Any]:
    """An exports.jobs row as the poller reads it."""
    job: dict[str, Any] = {
        "id": uuid.UUID(JOB_ID),
        "owner_id": "user-42",
        "kind": "orders",
        "params": {},
        "format": "csv.gz",
        "notify_email": "Ada Lovelace <ada@example.org>",
        "state": "succeeded",
        "result_rows": 12345,
        "result_bytes": 1_536_000,
        "result_content_type": "application/gzip",
        # 16:30 in UTC+2 is 14:30 UTC: the email must say the UTC time.
        "expires_at": datetime(2030, 6, 1, 16, 30, tzinfo=timezone(timedelta(hours=2))),
        "last_error": None,
    }
    job.update(overrides)
    return job


def parts(message: EmailMessage) -> tuple[str, str]:
    """The decoded plain-text and HTML bodies."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def test_ready_email_has_headers_and_two_parts() -> None:
    message = compose_ready_email(make_job(), link=LINK, mail_from="Exports <noreply@example.com>")

    assert message["Subject"] == "Your export is ready"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    assert message["From"] == "Exports <noreply@example.com>"
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Date"] is not None
    assert message.get_content_type() == "multipart/alternative"


def test_ready_email_states_link_size_rows_expiry_and_job_id_in_both_parts() -> None:
    message = compose_ready_email(make_job(), link=LINK, mail_from="noreply@example.com")

    for body in parts(message):
        assert LINK in body
        assert "1.5 MB" in body
        assert "12,345 rows" in body
        assert "2030-06-01 14:30 UTC" in body
        assert JOB_ID in body
        assert "orders" in body and "csv.gz" in body
    assert f'href="{LINK}"' in parts(message)[1]


def test_html_part_escapes_what_came_from_the_job() -> None:
    job = make_job(kind="<script>alert(1)</script>")
    link = "https://exports.example.com/d/tok?a=1&b=2"

    text, html = parts(compose_ready_email(job, link=link, mail_from="noreply@example.com"))

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://exports.example.com/d/tok?a=1&amp;b=2"' in html
    # Plain text is not HTML: it shows the values as they are.
    assert "<script>alert(1)</script>" in text and link in text


def test_failed_email_gives_job_id_but_never_the_internal_error() -> None:
    job = make_job(state="failed", result_rows=None, result_bytes=None, last_error=SECRET_SQL)

    message = compose_failed_email(job, mail_from="noreply@example.com")

    assert message["Subject"] == "Your export could not be produced"
    assert message["To"] == "Ada Lovelace <ada@example.org>"
    for body in parts(message):
        assert JOB_ID in body
        assert "could not produce" in body
    raw = message.as_string()
    for leak in ("syntax error", "internal_billing", "SELECT"):
        assert leak not in raw


def test_each_email_gets_its_own_message_id() -> None:
    first = compose_failed_email(make_job(), mail_from="noreply@example.com")
    second = compose_failed_email(make_job(), mail_from="noreply@example.com")

    assert first["Message-ID"] != second["Message-ID"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1.0 kB"),
        (1_536_000, "1.5 MB"),
        (999_999, "1.0 MB"),
        (7_340_032_000, "7.3 GB"),
        (5 * 10**15, "5000.0 TB"),
    ],
)
def test_human_size(size: int, expected: str) -> None:
    assert human_size(size) == expected


def test_human_rows() -> None:
    assert [human_rows(n) for n in (0, 1, 1_234_567)] == ["0 rows", "1 row", "1,234,567 rows"]


def test_format_utc_refuses_naive_times() -> None:
    assert format_utc(datetime(2030, 1, 2, 3, 4, tzinfo=UTC)) == "2030-01-02 03:04 UTC"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_utc(datetime(2030, 1, 2, 3, 4))


def test_a_windowed_export_says_which_period_in_its_time_zone() -> None:
    job = make_job(
        window_start=datetime(2024, 11, 25, 7, tzinfo=UTC),
        window_end=datetime(2024, 12, 2, 7, tzinfo=UTC),
        timezone="Europe/Berlin",
    )

    for body in parts(compose_ready_email(job, link=LINK, mail_from="noreply@example.com")):
        assert "from 25 Nov 2024 08:00 to 2 Dec 2024 08:00 (Europe/Berlin)" in body
    for body in parts(compose_ready_email(make_job(), link=LINK, mail_from="n@example.com")):
        assert "(UTC)" not in body and " from " not in body  # no window, no period


def test_an_export_in_parts_links_each_part() -> None:
    job = make_job(
        result_parts=[
            {"key": "a", "rows": 10, "bytes": 2000, "sha256": "x"},
            {"key": "b", "rows": 5, "bytes": 1000, "sha256": "y"},
        ]
    )

    text, html = parts(compose_ready_email(job, link=LINK, mail_from="noreply@example.com"))
    assert "It is in 2 files" in text
    assert f"{LINK}/1" in text and f"{LINK}/2" in text
    assert f'href="{LINK}/2"' in html
