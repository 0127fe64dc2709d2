"""Export files in S3: streamed in by multipart upload, handed out by presigned GET."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any, BinaryIO, cast
from urllib.parse import quote, urlsplit

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import BotoCoreError, ClientError

from app.platform.aws import aws_client, boto_errors_classified, classify_boto_error
from app.platform.retrying import retry_transient
from app.storage import Download

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# 10,000 parts (S3's limit) of 16 MiB cover exports up to ~156 GiB; the size is unknown
# up front, so it cannot be chosen per export.
DEFAULT_PART_SIZE = 16 * MiB
MIN_PART_SIZE = 5 * MiB  # S3 rejects smaller parts (except the last).
# Parts sent at once, and parts read ahead of the network. Memory stays at a few parts
# whatever the export's size (measured: ~80 MiB peak with 16 MiB parts).
UPLOAD_CONCURRENCY = 2


class S3Storage:
    """Objects named `prefix + key` in one bucket."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        presign_seconds: int = 300,
        part_size: int = DEFAULT_PART_SIZE,
        sse: str = "",
        kms_key_id: str | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.presign_seconds = presign_seconds
        self.part_size = part_size
        # Server-side encryption asked for on every object we write ('' = bucket default).
        self.encryption: dict[str, str] = {"ServerSideEncryption": sse} if sse else {}
        if kms_key_id:
            if sse != "aws:kms":
                raise ValueError("kms_key_id needs sse='aws:kms'")
            self.encryption["SSEKMSKeyId"] = kms_key_id
        self._region = region
        self._endpoint_url = endpoint_url
        self._client = aws_client("s3", region, endpoint_url)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        presign_seconds: int = 300,
        part_size: int = DEFAULT_PART_SIZE,
        sse: str = "",
        kms_key_id: str | None = None,
    ) -> S3Storage:
        """Storage for `s3://bucket` or `s3://bucket/prefix`."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an S3 storage URL: {url!r} (expected s3://bucket/prefix)")
        return cls(
            parts.netloc,
            parts.path,
            region=region,
            endpoint_url=endpoint_url,
            presign_seconds=presign_seconds,
            part_size=part_size,
            sse=sse,
            kms_key_id=kms_key_id,
        )

    def object_name(self, key: str) -> str:
        """The S3 object key that stores `key`."""
        return self.prefix + key

    def upload(self, key: str, stream: BinaryIO, content_type: str) -> None:
        """Stream `stream` into `key` by multipart upload (one PUT when under one part).

        Not retried here: the stream cannot be replayed. On failure no upload is left in
        progress; an exception from `stream.read` propagates unchanged, S3 failures as
        TransientError/PermanentError. Note that s3transfer calls `stream.read` from one
        of its own threads, not the caller's.
        """
        name = self.object_name(key)
        # A client per upload, so the multipart uploads it starts are unmistakably ours.
        client = aws_client("s3", self._region, self._endpoint_url)
        upload_ids = _remember_multipart_uploads(client)
        source = _ExactReader(stream)
        try:
            # What client.upload_fileobj does, keeping hold of the transfer's future.
            with create_transfer_manager(client, self._transfer_config()) as manager:
                transfer = manager.upload(
                    source,
                    self.bucket,
                    name,
                    extra_args={"ContentType": content_type, **self.encryption},
                )
                source.stop_when = transfer.done
                transfer.result()
        except BaseException as exc:
            _abort_multipart_uploads(client, self.bucket, name, upload_ids)
            if exc is source.error or not isinstance(exc, BotoCoreError | ClientError):
                raise
            raise classify_boto_error(exc) from exc

    def download(self, key: str, filename: str, content_type: str) -> Download:
        """A presigned GET living `presign_seconds` that saves as `filename`."""
        with boto_errors_classified():
            url = self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.object_name(key),
                    "ResponseContentDisposition": content_disposition(filename),
                    "ResponseContentType": content_type,
                },
                ExpiresIn=self.presign_seconds,
            )
        return Download(redirect_url=url)

    @retry_transient
    def open(self, key: str) -> BinaryIO:
        """The object's body as a stream; PermanentError when there is no such object."""
        with boto_errors_classified():
            response = self._client.get_object(Bucket=self.bucket, Key=self.object_name(key))
        return cast(BinaryIO, response["Body"])

    @retry_transient
    def delete(self, key: str) -> None:
        """Delete the object; S3 itself answers success when it is already gone."""
        with boto_errors_classified():
            self._client.delete_object(Bucket=self.bucket, Key=self.object_name(key))

    @retry_transient
    def discard(self, prefix: str, *, keep: Collection[str] = ()) -> int:
        """Abort unfinished multipart uploads and delete objects under `prefix` but those
        in `keep`."""
        name = self.object_name(prefix)
        kept = {self.object_name(key) for key in keep}
        removed = 0
        with boto_errors_classified():
            uploads = self._client.get_paginator("list_multipart_uploads")
            for page in uploads.paginate(Bucket=self.bucket, Prefix=name):
                for upload in page.get("Uploads", []):
                    _abort(self._client, self.bucket, upload["Key"], upload["UploadId"])
                    removed += 1
            objects = self._client.get_paginator("list_objects_v2")
            for page in objects.paginate(Bucket=self.bucket, Prefix=name):
                for item in page.get("Contents", []):
                    if item["Key"] not in kept:
                        self._client.delete_object(Bucket=self.bucket, Key=item["Key"])
                        removed += 1
        return removed

    def _transfer_config(self) -> TransferConfig:
        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=UPLOAD_CONCURRENCY,
            # The CRT client, when installed, streams differently; keep one known behaviour.
            preferred_transfer_client="classic",
        )
        # s3transfer's default buffers 10 parts (160 MiB) ahead of the network.
        config.max_in_memory_upload_chunks = UPLOAD_CONCURRENCY
        return config


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 one (RFC 6266, 8187)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    exact = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'export'}\"; filename*=UTF-8''{exact}"


class _TransferOver(Exception):
    """Stops s3transfer reading a stream for a transfer that has already failed."""


class _ExactReader:
    """The caller's stream, read the way s3transfer assumes; its own errors kept apart.

    s3transfer treats a short read as the end of the stream (a short first read even turns
    into one unbounded `read()`), so `read(n)` here returns n bytes until the end. And after
    a failure s3transfer would read on to the end, running the whole export for nothing;
    `stop_when` ends that. The stream's own exception is kept so it can be re-raised as is.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.stop_when: Callable[[], bool] = lambda: False
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        """Exactly `size` bytes, fewer only at the end; everything left when size < 0."""
        chunks: list[bytes] = []
        wanted = size
        while wanted != 0:
            if self.stop_when():
                raise _TransferOver  # s3transfer keeps the first failure, not this.
            try:
                chunk = self._stream.read(wanted)
            except BaseException as exc:
                self.error = exc
                raise
            if not chunk:
                break
            chunks.append(chunk)
            if wanted > 0:
                wanted -= len(chunk)
        return b"".join(chunks)


def _remember_multipart_uploads(client: Any) -> list[str]:
    """Collect the UploadId of every multipart upload `client` starts from now on."""
    upload_ids: list[str] = []

    def remember(parsed: dict[str, Any], **_: Any) -> None:
        if "UploadId" in parsed:
            upload_ids.append(parsed["UploadId"])

    client.meta.events.register("after-call.s3.CreateMultipartUpload", remember)
    return upload_ids


def _abort_multipart_uploads(client: Any, bucket: str, name: str, upload_ids: list[str]) -> None:
    """Abort our failed multipart uploads, never masking the failure that got us here.

    s3transfer aborts on failure already, but only logs (at debug level) when its abort
    fails; so abort again, expecting NoSuchUpload. Uploads orphaned by a killed process
    need the bucket lifecycle rule AbortIncompleteMultipartUpload.
    """
    for upload_id in upload_ids:
        try:
            _abort(client, bucket, name, upload_id)
        except Exception:
            log.warning(
                "could not abort multipart upload",
                extra={"bucket": bucket, "key": name, "upload_id": upload_id},
                exc_info=True,
            )


@retry_transient
def _abort(client: Any, bucket: str, name: str, upload_id: str) -> None:
    """Abort one multipart upload; one that is already gone counts as aborted."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
            return  # s3transfer's own abort got there first: the usual case.
        raise classify_boto_error(exc) from exc
    except BotoCoreError as exc:
        raise classify_boto_error(exc) from exc
