"""Verifying Amazon SNS messages posted to an HTTPS endpoint, as AWS documents it.

A message is trusted only when all of this holds, checked cheapest first so that a forged
request never makes us fetch anything:
  1. it is a Notification, SubscriptionConfirmation or UnsubscribeConfirmation with every
     signed field present (else 400);
  2. its TopicArn is on the allow-list (403);
  3. SigningCertURL is https:// on a host matching the SNS host pattern (403);
  4. its Timestamp is at most `max_age_seconds` old, and not from the future (403);
  5. its Signature verifies, with the certificate at SigningCertURL, over the canonical
     string of its type (403). SignatureVersion 2 is SHA256withRSA; 1 is SHA1withRSA
     (see SIGNATURE_HASHES for why SHA1 is still accepted).
Certificates are fetched over HTTPS (verified TLS, a timeout, no redirects, a size limit)
and cached by URL. A SubscribeURL is visited only on a verified message, and only when it
too is https:// on an SNS host.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import http.client
import re
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from app.platform.settings import DEFAULT_SNS_CERT_HOST_PATTERN

DEFAULT_CERT_HOST_PATTERN = DEFAULT_SNS_CERT_HOST_PATTERN
# SNS retries an HTTP delivery for at most an hour (its delivery policy's ceiling) and
# every retry carries the original Timestamp and signature.
DEFAULT_MAX_AGE_SECONDS = 3600
CLOCK_SKEW = dt.timedelta(minutes=5)
FETCH_TIMEOUT = 5.0
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED_CERTIFICATES = 32  # SNS uses a handful per region; bounded against junk URLs.

# The fields signed for each message type, in the order of the canonical string (AWS docs,
# "Verifying the signatures of Amazon SNS messages"). Subject only when present.
SIGNED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
OPTIONAL_FIELDS = frozenset({"Subject"})
# "2" is SHA256withRSA. "1" (SHA1withRSA) is what a topic signs with unless its
# SignatureVersion attribute is set to 2, so refusing it would break default topics.
# Accepting it is safe enough here: forging needs a SHA1 *collision* between a message SNS
# signed and ours, and TopicArn and Type come after Message in every canonical string, so a
# colliding pair must share its TopicArn: only someone who can already publish to one of our
# allow-listed topics could attempt it. The README recommends SignatureVersion 2.
SIGNATURE_HASHES: Mapping[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}


class SnsRejected(Exception):
    """The message is malformed (status 400) or not verifiably from our SNS topic (403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SnsUnavailable(Exception):
    """An SNS URL (certificate, SubscribeURL) could not be fetched now: worth a retry."""


@dataclass(frozen=True)
class SnsMessage:
    """A verified SNS message."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: dt.datetime
    subscribe_url: str | None = None


class HttpsFetcher:
    """One GET over verified HTTPS: a timeout, no redirects, a size limit.

    `ca_bundle` replaces the system's trusted CAs (tests serve certificates from a local
    server with their own CA; production leaves it unset).
    """

    def __init__(self, *, ca_bundle: str | None = None, timeout: float = FETCH_TIMEOUT) -> None:
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=ca_bundle)

    def get(self, url: str, *, limit: int = MAX_CERTIFICATE_BYTES) -> bytes:
        """The body of a 200 answer; SnsRejected for a 4xx, SnsUnavailable for the rest."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise SnsRejected(403, f"refusing to fetch a non-https URL: {url}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=self.timeout, context=self._context
        )
        try:
            connection.request("GET", path, headers={"User-Agent": "exports-sns-verifier"})
            response = connection.getresponse()
            body = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:  # includes TLS and timeouts
            raise SnsUnavailable(f"GET {parts.hostname}: {exc!r}") from exc
        except ValueError as exc:  # a URL http.client will not send (e.g. control characters)
            raise SnsRejected(403, f"cannot fetch {url!r}: {exc}") from None
        finally:
            connection.close()
        if 400 <= response.status < 500:
            raise SnsRejected(403, f"GET {url} answered {response.status}")
        if response.status != 200:  # 5xx, and redirects, which we do not follow
            raise SnsUnavailable(f"GET {url} answered {response.status}")
        if len(body) > limit:
            raise SnsRejected(403, f"GET {url} returned more than {limit} bytes")
        return body


class CertificateCache:
    """SNS signing certificates' public keys by URL (least recently used dropped first)."""

    def __init__(self, fetcher: HttpsFetcher, *, max_entries: int = MAX_CACHED_CERTIFICATES):
        self._fetcher = fetcher
        self._max_entries = max_entries
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        """The RSA public key of the certificate at `url` (fetched once, then cached)."""
        with self._lock:
            if url in self._keys:
                self._keys.move_to_end(url)
                return self._keys[url]
        key = _rsa_key(self._fetcher.get(url), url)  # outside the lock: a slow fetch
        with self._lock:
            self._keys[url] = key
            self._keys.move_to_end(url)
            while len(self._keys) > self._max_entries:
                self._keys.popitem(last=False)
        return key


class SnsVerifier:
    """Checks SNS messages against our topics and AWS's signatures; confirms subscriptions."""

    def __init__(
        self,
        *,
        topic_arns: Iterable[str],
        cert_host_pattern: str = DEFAULT_CERT_HOST_PATTERN,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        ca_bundle: str | None = None,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.topic_arns = frozenset(topic_arns)
        self.max_age = dt.timedelta(seconds=max_age_seconds)
        self._host_pattern = re.compile(cert_host_pattern)
        self._fetcher = HttpsFetcher(ca_bundle=ca_bundle, timeout=timeout)
        self._certificates = CertificateCache(self._fetcher)

    def verify(self, document: Any, *, now: dt.datetime | None = None) -> SnsMessage:
        """The message, if it is a genuine, fresh SNS message from an allowed topic."""
        fields = _signed_fields(document)
        if fields["TopicArn"] not in self.topic_arns:
            raise SnsRejected(403, "TopicArn is not one this service subscribes to")
        self.check_sns_url(document["SigningCertURL"], "SigningCertURL")
        timestamp = _timestamp(fields["Timestamp"])
        now = now or dt.datetime.now(dt.UTC)
        if timestamp < now - self.max_age:
            raise SnsRejected(403, f"the message is older than {self.max_age.total_seconds():g} s")
        if timestamp > now + CLOCK_SKEW:
            raise SnsRejected(403, "the message's Timestamp is in the future")
        hash_algorithm = SIGNATURE_HASHES[document["SignatureVersion"]]
        try:
            signature = base64.b64decode(document["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise SnsRejected(403, "Signature is not base64") from None
        key = self._certificates.public_key(document["SigningCertURL"])
        try:
            key.verify(
                signature,
                # A lone surrogate cannot have been signed: let it fail as a mismatch.
                canonical_string(document).encode("utf-8", "surrogatepass"),
                padding.PKCS1v15(),
                hash_algorithm(),
            )
        except InvalidSignature:
            raise SnsRejected(403, "the signature does not match the message") from None
        subscribe_url = fields.get("SubscribeURL")
        if subscribe_url is not None:
            self.check_sns_url(subscribe_url, "SubscribeURL")
        return SnsMessage(
            type=fields["Type"],
            message_id=fields["MessageId"],
            topic_arn=fields["TopicArn"],
            message=fields["Message"],
            timestamp=timestamp,
            subscribe_url=subscribe_url,
        )

    def check_sns_url(self, url: str, field: str) -> None:
        """SnsRejected unless `url` is https:// on an SNS host (a port must match too)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:  # "https://[::1/", "https://host:port/"
            raise SnsRejected(403, f"{field} is not a well-formed URL") from None
        if parts.scheme != "https":
            raise SnsRejected(403, f"{field} must be an https:// URL")
        if parts.username is not None or parts.password is not None or not parts.hostname:
            raise SnsRejected(403, f"{field} must name a host and nothing else")
        # The port is part of what must match, so the default pattern allows none.
        authority = parts.hostname + (f":{port}" if port is not None else "")
        if not self._host_pattern.fullmatch(authority):
            raise SnsRejected(403, f"{field} is not on an Amazon SNS host")

    def confirm_subscription(self, message: SnsMessage) -> None:
        """Visit the SubscribeURL of a verified SubscriptionConfirmation."""
        if message.type != "SubscriptionConfirmation" or message.subscribe_url is None:
            raise ValueError("only a SubscriptionConfirmation can be confirmed")
        self.check_sns_url(message.subscribe_url, "SubscribeURL")
        self._fetcher.get(message.subscribe_url)


def canonical_string(document: Mapping[str, Any]) -> str:
    """What SNS signed: "Name\\nvalue\\n" for each signed field of the type, in order."""
    names = SIGNED_FIELDS[document["Type"]]
    return "".join(
        f"{name}\n{document[name]}\n"
        for name in names
        if not (name in OPTIONAL_FIELDS and document.get(name) is None)
    )


def _signed_fields(document: Any) -> dict[str, str]:
    """The signed fields (400 if any is missing or not a string) plus the signature's."""
    if not isinstance(document, dict):
        raise SnsRejected(400, "the body must be a JSON object")
    message_type = document.get("Type")
    if not isinstance(message_type, str) or message_type not in SIGNED_FIELDS:
        raise SnsRejected(400, f"Type must be one of {', '.join(SIGNED_FIELDS)}")
    fields: dict[str, str] = {}
    for name in (*SIGNED_FIELDS[message_type], "Signature", "SigningCertURL", "SignatureVersion"):
        value = document.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise SnsRejected(400, f"{name} is required and must be a string")
        fields[name] = value
    if fields["SignatureVersion"] not in SIGNATURE_HASHES:
        raise SnsRejected(403, "SignatureVersion must be 1 or 2")
    return fields


def _timestamp(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SnsRejected(400, "Timestamp is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise SnsRejected(400, "Timestamp has no time zone")
    return moment


def _rsa_key(pem: bytes, url: str) -> rsa.RSAPublicKey:
    """The RSA public key of a PEM certificate that is valid now; SnsRejected otherwise."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise SnsRejected(403, f"{url} is not a PEM certificate") from None
    now = dt.datetime.now(dt.UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SnsRejected(403, f"the certificate at {url} is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsRejected(403, f"the certificate at {url} has no RSA key")
    return key
