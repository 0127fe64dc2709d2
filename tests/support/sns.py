"""A stand-in for Amazon SNS: real RSA signatures, certificates served over real HTTPS.

Made in the test, nothing fetched from AWS:
  - a test CA, and a TLS certificate for `localhost` signed by it, for a local HTTPS server;
  - an RSA signing key with a self-signed certificate, served by that server as SNS serves
    its SigningCertURL;
  - messages shaped like SNS's, signed over the canonical string as AWS documents it (built
    here independently of app/notifications/sns.py, so the two are checked against each other).

How the verifier is pointed at it, without a test-only code path: two ordinary settings.
EXPORTS_SNS_CA_BUNDLE is the test CA's file (so the certificate is fetched over verified
TLS, as in production), and EXPORTS_SNS_CERT_HOST_PATTERN is `^localhost:\\d+$` (the
local server's host and port) instead of SNS's hosts.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:exports-ses-events"
OTHER_TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:someone-elses-topic"
HOST_PATTERN = r"^localhost:\d+$"
CERT_PATH = "/SimpleNotificationService-test.pem"

_CANONICAL_FIELDS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": [
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ],
    "UnsubscribeConfirmation": [
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ],
}  # fmt: skip


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    subject: str,
    key: rsa.RSAPrivateKey,
    *,
    issuer: str | None = None,
    issuer_key: rsa.RSAPrivateKey | None = None,
    ca: bool = False,
    hosts: list[str] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class FakeSns:
    """The local HTTPS server (signing certificate, SubscribeURLs) and the signing key."""

    base_url: str
    ca_file: Path
    signing_key: rsa.RSAPrivateKey
    # Paths the server answers, and every path it was asked for.
    pages: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    visits: list[str] = field(default_factory=list)

    @property
    def cert_url(self) -> str:
        """SigningCertURL of the messages this fake signs."""
        return self.base_url + CERT_PATH

    def subscribe_url(self) -> str:
        """A fresh SubscribeURL on the local server (answers 200 when visited)."""
        path = f"/?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token={uuid.uuid4().hex}"
        self.pages[path] = (200, b"<ConfirmSubscriptionResponse/>")
        return self.base_url + path

    def notification(self, message: dict[str, Any] | str, **overrides: Any) -> dict[str, Any]:
        """A signed Notification carrying `message` (JSON-encoded unless already a string)."""
        body = message if isinstance(message, str) else json.dumps(message)
        fields = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC_ARN,
            "Message": body,
            "Timestamp": sns_time(dt.datetime.now(dt.UTC)),
            "UnsubscribeURL": self.base_url + "/?Action=Unsubscribe",
            **overrides,
        }
        return self.sign(fields)

    def subscription_confirmation(self, **overrides: Any) -> dict[str, Any]:
        """A signed SubscriptionConfirmation whose SubscribeURL is served locally."""
        fields = {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": uuid.uuid4().hex,
            "TopicArn": TOPIC_ARN,
            "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.",
            "SubscribeURL": self.subscribe_url(),
            "Timestamp": sns_time(dt.datetime.now(dt.UTC)),
            **overrides,
        }
        return self.sign(fields)

    def sign(
        self,
        fields: dict[str, Any],
        *,
        version: str = "2",
        key: rsa.RSAPrivateKey | None = None,
        cert_url: str | None = None,
    ) -> dict[str, Any]:
        """`fields` with SignatureVersion, SigningCertURL and the Signature over them."""
        algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
        canonical = "".join(
            f"{name}\n{fields[name]}\n"
            for name in _CANONICAL_FIELDS[fields["Type"]]
            if name in fields
        )
        signature = (key or self.signing_key).sign(
            canonical.encode(), padding.PKCS1v15(), algorithm
        )
        return {
            **fields,
            "SignatureVersion": version,
            "SigningCertURL": cert_url or self.cert_url,
            "Signature": base64.b64encode(signature).decode(),
        }


def sns_time(moment: dt.datetime) -> str:
    """A Timestamp as SNS writes it: 2024-06-01T12:00:00.123Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.fixture(scope="session")
def fake_sns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSns]:
    """The fake SNS's HTTPS server on a free port of localhost, for the whole session."""
    folder = tmp_path_factory.mktemp("sns")
    ca_key, server_key, signing_key = _key(), _key(), _key()
    ca = _certificate("exports test CA", ca_key, ca=True)
    server = _certificate(
        "localhost", server_key, issuer="exports test CA", issuer_key=ca_key, hosts=["localhost"]
    )
    signing = _certificate("sns.test-signing", signing_key)
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "server.pem").write_bytes(
        _pem(server)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem")

    fake: FakeSns | None = None

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert fake is not None
            fake.visits.append(self.path)
            status, body = fake.pages.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # keep pytest's output clean

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    fake = FakeSns(
        base_url=f"https://localhost:{httpd.server_address[1]}",
        ca_file=folder / "ca.pem",
        signing_key=signing_key,
    )
    fake.pages[CERT_PATH] = (200, _pem(signing))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()


def ses_event(
    event_type: str, message_id: str, address: str, *, bounce_type: str = "Permanent"
) -> dict[str, Any]:
    """An SES event as configuration-set event publishing sends it (eventType)."""
    mail = {
        "timestamp": "2026-11-22T10:00:00.000Z",
        "source": "exports@example.com",
        "messageId": message_id,
        "destination": [address],
    }
    event: dict[str, Any] = {"eventType": event_type, "mail": mail}
    if event_type == "Bounce":
        event["bounce"] = {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": f"smtp; 550 5.1.1 <{address}>: user unknown",
                }
            ],
            "timestamp": "2026-11-22T10:00:01.000Z",
            "feedbackId": str(uuid.uuid4()),
        }
    elif event_type == "Complaint":
        event["complaint"] = {
            "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-11-22T10:05:00.000Z",
            "feedbackId": str(uuid.uuid4()),
        }
    elif event_type == "Delivery":
        event["delivery"] = {
            "timestamp": "2026-11-22T10:00:01.000Z",
            "recipients": [address],
            "smtpResponse": "250 ok",
        }
    return event
