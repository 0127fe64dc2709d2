"""SNS message checks that need no network: canonical strings, URLs, topics, age, shape.

Every message here is refused before any certificate would be fetched (the verifier checks
the cheap things first); signatures over real HTTPS are in
tests/integration/app/http/test_ses_events.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from app.notifications.ses_feedback import MalformedEvent, parse_ses_event
from app.notifications.sns import SnsRejected, SnsVerifier, canonical_string

TOPIC = "arn:aws:sns:us-east-1:123456789012:exports-ses-events"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"


def notification(**overrides: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": TOPIC,
        "Message": "hello",
        "Timestamp": "2026-11-22T11:59:00.000Z",
        "SignatureVersion": "2",
        "Signature": "AAAA",
        "SigningCertURL": CERT_URL,
        **overrides,
    }


@pytest.fixture
def verifier() -> SnsVerifier:
    return SnsVerifier(topic_arns=[TOPIC], max_age_seconds=3600)


def refused(verifier: SnsVerifier, document: Any) -> SnsRejected:
    with pytest.raises(SnsRejected) as caught:
        verifier.verify(document, now=NOW)
    return caught.value


def test_canonical_string_of_a_notification_per_aws_docs() -> None:
    document = notification(Subject="Hi", UnsubscribeURL="https://x", Extra="ignored")

    assert canonical_string(document) == (
        "Message\nhello\nMessageId\nm-1\nSubject\nHi\n"
        f"Timestamp\n2026-11-22T11:59:00.000Z\nTopicArn\n{TOPIC}\nType\nNotification\n"
    )


def test_canonical_string_of_a_notification_without_subject_leaves_it_out() -> None:
    assert "Subject" not in canonical_string(notification())


@pytest.mark.parametrize("message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_canonical_string_of_a_confirmation_per_aws_docs(message_type: str) -> None:
    document = notification(
        Type=message_type, SubscribeURL="https://s", Token="t", Subject="not signed"
    )

    assert canonical_string(document) == (
        "Message\nhello\nMessageId\nm-1\nSubscribeURL\nhttps://s\n"
        "Timestamp\n2026-11-22T11:59:00.000Z\nToken\nt\n"
        f"TopicArn\n{TOPIC}\nType\n{message_type}\n"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
        "https://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem",  # hosts are case-insensitive
    ],
)
def test_sns_hosts_are_accepted(verifier: SnsVerifier, url: str) -> None:
    verifier.check_sns_url(url, "SigningCertURL")


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
        "https://evilsns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us_east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:bad/x.pem",
        "https://[::1/x.pem",
        "file:///etc/passwd",
        "",
    ],
)
def test_other_urls_are_refused(verifier: SnsVerifier, url: str) -> None:
    with pytest.raises(SnsRejected) as caught:
        verifier.check_sns_url(url, "SigningCertURL")
    assert caught.value.status == 403


def test_a_topic_not_on_the_allow_list_is_refused(verifier: SnsVerifier) -> None:
    rejection = refused(verifier, notification(TopicArn=TOPIC + "-other"))

    assert (rejection.status, "TopicArn" in rejection.reason) == (403, True)


def test_no_allowed_topics_refuses_everything() -> None:
    rejection = refused(SnsVerifier(topic_arns=[]), notification())

    assert rejection.status == 403


def test_a_certificate_url_off_the_sns_hosts_is_refused(verifier: SnsVerifier) -> None:
    rejection = refused(verifier, notification(SigningCertURL="https://evil.example/x.pem"))

    assert (rejection.status, "SigningCertURL" in rejection.reason) == (403, True)


@pytest.mark.parametrize(
    ("timestamp", "why"),
    [("2026-11-22T10:59:59.000Z", "older"), ("2026-11-22T12:06:00.000Z", "future")],
)
def test_messages_outside_the_age_window_are_refused(
    verifier: SnsVerifier, timestamp: str, why: str
) -> None:
    rejection = refused(verifier, notification(Timestamp=timestamp))

    assert rejection.status == 403 and why in rejection.reason


def test_the_age_limit_is_configurable() -> None:
    strict = SnsVerifier(topic_arns=[TOPIC], max_age_seconds=30)

    rejection = refused(strict, notification(Timestamp="2026-11-22T11:59:00.000Z"))

    assert "older than 30 s" in rejection.reason


@pytest.mark.parametrize("version", ["3", "", "SHA256"])
def test_unknown_signature_versions_are_refused(verifier: SnsVerifier, version: str) -> None:
    assert refused(verifier, notification(SignatureVersion=version)).status == 403


def test_a_signature_that_is_not_base64_is_refused(verifier: SnsVerifier) -> None:
    rejection = refused(verifier, notification(Signature="not base64!"))

    assert (rejection.status, rejection.reason) == (403, "Signature is not base64")


@pytest.mark.parametrize(
    "document",
    [
        [],
        "text",
        {"Type": "Notification"},
        {"Type": "Other"},
        {"Type": {"a": 1}},
        {"Type": ["Notification"]},
        {**notification(), "Message": None},
        {**notification(), "TopicArn": 5},
        {**notification(), "Timestamp": "yesterday"},
        {**notification(), "Timestamp": "2026-11-22T11:59:00"},  # no time zone
        {**notification(Type="SubscriptionConfirmation")},  # no SubscribeURL, Token
    ],
)
def test_malformed_messages_are_400(verifier: SnsVerifier, document: Any) -> None:
    assert refused(verifier, document).status == 400


def test_parse_ses_event_reads_a_permanent_bounce() -> None:
    event = parse_ses_event(
        '{"eventType": "Bounce", "mail": {"messageId": "m"}, "bounce": {"bounceType":'
        ' "Permanent", "bounceSubType": "Suppressed", "bouncedRecipients":'
        ' [{"emailAddress": "A <A@Example.COM>"}, {"emailAddress": "a@example.com"}]}}'
    )

    assert event is not None
    assert (event.status, event.message_id, event.suppress) == ("bounced", "m", True)
    assert event.recipients == ("a@example.com",)
    assert event.detail == "bounce Permanent/Suppressed"


@pytest.mark.parametrize(
    "message",
    ["not json", "[]", '{"eventType": "Send", "mail": {"messageId": "m"}}', '{"x": 1}'],
)
def test_parse_ses_event_ignores_other_messages(message: str) -> None:
    assert parse_ses_event(message) is None


@pytest.mark.parametrize(
    "message",
    [
        '{"eventType": "Bounce", "bounce": {"bouncedRecipients": []}}',
        '{"eventType": "Bounce", "mail": {"messageId": "m"}}',
        '{"eventType": "Complaint", "mail": {"messageId": "m"}, "complaint": {}}',
    ],
)
def test_parse_ses_event_refuses_events_missing_what_ses_always_sends(message: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_ses_event(message)
