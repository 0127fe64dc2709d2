"""API clients (tenants) and their bearer keys: create (shown once), authenticate, revoke.

A key looks like `exp_<prefix>_<secret>`: the prefix (public, unique) finds the row and
names the key in logs and in `exports-admin list-keys`; the secret is 32 random bytes.
Only the sha256 of the whole key is stored (see migrations/versions/0006 for why sha256).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

from psycopg import Connection

from app.platform.db import fetch_all, fetch_one
from app.platform.lifecycle import ListeningService
from app.storage import tenant_problem

log = logging.getLogger(__name__)

# NOTIFYed with the key prefix by a trigger when a key is revoked or deleted (migration 0008).
REVOCATIONS_CHANNEL = "exports_api_keys"

KEY_SCHEME = "exp"
# api_clients.role: a tenant's key calls /v1 for its tenant; an operator's opens /console/.
TENANT = "tenant"
OPERATOR = "operator"
# Names and tenants end up in logs, job rows and URLs of the admin's mind: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_KEY_PATTERN = re.compile(r"^exp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# Compared against when no row matches, so a wrong prefix costs the same as a wrong secret.
_NO_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class ApiClient:
    """One row of exports.api_clients (never the key itself)."""

    id: uuid.UUID
    name: str
    tenant: str | None  # None for an operator key
    key_prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    role: str = TENANT

    @property
    def operator(self) -> bool:
        """An operator key: the console, every tenant; never the /v1 API."""
        return self.role == OPERATOR

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiClient:
        """Build from a dict row (key_hash stays in the database)."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})


class ClientNameTaken(Exception):
    """An API client with that name exists already."""


class ClientNotFound(Exception):
    """No API client has that key prefix."""


def hash_key(key: str) -> str:
    """Hex sha256 of a key: enough for 256-bit random secrets (no salt or stretching needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_client(
    conn: Connection, name: str, tenant: str | None = None, *, operator: bool = False
) -> tuple[ApiClient, str]:
    """A new client and its key; the key is returned here once and cannot be recovered.

    A tenant's key acts for `tenant` (default: the name); an operator's key has none."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"name must be 1-100 of A-Z a-z 0-9 . _ - (got {name!r})")
    if operator and tenant is not None:
        raise ValueError("an operator key sees every tenant: give no tenant")
    if not operator:
        tenant = tenant or name
        if problem := tenant_problem(tenant):  # it names the tenant's folder of stored files
            raise ValueError(f"tenant {problem} (got {tenant!r})")
    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    row = fetch_one(
        conn,
        "insert_api_client",
        name=name,
        tenant=tenant,
        role=OPERATOR if operator else TENANT,
        key_prefix=prefix,
        key_hash=hash_key(key),
    )
    if row is None:
        raise ClientNameTaken(name)
    return ApiClient.from_row(row), key


def authenticate(conn: Connection, key: str) -> ApiClient | None:
    """The client a presented key belongs to; None if it is malformed, unknown or revoked."""
    match = _KEY_PATTERN.match(key)
    row = fetch_one(conn, "get_api_client_by_prefix", key_prefix=match[1]) if match else None
    # Constant-time compare, done even without a row so timing tells nothing about prefixes.
    genuine = hmac.compare_digest(hash_key(key), row["key_hash"] if row else _NO_HASH)
    if row is None or not genuine or row["revoked_at"] is not None:
        return None
    fetch_one(conn, "touch_api_client", id=row["id"])
    return ApiClient.from_row(row)


class KeyCache:
    """Keys verified in the last `seconds`, by sha256: the API checks those without a query.

    A cached key skips the database; a RevocationListener clears the cache when any key is
    revoked, and otherwise an entry lives at most `seconds`. Only valid keys are cached
    (a wrong key always costs a lookup), at most `max_entries` of them; when full, the
    expired ones are dropped, and if none were, everything is.
    """

    def __init__(self, seconds: float, *, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, ApiClient]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> ApiClient | None:
        """The client `key` was verified for less than `seconds` ago, else None."""
        if self.seconds <= 0:
            return None
        entry = self._entries.get(hash_key(key))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def clear(self) -> None:
        """Forget every verified key: the next request of each is checked in the database."""
        with self._lock:
            self._entries = {}

    def put(self, key: str, client: ApiClient) -> None:
        """Remember that `key` is `client`'s live key, for `seconds` from now."""
        if self.seconds <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {h: e for h, e in self._entries.items() if e[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries = {}
            self._entries[hash_key(key)] = (now + self.seconds, client)


def revoke(conn: Connection, key_prefix: str) -> ApiClient:
    """Revoke a key from now on (idempotent); ClientNotFound for an unknown prefix."""
    row = fetch_one(conn, "revoke_api_client", key_prefix=key_prefix)
    if row is None:
        raise ClientNotFound(key_prefix)
    return ApiClient.from_row(row)


def list_clients(conn: Connection) -> list[ApiClient]:
    """Every client, oldest first, revoked ones included."""
    return [ApiClient.from_row(r) for r in fetch_all(conn, "list_api_clients")]


class RevocationListener(ListeningService):
    """LISTENs for key revocations and clears a KeyCache at each, so a revoked key stops
    working within milliseconds, not after the cache's `seconds`.

    While the connection is down, revocations could be missed: the cache is cleared when
    the connection is lost and again when it is back; in between, entries still expire on
    their own.
    """

    name = "key-revocations"
    channel = REVOCATIONS_CHANNEL
    application_name = "exports-api-key-revocations"

    def __init__(self, database_url: str, cache: KeyCache) -> None:
        super().__init__(database_url)
        self.cache = cache

    def connected(self) -> None:
        """Forget what may have been revoked while we were not listening."""
        self.cache.clear()

    def disconnected(self) -> None:
        """Revocations may be missed from now on: trust nothing cached."""
        self.cache.clear()

    def notified(self, payload: str) -> None:
        """A key was revoked: check every key in the database again."""
        log.info("API key revoked", extra={"key_prefix": payload})
        self.cache.clear()
