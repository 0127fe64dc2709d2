"""Mail for local development: each message becomes an .eml file in a folder (file:///dir)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.platform.errors import TransientError
from poller.mail import ensure_message_id


@dataclass(frozen=True)
class FileMailer:
    """Writes messages as `<UTC time>-<random>.eml` files, so `ls` lists them in order."""

    directory: Path

    @classmethod
    def from_url(cls, url: str) -> FileMailer:
        """Parse file:///absolute/dir."""
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"not a local folder URL: {url!r} (want file:///absolute/dir)")
        return cls(Path(unquote(parts.path)))

    def send(self, message: EmailMessage) -> str:
        """Write `message` to a new .eml file; return its Message-ID."""
        message_id = ensure_message_id(message)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        temporary = path.with_suffix(".tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_bytes(message.as_bytes())
            # Renamed into place so that a watcher never reads a half-written .eml.
            os.replace(temporary, path)
        except OSError as exc:
            raise TransientError(f"cannot write mail to {self.directory}: {exc}") from exc
        return message_id
