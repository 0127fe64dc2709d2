"""The webhook channel: a tenant's endpoints, and one delivery per event and endpoint.

When a job ends (succeeded, failed, cancelled, expired), queue_event inserts a delivery for
every enabled endpoint of its tenant subscribed to that event, each with a webhook.deliver
outbox message, in the transaction that ends the job: there is never a finished job whose
webhooks were not queued, nor a webhook for a job that did not finish. Delivering is
poller/handlers/webhook_deliver.py's; each delivery's state:

    pending ──2xx──► succeeded
       │ └──other status, timeout, refused──► retrying ──(Svix's schedule)──► … ──► failed
       └──410 Gone, or the endpoint disabled──► failed
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from dataclasses import dataclass, fields
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from app.platform import crypto
from app.platform.db import fetch_all, fetch_one, insert_or_find, keyset_after, request_fingerprint
from app.queue import outbox

TOPIC = "webhook.deliver"
EVENT_TYPES = ("export.succeeded", "export.failed", "export.cancelled", "export.expired")
TEST_EVENT = "webhook.test"
# Seconds to wait after failed attempt n (1-based): Svix's schedule after the immediate first
# try. One attempt more than delays: the last failure gives up.
RETRY_DELAYS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# After a rotation, deliveries are signed with the old secret too for this long.
ROTATION_OVERLAP_SECONDS = 24 * 3600
# An endpoint failing this long with no success is disabled.
DISABLE_AFTER_SECONDS = 5 * 24 * 3600


@dataclass(frozen=True)
class Endpoint:
    """One row of exports.webhook_endpoints."""

    id: uuid.UUID
    tenant: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: dt.datetime | None
    disabled_reason: str | None
    last_success_at: dt.datetime | None
    failing_since: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Endpoint:
        """Build from a dict row (secrets decrypted), ignoring columns it does not know."""
        return cls(**_opened({f.name: row[f.name] for f in fields(cls)}))


@dataclass(frozen=True)
class EndpointRequest:
    """A validated endpoint to create."""

    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool


class EndpointNotFound(Exception):
    """No endpoint with that id for this tenant."""


class EndpointIdempotencyConflict(Exception):
    """The Idempotency-Key was used before for another endpoint request."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(f"idempotency key already used for endpoint {endpoint.id}")
        self.endpoint = endpoint


def _opened(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the secrets decrypted (they are stored as Fernet tokens)."""
    vault = crypto.vault()
    for name in ("secret", "previous_secret"):
        if values.get(name) is not None:
            values[name] = vault.decrypt(values[name])
    return values


def new_secret() -> str:
    """A Standard Webhooks signing secret: whsec_ and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_endpoint(
    conn: Connection, tenant: str, request: EndpointRequest, *, idempotency_key: str | None
) -> tuple[Endpoint, bool]:
    """A new endpoint with a new secret; (endpoint, created). A repeated key returns the
    first endpoint, or EndpointIdempotencyConflict when the request differs."""
    fingerprint = request_fingerprint({**request.__dict__, "events": sorted(request.events)})
    row, created = insert_or_find(
        conn,
        "insert_webhook_endpoint",
        "get_webhook_endpoint_by_key",
        {
            "tenant": tenant,
            "url": request.url,
            "description": request.description,
            "events": list(request.events),
            "enabled": request.enabled,
            "secret": crypto.vault().encrypt(new_secret()),
            "idempotency_key": idempotency_key,
            "request_fingerprint": fingerprint,
        },
        {"tenant": tenant, "idempotency_key": idempotency_key},
    )
    if not created and row["request_fingerprint"] != fingerprint:
        raise EndpointIdempotencyConflict(Endpoint.from_row(row))
    return Endpoint.from_row(row), created


def get_endpoint(conn: Connection, tenant: str, endpoint_id: uuid.UUID) -> Endpoint:
    """The tenant's endpoint; EndpointNotFound otherwise (another tenant's too)."""
    row = fetch_one(conn, "get_webhook_endpoint", tenant=tenant, id=endpoint_id)
    if row is None:
        raise EndpointNotFound(str(endpoint_id))
    return Endpoint.from_row(row)


def list_endpoints(
    conn: Connection,
    tenant: str,
    *,
    limit: int,
    before: tuple[dt.datetime, uuid.UUID] | None,
) -> list[Endpoint]:
    """Newest first, after the keyset position `before`."""
    rows = fetch_all(
        conn, "list_webhook_endpoints", tenant=tenant, limit=limit, **keyset_after(before)
    )
    return [Endpoint.from_row(r) for r in rows]


def delete_endpoint(conn: Connection, tenant: str, endpoint_id: uuid.UUID) -> None:
    """Delete the endpoint and its deliveries; EndpointNotFound if there is none."""
    if fetch_one(conn, "delete_webhook_endpoint", tenant=tenant, id=endpoint_id) is None:
        raise EndpointNotFound(str(endpoint_id))


@dataclass(frozen=True)
class EndpointChanges:
    """A partial update (PATCH): None means "leave as it is"."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    description: str | None = None
    enabled: bool | None = None


def update_endpoint(
    conn: Connection, tenant: str, endpoint_id: uuid.UUID, changes: EndpointChanges
) -> Endpoint:
    """Apply a partial update; re-enabling clears why the service had disabled it."""
    row = fetch_one(
        conn,
        "update_webhook_endpoint",
        tenant=tenant,
        id=endpoint_id,
        url=changes.url,
        events=list(changes.events) if changes.events is not None else None,
        description=changes.description,
        enabled=changes.enabled,
    )
    if row is None:
        raise EndpointNotFound(str(endpoint_id))
    return Endpoint.from_row(row)


def rotate_secret(conn: Connection, tenant: str, endpoint_id: uuid.UUID) -> Endpoint:
    """A new secret; the old one keeps signing too for ROTATION_OVERLAP_SECONDS."""
    row = fetch_one(
        conn,
        "rotate_webhook_secret",
        tenant=tenant,
        id=endpoint_id,
        secret=crypto.vault().encrypt(new_secret()),
        overlap_seconds=ROTATION_OVERLAP_SECONDS,
    )
    if row is None:
        raise EndpointNotFound(str(endpoint_id))
    return Endpoint.from_row(row)


def send_test_event(conn: Connection, tenant: str, endpoint_id: uuid.UUID) -> int:
    """Queue a webhook.test event to the endpoint; the delivery's id."""
    row = fetch_one(conn, "insert_test_delivery", tenant=tenant, id=endpoint_id)
    if row is None:
        raise EndpointNotFound(str(endpoint_id))
    outbox.add_message(
        conn,
        TOPIC,
        None,
        max_attempts=MAX_ATTEMPTS,
        payload={"delivery_id": row["id"]},
        tenant=tenant,
    )
    return row["id"]


class DeliveryNotFound(Exception):
    """No delivery with that id for this tenant."""


def list_deliveries(
    conn: Connection,
    tenant: str,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    before: tuple[dt.datetime, int] | None,
) -> list[dict[str, Any]]:
    """An endpoint's deliveries, newest first, after the keyset position `before`."""
    get_endpoint(conn, tenant, endpoint_id)  # EndpointNotFound for another tenant's
    return fetch_all(
        conn,
        "list_webhook_deliveries",
        tenant=tenant,
        endpoint_id=endpoint_id,
        limit=limit,
        **keyset_after(before),
    )


def get_delivery(conn: Connection, tenant: str, delivery_id: int) -> dict[str, Any]:
    """One of the tenant's deliveries; DeliveryNotFound otherwise."""
    row = fetch_one(conn, "get_webhook_delivery", tenant=tenant, id=delivery_id)
    if row is None:
        raise DeliveryNotFound(str(delivery_id))
    return row


def redeliver(conn: Connection, tenant: str, delivery_id: int) -> dict[str, Any]:
    """Deliver again now: the same delivery, body and webhook-id, a new outbox message."""
    row = fetch_one(conn, "redeliver", tenant=tenant, id=delivery_id)
    if row is None:
        raise DeliveryNotFound(str(delivery_id))
    outbox.add_message(
        conn,
        TOPIC,
        row["job_id"],
        max_attempts=MAX_ATTEMPTS,
        payload={"delivery_id": row["id"]},
        tenant=tenant,
    )
    return row


def queue_event(conn: Connection, tenant: str, job_id: uuid.UUID, event_type: str) -> int:
    """In the transaction that ends the job: a delivery and its webhook.deliver message for
    every enabled endpoint of `tenant` subscribed to `event_type`; how many."""
    rows = fetch_all(
        conn, "insert_webhook_deliveries", tenant=tenant, event_type=event_type, job_id=job_id
    )
    for row in rows:
        outbox.add_message(
            conn, TOPIC, job_id, max_attempts=MAX_ATTEMPTS, payload={"delivery_id": row["id"]}
        )
    return len(rows)


def retry_delay(attempt: int) -> float:
    """Seconds before the attempt after failed attempt `attempt` (Svix's schedule)."""
    return float(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1])


@dataclass(frozen=True)
class Delivery:
    """A delivery to make: the event, where it goes and the secrets to sign it with."""

    id: int
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    job_id: uuid.UUID | None
    payload: dict[str, Any] | None
    attempts: int
    tenant: str
    url: str
    enabled: bool
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Delivery:
        """Build from delivery_to_send's row (secrets decrypted)."""
        return cls(**_opened({f.name: row[f.name] for f in fields(cls)}))

    def signing_secrets(self, now: dt.datetime) -> list[str]:
        """The current secret, and the previous one while the rotation overlap lasts."""
        active = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now:
            active.append(self.previous_secret)
        return active


def delivery_to_send(conn: Connection, delivery_id: int) -> Delivery | None:
    """The delivery and its endpoint; None when the endpoint (and so it) was deleted."""
    row = fetch_one(conn, "delivery_to_send", id=delivery_id)
    return Delivery.from_row(row) if row else None


def fix_payload(conn: Connection, delivery_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    """The body every attempt sends: `payload` if this is the first attempt to render it,
    else the one the first attempt stored."""
    stored = fetch_one(conn, "set_delivery_payload", id=delivery_id, payload=Jsonb(payload))
    if stored is not None:
        return stored["payload"]
    row = fetch_one(conn, "delivery_to_send", id=delivery_id)
    assert row is not None and row["payload"] is not None
    return row["payload"]


@dataclass(frozen=True)
class Attempt:
    """How one POST went."""

    status_code: int | None
    error: str | None
    duration_ms: int


def record_success(conn: Connection, delivery: Delivery, attempt: Attempt) -> None:
    """A 2xx: the delivery succeeded and the endpoint's failing run (if any) is over."""
    _record(conn, delivery.id, "succeeded", attempt, next_attempt_at=None)
    fetch_one(conn, "record_endpoint_success", id=delivery.endpoint_id)


def record_failure(
    conn: Connection, delivery: Delivery, attempt: Attempt, *, retry_in: float | None
) -> bool:
    """A failed attempt: retrying in `retry_in` seconds, or failed (None, or the endpoint
    has now failed for DISABLE_AFTER_SECONDS and is disabled). Returns whether the endpoint
    is still enabled."""
    row = fetch_one(
        conn,
        "record_endpoint_failure",
        id=delivery.endpoint_id,
        disable_after=DISABLE_AFTER_SECONDS,
    )
    enabled = bool(row and row["enabled"])
    if not enabled:
        retry_in = None
    next_at = None
    if retry_in is not None:
        next_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=retry_in)
    _record(
        conn,
        delivery.id,
        "retrying" if retry_in is not None else "failed",
        attempt,
        next_attempt_at=next_at,
    )
    return enabled


def record_gone(conn: Connection, delivery: Delivery, attempt: Attempt) -> None:
    """410 Gone: the receiver asked never to be called again; the endpoint is disabled."""
    _record(conn, delivery.id, "failed", attempt, next_attempt_at=None)
    fetch_one(
        conn, "disable_endpoint", id=delivery.endpoint_id, reason="the receiver answered 410 Gone"
    )


def record_undeliverable(conn: Connection, delivery: Delivery, why: str) -> None:
    """Not sent and never will be (the endpoint was disabled meanwhile)."""
    _record(conn, delivery.id, "failed", Attempt(None, why, 0), next_attempt_at=None)


def _record(
    conn: Connection,
    delivery_id: int,
    state: str,
    attempt: Attempt,
    *,
    next_attempt_at: dt.datetime | None,
) -> None:
    fetch_one(
        conn,
        "record_delivery_attempt",
        id=delivery_id,
        state=state,
        status_code=attempt.status_code,
        error=(attempt.error or "")[:1024] or None,
        duration_ms=attempt.duration_ms,
        next_attempt_at=next_attempt_at,
    )
