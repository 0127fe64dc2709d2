"""SmtpMailer against a real SMTP server (aiosmtpd) running in this process."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from app.platform.errors import PermanentError, TransientError
from poller.mail import mailer_from_url
from poller.mail.smtp import SmtpMailer

LINK = "https://exports.example.com/d/tok"


def free_port() -> int:
    """A local TCP port nobody is listening on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Collecting:
    """An aiosmtpd handler that keeps every envelope; recipients in `reject` get `reply`."""

    reject: set[str] = field(default_factory=set)
    reply: str = "550 5.1.1 No such user"
    envelopes: list[Any] = field(default_factory=list)
    logins: list[bytes | None] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.reject:
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.logins.append(session.auth_data.login if session.authenticated else None)
        return "250 Message accepted"


def only_user_secret(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    """Accept exactly the login user / s3cr:t@!."""
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"user",
        b"s3cr:t@!",
    )
    # handled=False: let aiosmtpd send the 535 reply itself.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture
def handler() -> Collecting:
    return Collecting()


@pytest.fixture
def smtp_server(handler: Collecting) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


def message(to: str = "ada@example.org") -> EmailMessage:
    """A two-part message without a Message-ID."""
    msg = EmailMessage()
    msg["From"] = "Exports <noreply@example.com>"
    msg["To"] = to
    msg["Subject"] = "Your export is ready"
    msg.set_content(f"Download: {LINK}")
    msg.add_alternative(f'<p><a href="{LINK}">Download</a></p>', subtype="html")
    return msg


def test_delivers_both_parts_and_returns_the_message_id(
    smtp_server: Controller, handler: Collecting
) -> None:
    mailer = mailer_from_url(f"smtp://127.0.0.1:{smtp_server.port}")

    message_id = mailer.send(message())

    (envelope,) = handler.envelopes
    assert envelope.mail_from == "noreply@example.com"
    assert envelope.rcpt_tos == ["ada@example.org"]
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Message-ID"] == message_id and message_id.endswith("@example.com>")
    plain, html = received.get_body(("plain",)), received.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(html, EmailMessage)
    assert LINK in plain.get_content()
    assert f'href="{LINK}"' in html.get_content()


def test_logs_in_with_the_credentials_from_the_url(handler: Collecting) -> None:
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=only_user_secret,
        # Plain-text AUTH is fine on loopback; production relays use ?starttls=true.
        auth_require_tls=False,
    )
    controller.start()
    try:
        good = mailer_from_url(f"smtp://user:s3cr%3At%40%21@127.0.0.1:{controller.port}")
        good.send(message())
        bad = mailer_from_url(f"smtp://user:wrong@127.0.0.1:{controller.port}")
        with pytest.raises(PermanentError, match="535"):
            bad.send(message())
    finally:
        controller.stop()

    assert handler.logins == [b"user"]


def test_a_refused_recipient_is_permanent(smtp_server: Controller, handler: Collecting) -> None:
    handler.reject.add("gone@example.org")

    with pytest.raises(PermanentError, match="550"):
        SmtpMailer("127.0.0.1", smtp_server.port).send(message(to="gone@example.org"))

    assert handler.envelopes == []


def test_a_4xx_reply_is_transient(smtp_server: Controller, handler: Collecting) -> None:
    handler.reject.add("busy@example.org")
    handler.reply = "451 4.3.0 Try again later"

    with pytest.raises(TransientError, match="451"):
        SmtpMailer("127.0.0.1", smtp_server.port).send(message(to="busy@example.org"))


def test_nothing_listening_is_transient() -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), timeout=2.0)

    with pytest.raises(TransientError, match=r"127\.0\.0\.1"):
        mailer.send(message())


def test_url_parsing() -> None:
    mailer = SmtpMailer.from_url(
        "smtp://AKIA%2Fx:p%40ss@email-smtp.eu-west-1.amazonaws.com:587?starttls=true"
    )

    assert (mailer.host, mailer.port, mailer.starttls) == (
        "email-smtp.eu-west-1.amazonaws.com",
        587,
        True,
    )
    assert (mailer.username, mailer.password) == ("AKIA/x", "p@ss")
    assert "p@ss" not in repr(mailer)
    assert SmtpMailer.from_url("smtp://relay").port == 25
    with pytest.raises(ValueError, match="starttls"):
        SmtpMailer.from_url("smtp://relay:25?starttls=maybe")
