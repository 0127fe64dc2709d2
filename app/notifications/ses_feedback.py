"""What happened to our emails after SES accepted them, and who must not be emailed again.

SES publishes Delivery, Bounce and Complaint events to an SNS topic, which posts them to
POST /v1/ses-events (app/http/ses_events.py verifies them with app/notifications/sns.py
first). Events are matched to a job by the SES message id the mailer recorded
(jobs.email_message_id). A Permanent bounce or a complaint puts the address on
exports.email_suppressions, which the notify handler checks before every send.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from psycopg import Connection

from app.notifications import email
from app.notifications.email import FEEDBACK_STATUSES
from app.platform import crypto
from app.platform.db import fetch_one

MAX_DETAIL = 200


class MalformedEvent(ValueError):
    """An SES event (Bounce, Complaint, Delivery) without the fields SES always sends."""


@dataclass(frozen=True)
class DeliveryEvent:
    """One SES Delivery, Bounce or Complaint event, reduced to what we act on."""

    status: str  # delivered | bounced | complained
    message_id: str
    recipients: tuple[str, ...]  # lower-cased addresses
    suppress: bool  # a Permanent bounce or a complaint
    detail: str  # for people, without any address


@dataclass(frozen=True)
class FeedbackOutcome:
    """What recording an event changed: the job it matched (if any), status, suppressions."""

    job_id: uuid.UUID | None
    status_changed: bool
    suppressed: int


def parse_ses_event(message: str) -> DeliveryEvent | None:
    """The SES event in an SNS Notification's Message; None for other messages.

    SES sends other things to the same topic (the set-up test message, Send/Open events
    of a configuration set); those are not ours to act on. MalformedEvent when a Bounce,
    Complaint or Delivery lacks what SES always sends.
    """
    try:
        document = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    # Configuration-set event publishing says eventType; identity notifications say
    # notificationType. The payloads are otherwise the same.
    event_type = document.get("eventType") or document.get("notificationType")
    if event_type not in FEEDBACK_STATUSES:
        return None
    mail = document.get("mail")
    message_id = mail.get("messageId") if isinstance(mail, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise MalformedEvent(f"{event_type} event without mail.messageId")
    body = document.get(event_type[0].lower() + event_type[1:])
    if not isinstance(body, dict):
        raise MalformedEvent(f"{event_type} event without its {event_type.lower()} object")
    if event_type == "Bounce":
        bounce_type = _text(body.get("bounceType"))
        recipients = _addresses(body.get("bouncedRecipients"), key="emailAddress")
        detail = f"bounce {bounce_type}/{_text(body.get('bounceSubType'))}"
        suppress = bounce_type == "Permanent"
    elif event_type == "Complaint":
        recipients = _addresses(body.get("complainedRecipients"), key="emailAddress")
        detail = f"complaint {_text(body.get('complaintFeedbackType')) or 'unspecified'}"
        suppress = True
    else:
        recipients = _addresses(body.get("recipients"), key=None)
        detail = "delivery"
        suppress = False
    return DeliveryEvent(
        status=FEEDBACK_STATUSES[event_type],
        message_id=message_id,
        recipients=recipients,
        suppress=suppress,
        detail=detail[:MAX_DETAIL],
    )


def record_delivery_event(conn: Connection, event: DeliveryEvent) -> FeedbackOutcome:
    """Record an SES event on its job and suppress its addresses; nothing for unknown ids.

    Idempotent: SNS delivers at least once and out of order, so a repeat changes nothing
    and a status only moves forward (sent < delivered < bounced < complained).
    """
    job = fetch_one(conn, "find_job_by_email_message_id", message_id=event.message_id)
    if job is None:
        # Not an email of ours (or its job was deleted): nothing to record, and we do not
        # suppress addresses we never wrote to.
        return FeedbackOutcome(job_id=None, status_changed=False, suppressed=0)
    changed = email.record_feedback(conn, job["id"], event.status, event.detail)
    suppressed = 0
    if event.suppress:
        reason = "complaint" if event.status == "complained" else "bounce"
        for address in event.recipients:
            suppress(conn, address, reason=reason, detail=event.detail, message_id=event.message_id)
            suppressed += 1
    return FeedbackOutcome(
        job_id=job["id"], status_changed=changed, suppressed=suppressed
    )


def suppress(conn: Connection, address: str, *, reason: str, detail: str, message_id: str) -> None:
    """Never email `address` again (reason: bounce or complaint); repeats update last_seen."""
    normalised = normalise_address(address)
    vault = crypto.vault()
    fetch_one(
        conn,
        "suppress_address",
        address=vault.encrypt(normalised),
        address_index=vault.blind_index(normalised),
        address_masked=crypto.mask_address(normalised),
        indexes=vault.blind_indexes(normalised),
        reason=reason,
        detail=detail[:MAX_DETAIL],
        message_id=message_id,
    )


def is_suppressed(conn: Connection, address: str) -> bool:
    """True when `address` hard-bounced or complained before."""
    indexes = crypto.vault().blind_indexes(normalise_address(address))
    return fetch_one(conn, "find_suppression", indexes=indexes) is not None


def unsuppress(conn: Connection, address: str) -> bool:
    """Allow `address` again; False when it was not suppressed."""
    indexes = crypto.vault().blind_indexes(normalise_address(address))
    return fetch_one(conn, "delete_suppression", indexes=indexes) is not None


def normalise_address(address: str) -> str:
    """The bare address, lower-cased: how the suppression list stores and looks it up."""
    return parseaddr(address)[1].strip().lower() or address.strip().lower()


def _text(value: Any) -> str:
    return value[:MAX_DETAIL] if isinstance(value, str) else ""


def _addresses(items: Any, *, key: str | None) -> tuple[str, ...]:
    """Lower-cased addresses from SES's recipient list (objects with `key`, or strings)."""
    if not isinstance(items, list):
        raise MalformedEvent("the event's recipient list is missing")
    found: list[str] = []
    for item in items:
        value = item.get(key) if key and isinstance(item, dict) else item
        if isinstance(value, str) and (address := normalise_address(value)):
            found.append(address)
    return tuple(dict.fromkeys(found))
