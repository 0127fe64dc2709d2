"""Error reporting: Sentry when SENTRY_DSN is set, nothing otherwise.

Both processes call `init_sentry`. The API reports unhandled errors (Flask integration,
and the `log.exception` of the catch-all problem handler); the poller reports each failed
attempt once (`report_failed_attempt`), tagged with job, topic, attempt and tenant. Every
event goes through `scrub_event` first: no notify emails, link tokens, presigned URLs,
Authorization headers or secrets leave the process.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
from sentry_sdk.transport import Transport

from app.platform.logs import current_context, redact, redact_value
from app.platform.settings import Settings
from app.platform.version import package_version
from app.queue.outbox import Message

FILTERED = "[Filtered]"
# Keys whose values never leave the process, wherever they appear in an event.
SENSITIVE_KEYS = frozenset(
    {
        "notify_email",
        "email",
        "emails",
        "to",
        "recipients",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "token",
        "secret_key",
        "password",
        "database_url",
        "source_database_url",
        "sentry_dsn",
        "download_url",
        "link",
    }
)


def release() -> str:
    """exports@<installed package version>: the release when SENTRY_RELEASE is unset."""
    return f"exports@{package_version()}"


def init_sentry(
    settings: Settings,
    *,
    process: str = "api",
    transport: Transport | type[Transport] | None = None,
) -> bool:
    """Start the Sentry SDK if SENTRY_DSN is set; True when it is on.

    `process` is "api" or "poller". In the poller, error logs are breadcrumbs only: a
    failed attempt is reported by `report_failed_attempt`, so it is reported once.
    `transport` replaces the network transport (tests).
    """
    if not settings.sentry_dsn:
        return False
    logging_events = logging.ERROR if process == "api" else None
    options: dict[str, Any] = {}
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=settings.sentry_release or release(),
        environment=settings.sentry_environment or settings.env,
        max_request_body_size="never",
        event_scrubber=EventScrubber(
            denylist=sorted({*DEFAULT_DENYLIST, *SENSITIVE_KEYS}), recursive=True
        ),
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        integrations=[
            FlaskIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging_events),
        ],
        **options,
    )
    sentry_sdk.get_global_scope().set_tag("process", process)  # every thread's events
    return True


def report_failed_attempt(message: Message, error: str, *, give_up: bool) -> None:
    """Report one failed attempt of an outbox message (call once, where it is settled).

    Uses the exception being handled, if any; tags job_id, topic, attempt, tenant.
    """
    if not sentry_sdk.is_initialized():
        return
    context = current_context()
    tags = {
        "job_id": str(message.job_id) if message.job_id else None,
        "topic": message.topic,
        "attempt": str(message.attempts),
        "outbox_id": str(message.id),
        "tenant": context.get("tenant"),
        "outcome": "dead" if give_up else "retry",
    }
    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            if value is not None:
                scope.set_tag(key, value)
        scope.set_context("outbox_message", {"max_attempts": message.max_attempts})
        # One issue per topic and error type, not one per job.
        exc = sys.exception()
        scope.fingerprint = ["poller-failure", message.topic, type(exc).__name__ if exc else "-"]
        if exc is not None:
            sentry_sdk.capture_exception(exc)
        else:
            sentry_sdk.capture_message(f"{message.topic} attempt failed: {error}", level="error")


def scrub_event(event: dict[str, Any], hint: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """before_send: blank sensitive keys and redact tokens/URLs/emails in every string."""
    return _scrub(event)


def scrub_breadcrumb(crumb: dict[str, Any], hint: Mapping[str, Any] | None = None) -> dict:
    """before_breadcrumb: the same scrubbing for breadcrumbs (log lines, HTTP calls)."""
    return _scrub(crumb)


def _scrub(value: Any, key: str | None = None) -> Any:
    if key is not None and key.lower() in SENSITIVE_KEYS:
        return FILTERED
    if isinstance(value, dict):
        return {k: _scrub(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v) for v in value)
    if isinstance(value, str):
        return redact(value)
    return redact_value(value)


def tag_request(request_id: str) -> None:
    """Tag Sentry events of the current API request with its request id (no-op when off)."""
    if sentry_sdk.is_initialized():
        sentry_sdk.set_tag("request_id", request_id)
