"""Which botocore failures are worth retrying; no network involved."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from app.platform.aws import (
    THROTTLED_MIN_DELAY,
    aws_client,
    boto_errors_classified,
    classify_boto_error,
)
from app.platform.errors import PermanentError, TransientError


def client_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    """A ClientError shaped like the ones botocore builds from an AWS error response."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("TooManyRequestsException", 429),
        ("SomethingNew", 429),
    ],
)
def test_throttling_is_transient_with_a_longer_pause(code: str, status: int) -> None:
    error = classify_boto_error(client_error(code, status))

    assert isinstance(error, TransientError)
    assert error.min_delay == THROTTLED_MIN_DELAY
    assert code in str(error)


@pytest.mark.parametrize(
    ("code", "status"),
    [("RequestTimeout", 400), ("InternalError", 500), ("ServiceUnavailable", 503), ("", 502)],
)
def test_timeouts_and_server_errors_are_transient(code: str, status: int) -> None:
    error = classify_boto_error(client_error(code, status))

    assert isinstance(error, TransientError)
    assert error.min_delay == 0.0


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),
        ("NoSuchBucket", 404),
        ("InvalidAccessKeyId", 403),
        ("SignatureDoesNotMatch", 403),
        ("EntityTooSmall", 400),
        ("MessageRejected", 400),
    ],
)
def test_other_client_errors_are_permanent(code: str, status: int) -> None:
    error = classify_boto_error(client_error(code, status))

    assert isinstance(error, PermanentError)
    assert code in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"),
        ConnectionClosedError(endpoint_url="https://s3.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com"),
        CredentialRetrievalError(provider="container-role", error_msg="timed out"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_network_trouble_is_transient(exc: BotoCoreError) -> None:
    assert isinstance(classify_boto_error(exc), TransientError)


@pytest.mark.parametrize(
    "exc",
    [NoCredentialsError(), ParamValidationError(report="Bucket is required")],
    ids=lambda exc: type(exc).__name__,
)
def test_configuration_mistakes_are_permanent(exc: BotoCoreError) -> None:
    assert isinstance(classify_boto_error(exc), PermanentError)


def test_classified_block_chains_the_original_error() -> None:
    original = client_error("AccessDenied", 403)

    with pytest.raises(PermanentError) as raised, boto_errors_classified():
        raise original

    assert raised.value.__cause__ is original


def test_other_errors_pass_through_a_classified_block_untouched() -> None:
    with pytest.raises(KeyError), boto_errors_classified():
        raise KeyError("not botocore's")


def test_clients_retry_in_standard_mode_with_short_timeouts() -> None:
    s3 = aws_client("s3", "eu-west-1", "http://127.0.0.1:9")
    ses = aws_client("sesv2", "eu-west-1")

    assert s3.meta.region_name == "eu-west-1"
    assert s3.meta.endpoint_url == "http://127.0.0.1:9"
    assert s3.meta.config.retries["mode"] == "standard"
    assert s3.meta.config.connect_timeout <= 10 and s3.meta.config.read_timeout <= 30
    assert s3.meta.config.s3["addressing_style"] == "path"
    assert ses.meta.config.s3 is None
