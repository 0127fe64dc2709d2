"""SesMailer with the real boto3 sesv2 client against moto's server over HTTP."""

from __future__ import annotations

import email
import email.policy
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError

from app.platform.errors import PermanentError, TransientError
from poller.mail import mailer_from_url
from poller.mail.compose import compose_ready_email
from poller.mail.ses import (
    PAUSED_MIN_DELAY,
    THROTTLED_MIN_DELAY,
    SesMailer,
    classify_ses_error,
)
from tests.support.aws import REGION, ses_sent_messages

LINK = "https://exports.example.com/d/signed-token"


def ready_email(sender: str, recipient: str) -> EmailMessage:
    """The real "export ready" email for a made-up job."""
    job = {
        "id": uuid.uuid4(),
        "kind": "orders",
        "format": "csv",
        "notify_email": f"Ada Lovelace <{recipient}>",
        "result_rows": 3,
        "result_bytes": 2048,
        "expires_at": datetime.now(UTC) + timedelta(days=7),
    }
    return compose_ready_email(job, link=LINK, mail_from=f"Exports <{sender}>")


def test_sends_the_ready_email_through_ses(aws_endpoint: str, ses_sender: str) -> None:
    recipient = f"user-{uuid.uuid4().hex[:8]}@example.org"
    mailer = mailer_from_url("ses://", region=REGION, endpoint_url=aws_endpoint)

    message_id = mailer.send(ready_email(ses_sender, recipient))

    (sent,) = [m for m in ses_sent_messages() if m.id == message_id]
    assert sent.source == ses_sender
    assert recipient in sent.destinations
    received = email.message_from_string(sent.raw_data, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    assert received["To"] == f"Ada Lovelace <{recipient}>"
    plain, html = received.get_body(("plain",)), received.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert LINK in plain.get_content() and f'href="{LINK}"' in html.get_content()


def test_sends_under_a_configuration_set(aws_endpoint: str, ses_sender: str) -> None:
    name = f"exports-{uuid.uuid4().hex[:8]}"
    boto3.client("sesv2", endpoint_url=aws_endpoint, region_name=REGION).create_configuration_set(
        ConfigurationSetName=name
    )
    mailer = SesMailer(region=REGION, endpoint_url=aws_endpoint, configuration_set=name)

    message_id = mailer.send(ready_email(ses_sender, "someone@example.org"))

    assert message_id in {m.id for m in ses_sent_messages()}


def test_an_unverified_sender_is_permanent(aws_endpoint: str) -> None:
    mailer = SesMailer(region=REGION, endpoint_url=aws_endpoint)
    before = len(ses_sent_messages())

    with pytest.raises(PermanentError, match="MessageRejected"):
        mailer.send(ready_email("not-verified@example.com", "someone@example.org"))

    assert len(ses_sent_messages()) == before


def test_a_message_without_recipients_is_permanent(aws_endpoint: str, ses_sender: str) -> None:
    message = ready_email(ses_sender, "someone@example.org")
    del message["To"]

    with pytest.raises(PermanentError, match="To address"):
        SesMailer(region=REGION, endpoint_url=aws_endpoint).send(message)


class Throttling(BaseHTTPRequestHandler):
    """Answers every request the way SES does when the sending rate is exceeded."""

    requests = 0

    def do_POST(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"message": "Maximum sending rate exceeded."}'
        self.send_response(429)
        self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def throttling_endpoint(aws_endpoint: str) -> Iterator[str]:
    """An HTTP endpoint that throttles every call (aws_endpoint sets fake credentials)."""
    Throttling.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_throttling_goes_back_to_the_outbox_without_extra_retries(
    throttling_endpoint: str,
) -> None:
    mailer = SesMailer(region=REGION, endpoint_url=throttling_endpoint)

    with pytest.raises(TransientError, match="TooManyRequests") as caught:
        mailer.send(ready_email("noreply@example.com", "someone@example.org"))

    assert caught.value.min_delay == THROTTLED_MIN_DELAY
    # One round of botocore's attempts (first try + 3 retries), not one per retry_transient try.
    assert Throttling.requests == 4


def client_error(code: str, status: int) -> ClientError:
    """A botocore ClientError as sesv2 returns it."""
    response = {
        "Error": {"Code": code, "Message": "..."},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "SendEmail")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "kind", "min_delay"),
    [
        ("TooManyRequestsException", 429, TransientError, THROTTLED_MIN_DELAY),
        ("LimitExceededException", 400, TransientError, THROTTLED_MIN_DELAY),
        ("SendingPausedException", 400, TransientError, PAUSED_MIN_DELAY),
        ("InternalFailure", 500, TransientError, 0.0),
        ("MessageRejected", 400, PermanentError, None),
        ("MailFromDomainNotVerifiedException", 400, PermanentError, None),
        ("AccountSuspendedException", 400, PermanentError, None),
        ("BadRequestException", 400, PermanentError, None),
        ("NotFoundException", 404, PermanentError, None),
    ],
)
def test_classification(
    code: str, status: int, kind: type[Exception], min_delay: float | None
) -> None:
    error = classify_ses_error(client_error(code, status))

    assert type(error) is kind
    if isinstance(error, TransientError):
        assert error.min_delay == min_delay
