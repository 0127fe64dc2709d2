"""Operator sessions for the console: an operator key, typed once into the login form,
becomes a signed cookie (itsdangerous) that lasts 12 hours.

The cookie names the key (its public prefix), never holds it, and carries the session's
CSRF token; every page checks that the key still opens the console, so revoking it
(`exports-admin revoke-key`) ends its sessions at their next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from psycopg import Connection

from app.platform.db import fetch_one
from app.tenancy import clients

SESSION_SECONDS = 12 * 3600
# Another salt than the download links': a link can never pass for a session, nor back.
_SALT = "exports.console.session"


@dataclass(frozen=True)
class OperatorSession:
    """Who is signed in: the operator key's prefix and name, and the session's CSRF token."""

    key_prefix: str
    name: str
    csrf: str

    def csrf_matches(self, token: str | None) -> bool:
        """The form's token is this session's (constant-time)."""
        return token is not None and hmac.compare_digest(token, self.csrf)


def sign_in(conn: Connection, key: str) -> OperatorSession | None:
    """A new session for a valid operator key; None for anything else (tenant keys too)."""
    client = clients.authenticate(conn, key)
    if client is None or not client.operator:
        return None
    return OperatorSession(client.key_prefix, client.name, secrets.token_urlsafe(32))


def key_still_valid(conn: Connection, session: OperatorSession) -> bool:
    """The session's key is neither revoked nor turned into a tenant's since sign-in."""
    return fetch_one(conn, "operator_key", key_prefix=session.key_prefix) is not None


class SessionCookies:
    """Signs sessions into cookie values and reads them back until they are too old."""

    def __init__(
        self,
        secret_key: str,
        *,
        seconds: int = SESSION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seconds = seconds
        self._serializer = URLSafeTimedSerializer(
            secret_key, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )
        self._clock = clock

    def dumps(self, session: OperatorSession) -> str:
        """The cookie value for `session`, stamped with the clock's time."""
        signer = self._serializer.make_signer()
        # itsdangerous stamps with time.time(); the clock makes "issued 13 hours ago"
        # writable by a test without waiting for it.
        signer.get_timestamp = lambda: int(self._clock())  # type: ignore[method-assign]
        payload = self._serializer.dump_payload(asdict(session))
        return signer.sign(payload).decode()

    def loads(self, value: str | None) -> OperatorSession | None:
        """The session in a cookie value; None when missing, forged or older than allowed."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.seconds)
        except BadSignature:  # SignatureExpired is one too
            return None
        try:
            return OperatorSession(**data)
        except TypeError:  # signed by us, but another shape: treat as no session
            return None

