"""A job through a real poller: its log lines name it and leak nothing; Sentry hears once.

Logs are captured by the production handler (app.platform.logs.make_handler) on the root logger;
Sentry events by a sentry-sdk Transport that keeps envelopes instead of sending them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sentry_sdk
from flask.testing import FlaskClient
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from app.exports.demo import seed_demo_orders
from app.platform.monitoring import init_sentry
from poller.core.dispatch import Poller
from tests.support.exports import all_settled, email_text, emails, submit
from tests.support.waiting import wait_until

OWNER_EMAIL = "owner.person@example.com"


class CollectingTransport(Transport):
    """Keeps every envelope the SDK would have sent (no network)."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        """Keep it."""
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        """The error events received so far."""
        sentry_sdk.flush()
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]


@pytest.fixture
def sentry(settings) -> Iterator[CollectingTransport]:
    """Sentry on, as exports-poller starts it, reporting into a CollectingTransport."""
    transport = CollectingTransport()
    assert init_sentry(
        dataclasses.replace(settings, sentry_dsn="https://public@sentry.invalid/1"),
        process="poller",
        transport=transport,
    )
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def test_log_lines_of_a_job_name_it_and_carry_no_email_or_link_token(
    client: FlaskClient,
    db: psycopg.Connection,
    start_poller: Callable[..., Poller],
    settings,
    log_lines,
) -> None:
    seed_demo_orders(db, 30)
    job = submit(client, notify={"email": OWNER_EMAIL})
    start_poller()

    wait_until(lambda: all_settled(db) and emails(settings), what="export and email")

    lines = log_lines()
    finished = [line for line in lines if line["message"] == "export finished"]
    sent = [line for line in lines if line["message"] == "email sent"]
    assert len(finished) == 1 and len(sent) == 1
    for line in (*finished, *sent):
        assert line["job_id"] == job["id"]
        assert line["attempt"] == 1
        assert line["tenant"] == "default"
        assert isinstance(line["outbox_id"], int)
    assert finished[0]["topic"] == "export.run"
    assert sent[0]["topic"] == "export.notify"
    token = re.search(r"/d/([^\s/]+)", email_text(emails(settings)[0]))
    assert token is not None
    everything = "\n".join(json.dumps(line) for line in lines)
    assert OWNER_EMAIL not in everything
    assert token.group(1) not in everything


def test_a_failed_attempt_is_reported_once_with_its_tags(
    client: FlaskClient,
    db: psycopg.Connection,
    start_poller: Callable[..., Poller],
    sentry: CollectingTransport,
    log_lines,
) -> None:
    job = submit(client, kind="broken_orders", notify={"email": OWNER_EMAIL})
    start_poller()

    wait_until(lambda: all_settled(db), what="the broken export and its failure email")

    (event,) = sentry.events()  # one attempt, one report; the error log line is no event
    assert {k: event["tags"][k] for k in ("job_id", "topic", "attempt", "tenant")} == {
        "job_id": job["id"],
        "topic": "export.run",
        "attempt": "1",
        "tenant": "default",
    }
    assert event["tags"]["outcome"] == "dead"
    assert OWNER_EMAIL not in json.dumps(event)
    # One ERROR line says the message died, with what a person needs to look it up.
    errors = [line for line in log_lines() if line["level"] == "error"]
    [dead] = [line for line in errors if line["message"] == "message dead"]
    assert (dead["job_id"], dead["topic"], dead["attempt"]) == (job["id"], "export.run", 1)
    assert "DivisionByZero" in dead["error"]
    assert len(errors) == 1

