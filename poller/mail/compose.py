"""The two emails an end user gets: "your export is ready" and "it could not be produced".

Each has a plain-text and an HTML part rendered from templates/ (HTML autoescaped). Only
what the user needs goes in: never job["last_error"], which may hold SQL or internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from app.exports.formats import zone
from app.exports.windows import Window
from poller.mail import new_message_id

_templates = Environment(
    loader=PackageLoader("poller.mail", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=False, default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def compose_ready_email(job: Mapping[str, Any], *, link: str, mail_from: str) -> EmailMessage:
    """The "your export is ready" email: what, the download link (one per file when it is in
    parts), size, rows, expiry, job id."""
    stored = job.get("result_parts") or []
    parts = [
        {
            "number": number,
            "link": f"{link}/{number}",
            "rows": human_rows(int(part["rows"])),
            "size": human_size(int(part["bytes"])),
        }
        for number, part in enumerate(stored, start=1)
    ]
    values = {
        **_common(job),
        "link": link,
        "parts": parts if len(parts) > 1 else [],
        "size": human_size(int(job["result_bytes"])),
        "rows": human_rows(int(job["result_rows"])),
        "expires": format_utc(job["expires_at"]),
    }
    return _message(job, "Your export is ready", "ready", values, mail_from)


def compose_failed_email(job: Mapping[str, Any], *, mail_from: str) -> EmailMessage:
    """The "your export could not be produced" email: the job id, no internal details."""
    return _message(job, "Your export could not be produced", "failed", _common(job), mail_from)


def human_size(size: int) -> str:
    """Bytes for people, in decimal units: 512 bytes, 1.5 kB, 20.3 MB."""
    if size < 1000:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def human_rows(rows: int) -> str:
    """A row count with thousands separators: 1 row, 12,345 rows."""
    return "1 row" if rows == 1 else f"{rows:,} rows"


def format_utc(moment: datetime) -> str:
    """An unambiguous UTC time for people: 2025-06-01 14:30 UTC."""
    if moment.tzinfo is None:
        # A naive time would be silently read as the poller's local time.
        raise ValueError("expires_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _common(job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": job["kind"],
        "format": job["format"],
        "job_id": str(job["id"]),
        "period": _period(job),
    }


def _period(job: Mapping[str, Any]) -> str:
    """A windowed job's period for people, in its time zone; "" for other jobs."""
    start, end = job.get("window_start"), job.get("window_end")
    if start is None and end is None:
        return ""
    return Window(start, end).describe(zone(job.get("timezone") or "UTC"))


def _message(
    job: Mapping[str, Any], subject: str, template: str, values: Mapping[str, Any], mail_from: str
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail_from
    message["To"] = job["notify_email"]
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = new_message_id(mail_from)
    # Lets support and SES event records tie a message back to its job.
    message["X-Export-Job-Id"] = str(job["id"])
    message.set_content(_templates.get_template(f"{template}.txt").render(values))
    message.add_alternative(
        _templates.get_template(f"{template}.html").render(values), subtype="html"
    )
    return message
