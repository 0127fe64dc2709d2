"""S3Storage over real HTTP. moto's server stands in for S3 here (tests/support/aws.py)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from app.platform.errors import PermanentError, TransientError
from app.storage.s3 import S3Storage
from tests.support.aws import REGION

MiB = 1024 * 1024
PART = 5 * MiB  # S3's minimum part size, so a few MiB already make a multipart upload.


class ExportCancelled(Exception):
    """What our export code raises from inside `read` to stop an upload."""


class GeneratedStream:
    """A lazy, non-seekable stream of `size` bytes, returned in short reads like a socket.

    Keeps a sha256 of what it handed out; can raise `error` once `fail_at` bytes are out.
    """

    def __init__(
        self,
        size: int,
        *,
        fail_at: int | None = None,
        error: BaseException | None = None,
        before_failing: Callable[[], None] = lambda: None,
    ) -> None:
        self.size = size
        self.sent = 0
        self.sha256 = hashlib.sha256()
        self._fail_at = fail_at
        self._error = error
        self._before_failing = before_failing

    def read(self, size: int = -1) -> bytes:
        """At most 64 KiB of fresh bytes per call, as a gzip stream over COPY would give."""
        if self._fail_at is not None and self.sent >= self._fail_at:
            self._before_failing()
            assert self._error is not None
            raise self._error
        limit = self.size - self.sent if size < 0 else min(size, self.size - self.sent)
        if self._fail_at is not None:
            limit = min(limit, self._fail_at - self.sent)
        chunk = hashlib.sha256(self.sent.to_bytes(8, "big")).digest() * 2048  # 64 KiB
        chunk = chunk[:limit]
        self.sent += len(chunk)
        self.sha256.update(chunk)
        return chunk


@pytest.fixture
def storage(aws_endpoint: str, s3_bucket: str) -> S3Storage:
    """S3 storage under a prefix in a fresh bucket, with the smallest parts S3 allows."""
    return S3Storage.from_url(
        f"s3://{s3_bucket}/exports/",
        region=REGION,
        endpoint_url=aws_endpoint,
        presign_seconds=120,
        part_size=PART,
    )


def stored_sha256(storage: S3Storage, key: str) -> str:
    """sha256 of the object as read back through the storage."""
    digest = hashlib.sha256()
    body = storage.open(key)
    while chunk := body.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()


def in_progress_uploads(s3_client: Any, bucket: str) -> list[dict[str, Any]]:
    """Multipart uploads started and neither completed nor aborted."""
    return s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def wait_for_uploaded_parts(s3_client: Any, bucket: str, count: int) -> None:
    """Return once the one upload in progress has `count` parts on the server."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for upload in in_progress_uploads(s3_client, bucket):
            parts = s3_client.list_parts(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            ).get("Parts", [])
            if len(parts) >= count:
                return
    raise AssertionError(f"{count} parts never arrived")


def test_large_stream_becomes_a_multipart_upload_and_reads_back_identical(
    storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    stream = GeneratedStream(11 * MiB)

    storage.upload("tenant/job/export.csv.gz", stream, "application/gzip")

    head = s3_client.head_object(Bucket=s3_bucket, Key="exports/tenant/job/export.csv.gz")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB
    assert head["ContentLength"] == 11 * MiB
    assert head["ContentType"] == "application/gzip"
    assert stored_sha256(storage, "tenant/job/export.csv.gz") == stream.sha256.hexdigest()
    assert in_progress_uploads(s3_client, s3_bucket) == []


def test_small_stream_is_a_single_put(storage: S3Storage, s3_client: Any, s3_bucket: str) -> None:
    stream = GeneratedStream(300 * 1024)

    storage.upload("small.csv", stream, "text/csv")

    head = s3_client.head_object(Bucket=s3_bucket, Key="exports/small.csv")
    assert "-" not in head["ETag"]
    assert head["ContentLength"] == 300 * 1024
    assert stored_sha256(storage, "small.csv") == stream.sha256.hexdigest()


def test_empty_stream_stores_an_empty_object(storage: S3Storage) -> None:
    storage.upload("empty.csv", GeneratedStream(0), "text/csv")

    assert storage.open("empty.csv").read() == b""


def test_failing_stream_after_parts_were_sent_leaves_nothing_and_keeps_its_error(
    storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    stream = GeneratedStream(
        30 * MiB,
        fail_at=11 * MiB,
        error=ExportCancelled("cancelled by the user"),
        # Fail only once two parts are really on the server, so there is something to abort.
        before_failing=lambda: wait_for_uploaded_parts(s3_client, s3_bucket, 2),
    )

    with pytest.raises(ExportCancelled, match="cancelled by the user") as raised:
        storage.upload("cancelled.csv", stream, "text/csv")

    assert type(raised.value) is ExportCancelled
    assert in_progress_uploads(s3_client, s3_bucket) == []
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


def test_stream_failing_at_once_leaves_nothing(
    storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    stream = GeneratedStream(1, fail_at=0, error=ExportCancelled("before the first byte"))

    with pytest.raises(ExportCancelled):
        storage.upload("never.csv", stream, "text/csv")

    assert in_progress_uploads(s3_client, s3_bucket) == []
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", []) == []


@pytest.mark.parametrize("size", [1024, 6 * MiB], ids=["single-put", "multipart"])
def test_missing_bucket_is_permanent(aws_endpoint: str, size: int) -> None:
    storage = S3Storage.from_url(
        "s3://no-such-bucket-for-exports", region=REGION, endpoint_url=aws_endpoint, part_size=PART
    )

    with pytest.raises(PermanentError, match="NoSuchBucket"):
        storage.upload("x.csv", GeneratedStream(size), "text/csv")


def test_failure_stops_reading_the_stream(aws_endpoint: str) -> None:
    # s3transfer alone would read the stream to its end after S3 refused the upload,
    # running the whole export query for nothing.
    storage = S3Storage.from_url(
        "s3://no-such-bucket-for-exports", region=REGION, endpoint_url=aws_endpoint, part_size=PART
    )
    stream = GeneratedStream(500 * MiB)

    with pytest.raises(PermanentError, match="NoSuchBucket"):
        storage.upload("x.csv", stream, "text/csv")

    assert stream.sent <= 4 * PART  # at most the parts s3transfer buffers, and one more


def test_unreachable_endpoint_is_transient() -> None:
    # Port 9 (discard) on localhost: nothing listens there, the connection is refused.
    storage = S3Storage("bucket", endpoint_url="http://127.0.0.1:9", part_size=PART)

    with pytest.raises(TransientError):
        storage.upload("x.csv", GeneratedStream(10), "text/csv")


def test_presigned_download_serves_the_bytes_under_the_friendly_name(
    storage: S3Storage,
) -> None:
    stream = GeneratedStream(100 * 1024)
    storage.upload("tenant/job/abc.csv", stream, "text/csv")

    download = storage.download("tenant/job/abc.csv", "Bestellungen März 2024.csv", "text/csv")

    assert download.path is None and download.redirect_url is not None
    assert "X-Amz-Expires=120" in download.redirect_url
    response = requests.get(download.redirect_url, timeout=10)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stream.sha256.hexdigest()
    assert response.headers["Content-Type"] == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="Bestellungen M_rz 2024.csv"' in disposition
    assert "filename*=UTF-8''Bestellungen%20M%C3%A4rz%202024.csv" in disposition


def test_delete_is_idempotent(storage: S3Storage, s3_client: Any, s3_bucket: str) -> None:
    storage.upload("gone.csv", GeneratedStream(10), "text/csv")

    storage.delete("gone.csv")
    storage.delete("gone.csv")
    storage.delete("never-existed.csv")

    with pytest.raises(ClientError, match="404"):
        s3_client.head_object(Bucket=s3_bucket, Key="exports/gone.csv")


def test_opening_a_missing_object_is_permanent(storage: S3Storage) -> None:
    with pytest.raises(PermanentError, match="NoSuchKey"):
        storage.open("missing.csv")


def test_discard_removes_objects_and_unfinished_uploads_under_a_prefix_only(
    storage: S3Storage, s3_client: Any, s3_bucket: str
) -> None:
    storage.upload("t/job-1/finished.csv", io.BytesIO(b"a,b\n"), "text/csv")
    storage.upload("t/job-2/other-job.csv", io.BytesIO(b"a,b\n"), "text/csv")
    # What a killed predecessor leaves: a multipart upload it never completed nor aborted.
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key="exports/t/job-1/half.csv")

    removed = storage.discard("t/job-1/")

    assert removed == 2
    assert in_progress_uploads(s3_client, s3_bucket) == []
    listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert [item["Key"] for item in listed] == ["exports/t/job-2/other-job.csv"]


def test_discard_can_keep_the_result(storage: S3Storage, s3_client: Any, s3_bucket: str) -> None:
    storage.upload("t/job-1/result.csv", io.BytesIO(b"a,b\n"), "text/csv")
    storage.upload("t/job-1/stray.csv", io.BytesIO(b"a,b\n"), "text/csv")
    s3_client.create_multipart_upload(Bucket=s3_bucket, Key="exports/t/job-1/lost-answer.csv")

    assert storage.discard("t/job-1/", keep=["t/job-1/result.csv"]) == 2
    listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert [item["Key"] for item in listed] == ["exports/t/job-1/result.csv"]
    assert in_progress_uploads(s3_client, s3_bucket) == []


@pytest.mark.parametrize("size", [10, 6 * MiB], ids=["single-put", "multipart"])
@pytest.mark.parametrize(
    ("sse", "kms_key_id"), [("AES256", None), ("aws:kms", "alias/exports-test")]
)
def test_objects_are_written_with_server_side_encryption(
    aws_endpoint: str,
    s3_bucket: str,
    s3_client: Any,
    size: int,
    sse: str,
    kms_key_id: str | None,
) -> None:
    storage = S3Storage(
        s3_bucket,
        endpoint_url=aws_endpoint,
        region=REGION,
        part_size=PART,
        sse=sse,
        kms_key_id=kms_key_id,
    )

    storage.upload("tenant/job/export.csv", GeneratedStream(size), "text/csv")

    head = s3_client.head_object(Bucket=s3_bucket, Key="tenant/job/export.csv")
    assert head["ServerSideEncryption"] == sse
    assert head.get("SSEKMSKeyId") == kms_key_id


def test_a_kms_key_without_aws_kms_is_refused() -> None:
    with pytest.raises(ValueError, match="aws:kms"):
        S3Storage("bucket", sse="AES256", kms_key_id="alias/exports-test")
