"""Mail through Amazon SES (API v2), sent as a raw MIME message so both parts go as built."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.platform.aws import aws_client, classify_boto_error
from app.platform.errors import PermanentError, TransientError
from app.platform.retrying import retry_transient

# SES says "slow down" (sending rate or daily quota). botocore's standard retries already
# retried these a few times within seconds; more quick tries would only add to the pressure,
# so they skip retry_transient and go straight back to the outbox with a long pause.
THROTTLED_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException"}
)
THROTTLED_MIN_DELAY = 60.0
# Sending paused (by AWS for reputation, or by us) lasts until someone re-enables it; failing
# the email for good would lose it, so wait long and let max_attempts decide.
PAUSED_CODES = frozenset({"SendingPausedException"})
PAUSED_MIN_DELAY = 15 * 60.0
# Retrying cannot help: the message, the sender identity or the account is the problem.
PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "AccountSuspendedException",
        "BadRequestException",
        "NotFoundException",
    }
)


class SesMailer:
    """Sends with sesv2 SendEmail (raw content), optionally under a configuration set."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        configuration_set: str | None = None,
    ) -> None:
        self.configuration_set = configuration_set
        self._client = aws_client("sesv2", region, endpoint_url)

    def send(self, message: EmailMessage) -> str:
        """Send `message` from its From to its To addresses; return SES's MessageId."""
        sender = parseaddr(str(message["From"] or ""))[1]
        recipients = [address for _, address in getaddresses(message.get_all("To", [])) if address]
        if not sender or not recipients:
            raise PermanentError("an email needs a From and at least one To address")
        request: dict[str, Any] = {
            # Bare addresses: the headers inside the raw message keep the display names.
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": recipients},
            # CRLF line endings, as MIME on the wire expects.
            "Content": {"Raw": {"Data": message.as_bytes(policy=policy.SMTP)}},
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            return retry_transient(self._send_once)(request)
        except ClientError as exc:
            # Only throttling gets here unclassified (see _send_once).
            raise classify_ses_error(exc) from exc

    def _send_once(self, request: dict[str, Any]) -> str:
        try:
            return str(self._client.send_email(**request)["MessageId"])
        except ClientError as exc:
            if _code(exc) in THROTTLED_CODES | PAUSED_CODES:
                raise  # not a TransientError yet, so retry_transient lets it through
            raise classify_ses_error(exc) from exc
        except BotoCoreError as exc:
            raise classify_boto_error(exc) from exc


def classify_ses_error(exc: ClientError) -> TransientError | PermanentError:
    """SES's own error codes first (throttling waits longer), then the generic AWS rules."""
    code = _code(exc)
    if code in THROTTLED_CODES:
        return TransientError(f"SES throttled: {exc}", min_delay=THROTTLED_MIN_DELAY)
    if code in PAUSED_CODES:
        return TransientError(f"SES sending paused: {exc}", min_delay=PAUSED_MIN_DELAY)
    if code in PERMANENT_CODES:
        return PermanentError(f"SES refused the message: {exc}")
    return classify_boto_error(exc)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
