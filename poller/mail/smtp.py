"""Mail through any SMTP relay (including SES's SMTP interface): smtp://[user:pass@]host:port.

Add `?starttls=true` to upgrade the connection with STARTTLS before logging in.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from app.platform.errors import PermanentError, TransientError
from app.platform.retrying import retry_transient
from poller.mail import ensure_message_id

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class SmtpMailer:
    """Sends each message over a fresh SMTP connection (emails are rare; no pool needed)."""

    host: str
    port: int = 25
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> SmtpMailer:
        """Parse smtp://[user:password@]host:port[?starttls=true]."""
        parts = urlsplit(url)
        if parts.scheme != "smtp" or not parts.hostname:
            raise ValueError(f"not an SMTP URL: {url!r} (want smtp://[user:pass@]host:port)")
        starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower()
        if starttls not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"starttls must be true or false in {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 25,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            starttls=starttls in ("true", "1", "yes"),
        )

    def send(self, message: EmailMessage) -> str:
        """Send `message` to its To/Cc/Bcc recipients; return its Message-ID."""
        message_id = ensure_message_id(message)
        retry_transient(self._send_once)(message)
        return message_id

    def _send_once(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    client.login(self.username, self.password or "")
                # Raises SMTPRecipientsRefused only when every recipient is refused; our
                # emails have one, so a partial refusal cannot happen.
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(min(codes), f"recipients refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"SMTP server does not support it: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused, timeouts, dropped connections: the relay may be back soon.
            raise TransientError(f"SMTP {self.host}:{self.port}: {exc!r}") from exc


def _by_code(code: int, detail: str) -> Exception:
    """5xx replies mean "never" in SMTP; 4xx (and odd codes) mean "try again later"."""
    if 500 <= code < 600:
        return PermanentError(detail)
    return TransientError(detail)
