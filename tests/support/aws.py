"""A real S3/SES endpoint for tests: moto's server on a free local port, spoken to over HTTP.

Our code talks to it with boto3 exactly as to AWS (AWS_ENDPOINT_URL). Only the reading of
sent emails peeks into moto's in-process backend, because SES has no API to list them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends

REGION = "us-east-1"


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's server once per session; yield its URL with fake credentials set."""
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    patch.delenv("AWS_PROFILE", raising=False)
    patch.setenv("AWS_CONFIG_FILE", str(tmp_path_factory.mktemp("aws") / "config"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    patch.undo()


@pytest.fixture
def s3_bucket(aws_endpoint: str) -> str:
    """A fresh, empty bucket on the local S3 endpoint."""
    name = f"exports-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_client(aws_endpoint: str) -> Any:
    """A plain boto3 S3 client for looking at what our code stored."""
    return boto3.client("s3", endpoint_url=aws_endpoint, region_name=REGION)


@pytest.fixture
def ses_sender(aws_endpoint: str) -> str:
    """A verified SES sender address (SES refuses mail from unverified identities)."""
    address = f"exports-{uuid.uuid4().hex[:8]}@example.com"
    client = boto3.client("sesv2", endpoint_url=aws_endpoint, region_name=REGION)
    client.create_email_identity(EmailIdentity=address)
    return address


def ses_sent_messages() -> list[Any]:
    """Every message moto's SES accepted so far (moto's Message / RawMessage objects)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)
