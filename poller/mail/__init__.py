"""Outgoing email behind one small interface: SES, any SMTP relay, or .eml files.

Pick a backend by URL with `mailer_from_url`: `ses://`, `smtp://host:port`, `file:///dir`.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class Mailer(Protocol):
    """Sends one fully built message and returns the id the backend gave it."""

    def send(self, message: EmailMessage) -> str:
        """Send `message`; raise TransientError / PermanentError (app.errors) on failure."""
        ...
