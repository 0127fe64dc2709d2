"""POST /v1/ses-events against a fake SNS: real signatures, certificates over real HTTPS.

The fake (tests/support/sns.py) signs SNS-shaped messages with its own RSA key and serves
the certificate from a local HTTPS server; the app trusts it through two ordinary settings
(the CA bundle and the host pattern), so the production verification path runs unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.platform import crypto
from app.platform.settings import Settings
from tests.support.sns import (
    HOST_PATTERN,
    OTHER_TOPIC_ARN,
    TOPIC_ARN,
    FakeSns,
    _key,
    ses_event,
    sns_time,
)

ADDRESS = "Someone.Else@Example.com"


@pytest.fixture
def settings(settings: Settings, fake_sns: FakeSns) -> Settings:
    """The test settings, trusting the fake SNS's topic, host and CA."""
    return dataclasses.replace(
        settings,
        sns_topic_arns=(TOPIC_ARN,),
        sns_cert_host_pattern=HOST_PATTERN,
        sns_ca_bundle=str(fake_sns.ca_file),
    )


@pytest.fixture
def sns_client(app: Flask) -> FlaskClient:
    """A client without an API key, like SNS."""
    client = app.test_client()
    client.environ_base.pop("HTTP_AUTHORIZATION", None)
    return client


def post(client: FlaskClient, document: Any) -> TestResponse:
    """Post as SNS does: text/plain, with the message type header."""
    headers = {"Content-Type": "text/plain; charset=UTF-8"}
    if isinstance(document, dict) and isinstance(document.get("Type"), str):
        headers["x-amz-sns-message-type"] = document["Type"]
    body = document if isinstance(document, bytes) else json.dumps(document)
    return client.post("/v1/ses-events", data=body, headers=headers)


def mailed_job(db: psycopg.Connection, message_id: str, address: str = ADDRESS) -> uuid.UUID:
    """A finished job whose email SES accepted under `message_id`."""
    row = db.execute(
        """
        INSERT INTO exports.jobs (owner_id, kind, format, notify_email, state, finished_at,
                                  notified_at, email_status, email_message_id)
        VALUES ('user-1', 'demo_orders', 'csv.gz', %s, 'failed', now(), now(), 'sent', %s)
        RETURNING id
        """,
        (address, message_id),
    ).fetchone()
    assert row is not None
    return row["id"]


def email_of(db: psycopg.Connection, job_id: uuid.UUID) -> dict[str, Any]:
    row = db.execute(
        "SELECT email_status, email_status_at, email_status_detail FROM exports.jobs WHERE id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    return row


def suppressions(db: psycopg.Connection) -> list[dict[str, Any]]:
    rows = db.execute("SELECT * FROM exports.email_suppressions").fetchall()
    # Stored encrypted (app/platform/crypto.py): read back as the poller would.
    opened = [{**row, "address": crypto.vault().decrypt(row["address"])} for row in rows]
    return sorted(opened, key=lambda row: row["address"])


def assert_problem(response: TestResponse, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"].endswith("/" + slug)
    return body


def test_a_permanent_bounce_marks_the_job_and_suppresses_the_address(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-bounce-1")

    response = post(sns_client, fake_sns.notification(ses_event("Bounce", "ses-bounce-1", ADDRESS)))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "recorded"
    email = email_of(db, job_id)
    assert email["email_status"] == "bounced"
    assert email["email_status_detail"] == "bounce Permanent/General"
    assert email["email_status_at"] is not None
    [row] = suppressions(db)
    assert row["address"] == "someone.else@example.com"
    assert row["address_masked"] == "s***@example.com"
    assert row["reason"] == "bounce"
    assert row["source_message_id"] == "ses-bounce-1"
    assert row["first_seen_at"] == row["last_seen_at"]


def test_a_transient_bounce_is_recorded_but_not_suppressed(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-soft-1")
    event = ses_event("Bounce", "ses-soft-1", ADDRESS, bounce_type="Transient")

    assert post(sns_client, fake_sns.notification(event)).status_code == 200

    assert email_of(db, job_id)["email_status"] == "bounced"
    assert suppressions(db) == []


def test_a_complaint_marks_the_job_and_suppresses_the_address(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-complaint-1")
    # Identity notifications say notificationType where event publishing says eventType.
    event = ses_event("Complaint", "ses-complaint-1", ADDRESS)
    event["notificationType"] = event.pop("eventType")

    assert post(sns_client, fake_sns.notification(event)).status_code == 200

    email = email_of(db, job_id)
    assert (email["email_status"], email["email_status_detail"]) == (
        "complained",
        "complaint abuse",
    )
    [row] = suppressions(db)
    assert (row["address"], row["reason"]) == ("someone.else@example.com", "complaint")


def test_a_delivery_marks_the_job_delivered_and_suppresses_nobody(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-delivery-1")

    response = post(
        sns_client, fake_sns.notification(ses_event("Delivery", "ses-delivery-1", ADDRESS))
    )

    assert response.status_code == 200
    assert email_of(db, job_id)["email_status"] == "delivered"
    assert suppressions(db) == []


def test_a_late_delivery_does_not_hide_a_complaint(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-order-1")
    post(sns_client, fake_sns.notification(ses_event("Complaint", "ses-order-1", ADDRESS)))

    response = post(
        sns_client, fake_sns.notification(ses_event("Delivery", "ses-order-1", ADDRESS))
    )

    assert response.status_code == 200
    assert response.get_json()["status_changed"] is False
    assert email_of(db, job_id)["email_status"] == "complained"


def test_a_repeated_notification_changes_nothing(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-repeat-1")
    notification = fake_sns.notification(ses_event("Bounce", "ses-repeat-1", ADDRESS))
    post(sns_client, notification)
    before = email_of(db, job_id)

    response = post(sns_client, notification)  # SNS retries with the same message

    assert response.status_code == 200
    assert response.get_json()["status_changed"] is False
    assert email_of(db, job_id) == before
    assert len(suppressions(db)) == 1


def test_an_unknown_message_id_is_accepted_and_changes_nothing(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-ours-1")

    response = post(
        sns_client, fake_sns.notification(ses_event("Bounce", "not-one-of-ours", ADDRESS))
    )

    assert response.status_code == 200
    assert response.get_json()["status"] == "unknown-message"
    assert email_of(db, job_id)["email_status"] == "sent"
    assert suppressions(db) == []


def test_signature_version_1_sha1_is_accepted(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-v1-1")
    notification = fake_sns.notification(ses_event("Delivery", "ses-v1-1", ADDRESS))
    unsigned = {k: v for k, v in notification.items() if not k.startswith("Sign")}

    response = post(sns_client, fake_sns.sign(unsigned, version="1"))

    assert response.status_code == 200
    assert email_of(db, job_id)["email_status"] == "delivered"


def test_an_sns_message_that_is_not_an_ses_event_is_ignored(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    # SES publishes this when the event destination is created.
    response = post(sns_client, fake_sns.notification("Successfully validated SNS topic"))

    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored"}


def test_a_signature_by_another_key_is_refused(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection
) -> None:
    job_id = mailed_job(db, "ses-forged-1")
    notification = fake_sns.notification(ses_event("Bounce", "ses-forged-1", ADDRESS))
    unsigned = {k: v for k, v in notification.items() if not k.startswith("Sign")}

    response = post(sns_client, fake_sns.sign(unsigned, key=_key()))

    assert_problem(response, 403, "sns-unverified")
    assert email_of(db, job_id)["email_status"] == "sent"
    assert suppressions(db) == []


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "Subject"])
def test_a_tampered_field_is_refused(
    sns_client: FlaskClient, fake_sns: FakeSns, db: psycopg.Connection, field: str
) -> None:
    job_id = mailed_job(db, "ses-tamper-1")
    notification = fake_sns.notification(
        ses_event("Delivery", "ses-other-1", ADDRESS), Subject="Amazon SES Email Event"
    )
    tampered = {
        "Message": json.dumps(ses_event("Bounce", "ses-tamper-1", ADDRESS)),
        "MessageId": str(uuid.uuid4()),
        "Timestamp": sns_time(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)),
        "Subject": "Something else",
    }[field]

    response = post(sns_client, {**notification, field: tampered})

    body = assert_problem(response, 403, "sns-unverified")
    assert "signature" in body["detail"]
    assert email_of(db, job_id)["email_status"] == "sent"


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/SimpleNotificationService.pem",
        "https://127.0.0.1:{port}/SimpleNotificationService-test.pem",  # right server, by IP
        "https://user@localhost:{port}/SimpleNotificationService-test.pem",
    ],
)
def test_a_certificate_url_off_the_sns_hosts_is_refused_unfetched(
    sns_client: FlaskClient, fake_sns: FakeSns, cert_url: str
) -> None:
    port = fake_sns.base_url.rsplit(":", 1)[1]
    notification = fake_sns.notification(ses_event("Delivery", "x", ADDRESS))
    unsigned = {k: v for k, v in notification.items() if not k.startswith("Sign")}
    visits = len(fake_sns.visits)

    response = post(sns_client, fake_sns.sign(unsigned, cert_url=cert_url.format(port=port)))

    body = assert_problem(response, 403, "sns-unverified")
    assert "SigningCertURL" in body["detail"]
    assert len(fake_sns.visits) == visits


def test_a_plain_http_certificate_url_is_refused(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    notification = fake_sns.notification(ses_event("Delivery", "x", ADDRESS))
    unsigned = {k: v for k, v in notification.items() if not k.startswith("Sign")}
    http_url = fake_sns.cert_url.replace("https://", "http://")

    response = post(sns_client, fake_sns.sign(unsigned, cert_url=http_url))

    body = assert_problem(response, 403, "sns-unverified")
    assert "https" in body["detail"]


def test_a_missing_certificate_is_refused(sns_client: FlaskClient, fake_sns: FakeSns) -> None:
    notification = fake_sns.notification(ses_event("Delivery", "x", ADDRESS))
    unsigned = {k: v for k, v in notification.items() if not k.startswith("Sign")}

    response = post(sns_client, fake_sns.sign(unsigned, cert_url=fake_sns.base_url + "/nope.pem"))

    assert_problem(response, 403, "sns-unverified")


def test_another_topic_is_refused(sns_client: FlaskClient, fake_sns: FakeSns) -> None:
    notification = fake_sns.notification(
        ses_event("Bounce", "x", ADDRESS), TopicArn=OTHER_TOPIC_ARN
    )

    body = assert_problem(post(sns_client, notification), 403, "sns-unverified")
    assert "TopicArn" in body["detail"]


def test_a_message_older_than_the_limit_is_refused(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    notification = fake_sns.notification(
        ses_event("Bounce", "x", ADDRESS), Timestamp=sns_time(two_hours_ago)
    )

    body = assert_problem(post(sns_client, notification), 403, "sns-unverified")
    assert "older" in body["detail"]


def test_a_subscription_confirmation_visits_the_subscribe_url(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    confirmation = fake_sns.subscription_confirmation()
    path = confirmation["SubscribeURL"].removeprefix(fake_sns.base_url)

    response = post(sns_client, confirmation)

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "confirmed"}
    assert path in fake_sns.visits


def test_a_subscribe_url_off_the_sns_hosts_is_not_visited(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    # Correctly signed (by "SNS"), but the URL leads elsewhere: never fetched.
    port = fake_sns.base_url.rsplit(":", 1)[1]
    confirmation = fake_sns.subscription_confirmation(
        SubscribeURL=f"https://127.0.0.1:{port}/?Action=ConfirmSubscription"
    )

    body = assert_problem(post(sns_client, confirmation), 403, "sns-unverified")
    assert "SubscribeURL" in body["detail"]
    assert not any(v.startswith("/?Action=ConfirmSubscription") and "Token" not in v
                   for v in fake_sns.visits)  # fmt: skip


def test_a_forged_subscription_confirmation_is_not_visited(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    confirmation = fake_sns.subscription_confirmation()
    unsigned = {k: v for k, v in confirmation.items() if not k.startswith("Sign")}
    path = confirmation["SubscribeURL"].removeprefix(fake_sns.base_url)

    response = post(sns_client, fake_sns.sign(unsigned, key=_key()))

    assert_problem(response, 403, "sns-unverified")
    assert path not in fake_sns.visits


def test_an_unsubscribe_confirmation_is_acknowledged_without_a_visit(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    message = fake_sns.subscription_confirmation(Type="UnsubscribeConfirmation")
    path = message["SubscribeURL"].removeprefix(fake_sns.base_url)

    response = post(sns_client, message)

    assert response.status_code == 200
    assert response.get_json() == {"status": "ignored"}
    assert path not in fake_sns.visits


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"Type": "Notification"}',
        b'{"Type": "Gossip", "Message": "hi"}',
        b'{"Type": "Notification", "Message": 5, "MessageId": "1", "Timestamp": "x",'
        b' "TopicArn": "y", "Signature": "z", "SigningCertURL": "u", "SignatureVersion": "2"}',
    ],
)
def test_a_malformed_body_is_a_400(sns_client: FlaskClient, body: bytes) -> None:
    assert_problem(post(sns_client, body), 400, "sns-malformed")


def test_a_message_type_header_that_disagrees_is_a_400(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    notification = fake_sns.notification(ses_event("Delivery", "x", ADDRESS))

    response = sns_client.post(
        "/v1/ses-events",
        data=json.dumps(notification),
        headers={"x-amz-sns-message-type": "SubscriptionConfirmation"},
    )

    assert_problem(response, 400, "sns-malformed")


def test_a_verified_bounce_without_its_message_id_is_a_400(
    sns_client: FlaskClient, fake_sns: FakeSns
) -> None:
    event = ses_event("Bounce", "x", ADDRESS)
    del event["mail"]["messageId"]

    assert_problem(post(sns_client, fake_sns.notification(event)), 400, "sns-malformed")
