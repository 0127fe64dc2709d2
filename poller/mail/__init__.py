"""Outgoing email behind one small interface: SES, any SMTP relay, or .eml files.

Pick a backend by URL with `mailer_from_url`: `ses://`, `smtp://host:port`, `file:///dir`.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Protocol
from urllib.parse import urlsplit


class Mailer(Protocol):
    """Sends one fully built message and returns the id the backend gave it."""

    def send(self, message: EmailMessage) -> str:
        """Send `message`; raise TransientError / PermanentError (app.platform.errors)."""
        ...


def mailer_from_url(
    url: str,
    *,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    configuration_set: str | None = None,
) -> Mailer:
    """Build the backend named by `url`; region, endpoint and configuration set are for SES."""
    scheme = urlsplit(url).scheme
    # Imported here so that, say, file mail in development never loads boto3.
    if scheme == "ses":
        from poller.mail.ses import SesMailer

        return SesMailer(
            region=region, endpoint_url=endpoint_url, configuration_set=configuration_set
        )
    if scheme == "smtp":
        from poller.mail.smtp import SmtpMailer

        return SmtpMailer.from_url(url)
    if scheme == "file":
        from poller.mail.local import FileMailer

        return FileMailer.from_url(url)
    raise ValueError(f"unsupported mail URL {url!r}: use ses://, smtp://host:port or file:///dir")


def new_message_id(sender: str) -> str:
    """A fresh Message-ID in the sender's domain."""
    # An explicit domain: make_msgid's default asks DNS for this host's FQDN, which can hang.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return make_msgid(domain=domain)


def ensure_message_id(message: EmailMessage) -> str:
    """Return the message's Message-ID, adding one first if it has none."""
    if message["Message-ID"] is None:
        message["Message-ID"] = new_message_id(str(message["From"] or ""))
    return str(message["Message-ID"])
