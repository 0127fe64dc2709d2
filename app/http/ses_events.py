"""POST /v1/ses-events: SES delivery, bounce and complaint events, delivered by Amazon SNS.

No API key: SNS cannot send one. Trust comes from the SNS signature instead
(app/notifications/sns.py): the message must be signed by SNS, from an allowed topic, and
fresh. SNS retries anything
but a 2xx for up to an hour, so a repeat or an unknown message id answers 200 and changes
nothing, and only our own trouble (a certificate we could not fetch) is worth a 503.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from app.http.parsing import read_body
from app.http.problems import Problem
from app.notifications.ses_feedback import MalformedEvent, parse_ses_event, record_delivery_event
from app.notifications.sns import SnsMessage, SnsRejected, SnsUnavailable, SnsVerifier
from app.platform.services import current_services

log = logging.getLogger(__name__)

bp = Blueprint("ses_events", __name__)

EXTENSION = "exports.sns_verifier"
# SNS messages may be up to 256 KiB, more than EXPORTS_MAX_BODY_BYTES' default; plus the
# envelope (signature, URLs).
MAX_SNS_BODY = 256 * 1024 + 16 * 1024


@bp.record
def _build_verifier(state: BlueprintSetupState) -> None:
    """One verifier (and so one certificate cache) per app, from its settings."""
    settings = state.app.extensions["exports"].settings
    state.app.extensions[EXTENSION] = SnsVerifier(
        topic_arns=settings.sns_topic_arns,
        cert_host_pattern=settings.sns_cert_host_pattern,
        max_age_seconds=settings.sns_max_age_seconds,
        ca_bundle=settings.sns_ca_bundle,
    )


@bp.post("/v1/ses-events")
def receive_sns_message() -> Response:
    """Verify an SNS message; confirm a subscription or record an SES event on its job."""
    verifier: SnsVerifier = current_app.extensions[EXTENSION]
    document = _sns_document()
    try:
        message = verifier.verify(document)
    except SnsRejected as exc:
        log.warning("SNS message refused: %s", exc.reason)
        raise _rejected(exc) from None
    except SnsUnavailable as exc:
        log.warning("SNS certificate unavailable: %s", exc)
        raise _unavailable() from None
    header_type = request.headers.get("x-amz-sns-message-type")
    if header_type is not None and header_type != message.type:
        raise Problem(
            400,
            "sns-malformed",
            "Malformed SNS message",
            "The x-amz-sns-message-type header does not match the message's Type.",
        )
    if message.type == "SubscriptionConfirmation":
        return _confirm(verifier, message)
    if message.type == "UnsubscribeConfirmation":
        # Not re-subscribing: someone unsubscribed on purpose.
        log.info("SNS subscription ended", extra={"topic_arn": message.topic_arn})
        return jsonify(status="ignored")
    return _record(message)


def _sns_document() -> Any:
    """The JSON body, whatever its Content-Type (SNS sends text/plain); 400 if not JSON."""
    raw = read_body(request, MAX_SNS_BODY)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Problem(
            400, "sns-malformed", "Malformed SNS message", "The body is not a JSON document."
        ) from None


def _confirm(verifier: SnsVerifier, message: SnsMessage) -> Response:
    try:
        verifier.confirm_subscription(message)
    except SnsRejected as exc:
        raise _rejected(exc) from None
    except SnsUnavailable as exc:
        log.warning("SNS subscription not confirmed: %s", exc)
        raise _unavailable() from None
    log.info("SNS subscription confirmed", extra={"topic_arn": message.topic_arn})
    return jsonify(status="confirmed")


def _record(message: SnsMessage) -> Response:
    try:
        event = parse_ses_event(message.message)
    except MalformedEvent as exc:
        raise Problem(400, "sns-malformed", "Malformed SES event", str(exc)) from None
    if event is None:  # e.g. SES's test message when the event destination is created
        log.info(
            "SNS notification is not an SES delivery event", extra={"sns_id": message.message_id}
        )
        return jsonify(status="ignored")
    with current_services().pool.connection() as conn:
        outcome = record_delivery_event(conn, event)
    # Never the address: logs are read by more people than the suppression list.
    log.info(
        "SES event recorded" if outcome.job_id else "SES event for an unknown email",
        extra={
            "email_message_id": event.message_id,
            "email_status": event.status,
            "job_id": str(outcome.job_id) if outcome.job_id else None,
            "status_changed": outcome.status_changed,
            "suppressed": outcome.suppressed,
        },
    )
    return jsonify(
        status="recorded" if outcome.job_id else "unknown-message",
        email_status=event.status,
        status_changed=outcome.status_changed,
        suppressed=outcome.suppressed,
    )


def _rejected(exc: SnsRejected) -> Problem:
    if exc.status == 400:
        return Problem(400, "sns-malformed", "Malformed SNS message", exc.reason)
    return Problem(403, "sns-unverified", "SNS message not verified", exc.reason)


def _unavailable() -> Problem:
    return Problem(
        503,
        "sns-unavailable",
        "Service unavailable",
        "The SNS certificate or subscription URL could not be fetched; SNS will retry.",
        headers={"Retry-After": "30"},
    )
