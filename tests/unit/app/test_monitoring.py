"""Sentry: what leaves the process is scrubbed; release and environment come from settings.

Events are captured in-process by a sentry-sdk Transport that keeps envelopes instead of
sending them (the SDK's own extension point; nothing of ours is replaced).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from flask import Flask
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from app.platform.monitoring import init_sentry, release, report_failed_attempt
from app.platform.settings import Settings
from app.queue.outbox import Message

DSN = "https://public@sentry.invalid/1"
EMAIL = "owner.person@example.com"
TOKEN = "eyJqb2JfaWQiOiIxMjMifQ.Zk9xYw.s1gnatureXYZ"
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/default/job/file.csv.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=ASIAEXAMPLE%2F20240101&X-Amz-Signature=0123456789abcdef"
)


class CollectingTransport(Transport):
    """Keeps every envelope the SDK would have sent."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        """Keep it (no network)."""
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        """The error events received so far."""
        sentry_sdk.flush()
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]


def sent_text(event: dict[str, Any]) -> str:
    """The event as JSON, minus the source lines of stack frames (this file's own code)."""
    for exception in event.get("exception", {}).get("values", []):
        for frame in exception.get("stacktrace", {}).get("frames", []):
            for key in ("pre_context", "context_line", "post_context"):
                frame.pop(key, None)
    return json.dumps(event)


@pytest.fixture
def transport() -> Iterator[CollectingTransport]:
    """Sentry switched on for this test only, reporting into a CollectingTransport."""
    collecting = CollectingTransport()
    yield collecting
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def on(transport: CollectingTransport, process: str = "poller", **settings: Any) -> None:
    """init_sentry as exports-poller / exports-api call it, with our transport."""
    assert init_sentry(
        Settings(sentry_dsn=DSN, env="test", **settings), process=process, transport=transport
    )


def test_off_without_a_dsn() -> None:
    assert init_sentry(Settings(sentry_dsn=None)) is False
    assert not sentry_sdk.is_initialized()


def test_release_and_environment_default_to_package_version_and_exports_env(transport) -> None:
    on(transport)
    sentry_sdk.capture_message("hello")

    (event,) = transport.events()
    assert event["release"] == release()
    assert event["release"].startswith("exports@")
    assert event["environment"] == "test"
    assert event["tags"]["process"] == "poller"


def test_release_and_environment_can_be_set(transport) -> None:
    on(transport, sentry_release="exports@abc123", sentry_environment="staging-eu")
    sentry_sdk.capture_message("hello")

    (event,) = transport.events()
    assert (event["release"], event["environment"]) == ("exports@abc123", "staging-eu")


def test_events_carry_no_email_token_presigned_url_or_secret(transport) -> None:
    on(transport)
    logger = logging.getLogger("tests.monitoring")
    logger.setLevel(logging.INFO)
    logger.info("mailing %s the link /d/%s", EMAIL, TOKEN)
    notify_email = EMAIL  # noqa: F841  (a local variable Sentry would serialise)
    secret_key = "super-secret-signing-key-value"  # noqa: F841
    with sentry_sdk.new_scope() as scope:
        scope.set_extra("job", {"notify_email": EMAIL, "params": {}})
        scope.set_extra("redirect", PRESIGNED)
        try:
            raise RuntimeError(f"send to {EMAIL} failed for /d/{TOKEN} via {PRESIGNED}")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)

    (event,) = transport.events()
    text = sent_text(event)
    for secret in (EMAIL, TOKEN, "X-Amz-Signature", "0123456789abcdef", "super-secret-signing"):
        assert secret not in text
    assert event["extra"]["job"]["notify_email"] == "[Filtered]"
    assert "[redacted]" in event["exception"]["values"][0]["value"]
    assert event["breadcrumbs"]["values"], "the log line should be a breadcrumb"


def test_flask_request_data_is_scrubbed(transport) -> None:
    on(transport, process="api")
    flask_app = Flask(__name__)

    @flask_app.get("/d/<token>")
    def download(token: str) -> str:
        raise RuntimeError("broken link handler")

    response = flask_app.test_client().get(
        f"/d/{TOKEN}?email={EMAIL}",
        headers={"Authorization": "Bearer ek_live_0123456789", "Cookie": "session=abc"},
    )

    assert response.status_code == 500
    (event,) = transport.events()
    text = sent_text(event)
    for secret in (TOKEN, EMAIL, "ek_live_0123456789", "session=abc"):
        assert secret not in text
    assert event["request"]["headers"]["Authorization"] == "[Filtered]"


def test_a_failed_attempt_is_one_event_tagged_with_its_message(transport) -> None:
    on(transport)
    job_id = uuid.uuid4()
    message = Message(
        id=41, topic="export.run", job_id=job_id, payload={}, attempts=3, max_attempts=5
    )
    try:
        raise TimeoutError(f"S3 slow while mailing {EMAIL}")
    except TimeoutError:
        report_failed_attempt(message, "TimeoutError: S3 slow", give_up=False)

    (event,) = transport.events()
    assert {k: event["tags"][k] for k in ("job_id", "topic", "attempt", "outbox_id")} == {
        "job_id": str(job_id),
        "topic": "export.run",
        "attempt": "3",
        "outbox_id": "41",
    }
    assert event["tags"]["outcome"] == "retry"
    assert event["exception"]["values"][0]["type"] == "TimeoutError"
    assert EMAIL not in sent_text(event)


def test_reporting_is_a_no_op_when_sentry_is_off() -> None:
    message = Message(id=1, topic="export.run", job_id=None, payload={}, attempts=1, max_attempts=1)
    report_failed_attempt(message, "boom", give_up=True)  # must not raise
    assert not sentry_sdk.is_initialized()
