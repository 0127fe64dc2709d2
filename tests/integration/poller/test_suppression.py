"""A hard bounce reported by SES (through SNS) stops the next email to that address.

The whole path, nothing stood in for but SNS itself (tests/support/sns.py): the poller
mails a job with the file mail backend, a signed SNS Bounce for that email's message id
is posted to /v1/ses-events, and the next job for the same address is not mailed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable

import psycopg
import pytest
from flask import Flask

from app.exports.demo import seed_demo_orders
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import all_settled, emails, job_row, messages, submit
from tests.support.sns import HOST_PATTERN, TOPIC_ARN, FakeSns, ses_event
from tests.support.waiting import wait_until


@pytest.fixture
def settings(settings: Settings, fake_sns: FakeSns) -> Settings:
    """The test settings, trusting the fake SNS's topic, host and CA."""
    return dataclasses.replace(
        settings,
        sns_topic_arns=(TOPIC_ARN,),
        sns_cert_host_pattern=HOST_PATTERN,
        sns_ca_bundle=str(fake_sns.ca_file),
    )


def email_status(db: psycopg.Connection, job_id: str) -> str | None:
    return job_row(db, job_id)["email_status"]


def test_a_bounced_address_is_not_mailed_again(
    app: Flask,
    db: psycopg.Connection,
    settings: Settings,
    fake_sns: FakeSns,
    start_poller: Callable[..., Poller],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    seed_demo_orders(db, 30)
    client = app.test_client()
    start_poller()
    first = submit(client, notify={"email": "Bouncer@example.com"})
    wait_until(lambda: email_status(db, first["id"]) == "sent", what="the first email")
    [sent] = emails(settings)
    message_id = job_row(db, first["id"])["email_message_id"]
    assert message_id == sent["Message-ID"]

    # SES reports a hard bounce of that email.
    sns = app.test_client()
    sns.environ_base.pop("HTTP_AUTHORIZATION", None)  # SNS has no API key
    bounce = fake_sns.notification(ses_event("Bounce", message_id, "bouncer@example.com"))
    response = sns.post("/v1/ses-events", data=json.dumps(bounce), content_type="text/plain")
    assert response.status_code == 200, response.get_json()
    assert email_status(db, first["id"]) == "bounced"

    # The next export for that address is not mailed; one for someone else is.
    second = submit(client, notify={"email": "BOUNCER@example.com"})
    other = submit(client, notify={"email": "someone@example.com"})
    wait_until(lambda: email_status(db, second["id"]) == "suppressed", what="the suppression")
    wait_until(lambda: email_status(db, other["id"]) == "sent", what="the other email")
    wait_until(lambda: all_settled(db), what="every message to settle")

    assert [m["To"] for m in emails(settings)] == ["Bouncer@example.com", "someone@example.com"]
    notify = messages(db, second["id"])[-1]
    assert notify["topic"] == "export.notify"
    assert notify["done_at"] is not None and notify["dead_at"] is None  # settled, not failed
    assert notify["attempts"] == 1
    row = job_row(db, second["id"])
    assert row["email_message_id"] is None and row["notified_at"] is None
    assert row["email_status_detail"] == "address on the suppression list"
    # Logged, without the address.
    logged = [r for r in caplog.records if r.getMessage() == "email not sent: address suppressed"]
    assert len(logged) == 1
    assert not any("bouncer@" in json.dumps(vars(r), default=str).lower() for r in logged)
