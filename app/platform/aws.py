"""boto3 clients and what their errors mean for us (shared by S3 storage and the SES mailer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    MetadataRetrievalError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from app.platform.errors import PermanentError, TransientError

# Error codes that mean "slow down": retry, but after a longer pause than usual.
THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
# S3 answers a stalled upload socket with 400 RequestTimeout; a new attempt usually works.
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException"})
THROTTLED_MIN_DELAY = 5.0

CONNECT_TIMEOUT = 5.0
# Long enough for S3 to answer a 16 MiB UploadPart or a CompleteMultipartUpload (which
# keeps the socket alive with whitespace while it works); short enough to notice a hang.
READ_TIMEOUT = 15.0


def aws_client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client with short timeouts and botocore's standard retries (3 attempts).

    `endpoint_url` points it at MinIO, LocalStack or a test server instead of AWS.
    """
    config = Config(
        region_name=region,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "max_attempts": 3},
        # Path-style works with every S3 look-alike and with bucket names containing dots.
        s3={"addressing_style": "path"} if service == "s3" else None,
        # Otherwise botocore may presign S3 URLs with SigV2, which newer regions refuse.
        signature_version="s3v4" if service == "s3" else None,
    )
    # A session of its own: boto3 sessions are not thread-safe, the clients they make are.
    return boto3.session.Session().client(service, endpoint_url=endpoint_url, config=config)


def classify_boto_error(exc: BotoCoreError | ClientError) -> TransientError | PermanentError:
    """Say whether a botocore failure is worth retrying: TransientError or PermanentError.

    Transient: throttling, request timeouts, HTTP 5xx, network trouble (connection refused,
    closed, timed out), failing to fetch role credentials. Everything else is permanent:
    access denied, no such bucket, bad key or signature, other 4xx, invalid parameters,
    no credentials configured at all.
    """
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in THROTTLING_CODES or status == 429:
            return TransientError(str(exc), min_delay=THROTTLED_MIN_DELAY)
        if code in TRANSIENT_CODES or status >= 500:
            return TransientError(str(exc))
        return PermanentError(str(exc))
    # Connection errors, timeouts and a body cut off mid-read all derive from these.
    if isinstance(exc, HTTPClientError | BotocoreConnectionError):
        return TransientError(str(exc))
    # An ECS task role's credentials come over HTTP too; a hiccup there must not fail a job.
    if isinstance(exc, CredentialRetrievalError | MetadataRetrievalError):
        return TransientError(str(exc))
    return PermanentError(str(exc))


@contextmanager
def boto_errors_classified() -> Iterator[None]:
    """Re-raise botocore failures inside the block as TransientError or PermanentError."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise classify_boto_error(exc) from exc
