"""webhook.deliver: POST one event to one endpoint, signed (Standard Webhooks).

Delivery policy: the host is resolved and checked at every attempt and the connection made
to the address checked (app/notifications/webhook_addresses.py); connect within 3 s, done
within 10 s; redirects are not followed; at most 64 KiB of the answer is read, 1 KiB kept.
A 2xx is delivered; 410 Gone disables the endpoint; anything else retries on Svix's
schedule (webhooks.RETRY_DELAYS) and then fails the delivery. Every attempt of one
delivery sends the same body with the same webhook-id, the receiver's deduplication key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import urllib3
from psycopg import Connection
from standardwebhooks import Webhook

from app.exports import jobs
from app.http.render import job_json, timestamp
from app.notifications import webhooks
from app.notifications.webhook_addresses import Target, UnsafeAddress, resolve
from app.platform.errors import PermanentError, TransientError
from app.platform.services import Services
from app.platform.version import package_version
from app.queue import outbox
from app.queue.outbox import Message
from poller import metrics
from poller.core.handler import Settled
from poller.core.lease import Lease

log = logging.getLogger(__name__)

CONNECT_SECONDS = 3.0
TOTAL_SECONDS = 10.0
MAX_RESPONSE_READ = 64 * 1024
MAX_RESPONSE_KEPT = 1024


class DeliveryFailed(TransientError):
    """The attempt failed (status, timeout, refused address); its schedule says when next."""


class WebhookDeliver:
    """Sends webhook deliveries; every outcome is recorded on the delivery row."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.connect_seconds = CONNECT_SECONDS
        self.total_seconds = TOTAL_SECONDS

    def handle(self, lease: Lease) -> Settled:
        """Send the delivery the message names; settle it on a 2xx or 410, else raise."""
        message = lease.message
        pool = self.services.pool
        delivery_id = int(message.payload["delivery_id"])
        with pool.connection() as conn:
            delivery = webhooks.delivery_to_send(conn, delivery_id)
            if delivery is None:  # its endpoint was deleted: nobody to tell
                outbox.complete_message(conn, message)
                return Settled.BY_HANDLER
            if not delivery.enabled:
                webhooks.record_undeliverable(conn, delivery, "the endpoint is disabled")
                outbox.complete_message(conn, message)
                return Settled.BY_HANDLER
            body = webhooks.fix_payload(conn, delivery.id, self._payload(conn, delivery))
        lease.check()
        attempt = self._post(delivery, json.dumps(body, separators=(",", ":")))
        if attempt.status_code is not None:
            metrics.WEBHOOK_SECONDS.observe(attempt.duration_ms / 1000)
        with pool.connection() as conn:
            if attempt.status_code is not None and 200 <= attempt.status_code < 300:
                webhooks.record_success(conn, delivery, attempt)
                outbox.complete_message(conn, message)
                metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()
                log.info("webhook delivered", extra=_context(delivery, attempt))
                return Settled.BY_HANDLER
            if attempt.status_code == 410:
                webhooks.record_gone(conn, delivery, attempt)
                outbox.complete_message(conn, message)
                metrics.WEBHOOK_DELIVERIES.labels("gone").inc()
                metrics.WEBHOOK_ENDPOINTS_DISABLED.labels("gone").inc()
                log.warning("webhook endpoint gone: disabled", extra=_context(delivery, attempt))
                return Settled.BY_HANDLER
            # The schedule counts POSTs made (the delivery's attempts), not claims: a claim
            # whose poller died before sending must not push the next try from 5 s to 5 min.
            last = message.is_last_attempt or delivery.attempts + 1 >= webhooks.MAX_ATTEMPTS
            retry_in = None if last else webhooks.retry_delay(delivery.attempts + 1)
            still_enabled = webhooks.record_failure(conn, delivery, attempt, retry_in=retry_in)
        refused = attempt.status_code is None and (attempt.error or "").startswith("not sent")
        metrics.WEBHOOK_DELIVERIES.labels(
            "not_sent" if refused else "failed" if last or not still_enabled else "retry"
        ).inc()
        if not still_enabled:
            metrics.WEBHOOK_ENDPOINTS_DISABLED.labels("failing").inc()
            log.warning(
                "webhook endpoint disabled after failing for 5 days",
                extra=_context(delivery, attempt),
            )
        why = attempt.error or f"the receiver answered {attempt.status_code}"
        if last or not still_enabled:
            raise PermanentError(f"webhook not delivered: {why}")
        raise DeliveryFailed(f"webhook not delivered: {why}", min_delay=retry_in or 0.0)

    def _payload(self, conn: Connection, delivery: webhooks.Delivery) -> dict:
        """The body: the event type, when, and the job as GET /v1/exports/{id} renders it."""
        data: dict = {"endpoint_id": str(delivery.endpoint_id)}
        if delivery.job_id is not None:
            job = jobs.find_job(conn, delivery.job_id)
            if job is None:
                raise PermanentError(f"job {delivery.job_id} no longer exists")
            data = job_json(job, self.services.links)
        return {
            "type": delivery.event_type,
            "timestamp": timestamp(dt.datetime.now(dt.UTC)),
            "data": data,
        }

    def _post(self, delivery: webhooks.Delivery, body: str) -> webhooks.Attempt:
        """One signed POST to the endpoint's checked address; never raises for the network."""
        started = time.monotonic()

        def took() -> int:
            return round((time.monotonic() - started) * 1000)

        settings = self.services.settings
        try:
            target = resolve(
                delivery.url,
                settings.allowed_webhook_networks,
                require_https=settings.is_production,
            )
        except UnsafeAddress as exc:  # DNS rebinding, or an address no longer allowed
            return webhooks.Attempt(None, f"not sent: {exc}", took())
        now = dt.datetime.now(dt.UTC)
        signatures = " ".join(
            Webhook(secret).sign(delivery.event_id, now, body)
            for secret in delivery.signing_secrets(now)
        )
        headers = {
            "Host": _host_header(target),
            "Content-Type": "application/json",
            "User-Agent": f"exports/{package_version()}",
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
        try:
            answer = _pool(target).urlopen(
                "POST",
                target.path,
                body=body.encode(),
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                timeout=urllib3.Timeout(connect=self.connect_seconds, total=self.total_seconds),
            )
            try:
                said = answer.read(MAX_RESPONSE_READ)  # and no more: the rest is not ours
            finally:
                answer.close()
        except urllib3.exceptions.HTTPError as exc:
            return webhooks.Attempt(
                None, f"{type(exc).__name__}: {exc}"[:MAX_RESPONSE_KEPT], took()
            )
        if 200 <= answer.status < 300:
            return webhooks.Attempt(answer.status, None, took())
        # What the receiver said about its failure, for the app to read in the deliveries.
        excerpt = said[:MAX_RESPONSE_KEPT].decode("utf-8", "replace")
        error = f"the receiver answered {answer.status}" + (f": {excerpt}" if excerpt else "")
        return webhooks.Attempt(answer.status, error[:MAX_RESPONSE_KEPT], took())

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """Try again on the delivery's schedule: `delay` is at least the schedule's step
        (DeliveryFailed.min_delay); the attempt itself is recorded already."""
        outbox.retry_message(conn, message, error, delay)

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """The delivery failed for good."""
        outbox.bury_message(conn, message, error)

    def handed_back(self, conn: Connection, message: Message) -> None:
        """Nothing to undo: the delivery says how its last attempt went."""


def _pool(target: Target) -> urllib3.HTTPConnectionPool:
    host = target.url.hostname
    assert host is not None
    if target.url.scheme == "https":
        # Connect to the checked address; verify the certificate for the URL's host name.
        return urllib3.HTTPSConnectionPool(
            str(target.address),
            target.port,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            maxsize=1,
        )
    return urllib3.HTTPConnectionPool(str(target.address), target.port, maxsize=1)


def _host_header(target: Target) -> str:
    host = target.url.hostname or ""
    default = 443 if target.url.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _context(delivery: webhooks.Delivery, attempt: webhooks.Attempt) -> dict[str, object]:
    return {
        "delivery_id": delivery.id,
        "endpoint_id": str(delivery.endpoint_id),
        "webhook_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
    }
