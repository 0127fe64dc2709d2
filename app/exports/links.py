"""Download links: EXPORTS_PUBLIC_URL/d/<token>, the token a signed, expiring job id.

The emailed link never holds storage credentials; the API exchanges it for a fresh,
short-lived presigned URL on every click, so it outlives temporary AWS credentials.
"""

from __future__ import annotations

import re
import uuid

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

# Changing the salt invalidates every link already emailed.
TOKEN_SALT = "exports.download-link.v1"
# payload.timestamp.signature, each part unpadded base64url.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class LinkExpired(Exception):
    """The token was genuine but is older than its lifetime."""


class LinkInvalid(Exception):
    """The token was not made by us (tampered, truncated, another secret)."""


class LinkSigner:
    """Makes and checks download tokens with the service's secret key."""

    def __init__(self, secret_key: str, public_url: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)
        self._public_url = public_url.rstrip("/")
        self.max_age_seconds = max_age_seconds

    def link_for(self, job_id: uuid.UUID) -> str:
        """The public download URL for a job's file."""
        return self.url_of(self._serializer.dumps(str(job_id)))

    def url_of(self, token: str) -> str:
        """The public download URL a token makes."""
        return f"{self._public_url}/d/{token}"

    def job_id_from(self, token: str) -> uuid.UUID:
        """The job a token names; LinkExpired or LinkInvalid if it can't be honoured."""
        if not _is_canonical(token):
            raise LinkInvalid("token is not in the form this service writes")
        try:
            value = self._serializer.loads(token, max_age=self.max_age_seconds)
        except SignatureExpired as exc:
            raise LinkExpired(str(exc)) from exc
        except BadSignature as exc:
            raise LinkInvalid(str(exc)) from exc
        if not isinstance(value, str):
            raise LinkInvalid("token does not name a job")
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise LinkInvalid("token does not name a job") from exc


def _is_canonical(token: str) -> bool:
    """True if every part of `token` is exactly as base64_encode writes it.

    base64 decoding ignores the unused low bits of a last character and extra padding, so
    without this check several spellings of one token would all be accepted.
    """
    if not _TOKEN_SHAPE.fullmatch(token):
        return False
    return all(base64_encode(base64_decode(part)).decode() == part for part in token.split("."))
