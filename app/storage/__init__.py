"""Where finished exports are kept: S3 (production) or a local folder (development).

Pick a backend by URL with `storage_from_url`: `s3://bucket/prefix` or `file:///dir`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from app.platform.settings import Settings

# A tenant names the first folder of every key it stores: one plain path segment, in the
# alphabet of owner ids, and never "." or "..", which would name another folder.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9._:@+|-]{1,100}")


def tenant_problem(tenant: str) -> str | None:
    """Why `tenant` cannot name a folder of stored exports, or None."""
    if not TENANT_PATTERN.fullmatch(tenant) or tenant in {".", ".."}:
        return "must be 1-100 of A-Z a-z 0-9 . _ : @ + | - and not '.' or '..'"
    return None


def job_prefix(tenant: str, job_id: uuid.UUID) -> str:
    """The storage folder that holds a job's files, and only that job's; ValueError for a
    tenant tenant_problem refuses (checked before a job is queued, so this is a last guard)."""
    if problem := tenant_problem(tenant):
        raise ValueError(f"tenant {tenant!r} {problem}")
    return f"{tenant}/{job_id}/"


@dataclass(frozen=True)
class Download:
    """How the API answers a download link: redirect to a URL, or send a local file."""

    redirect_url: str | None = None
    path: Path | None = None


class Storage(Protocol):
    """A place to stream export files to and hand them back out from."""

    def upload(self, key: str, stream: BinaryIO, content_type: str) -> None:
        """Read `stream` to its end into `key` with constant memory.

        On any failure (including one raised by `stream.read`) nothing is left behind
        (an S3 multipart upload is aborted) and the exception propagates, wrapped as
        TransientError/PermanentError where it came from the backend itself.
        """
        ...

    def download(self, key: str, filename: str, content_type: str) -> Download:
        """A short-lived way for a browser to fetch `key` saved as `filename`."""
        ...

    def open(self, key: str) -> BinaryIO:
        """Read a stored object back (operators, tests); PermanentError when there is none."""
        ...

    def delete(self, key: str) -> None:
        """Remove a stored object; no error when it is already gone."""
        ...

    def discard(self, prefix: str, *, keep: Collection[str] = ()) -> int:
        """Remove every object and unfinished upload under `prefix` but those in `keep`; how
        many.

        The attempt that owns a job calls this for the job's prefix, before it starts and
        again once its result is recorded (keeping its files), so what a killed or cut-off
        predecessor left does not outlive it.
        """
        ...


def storage_from_settings(settings: Settings) -> Storage:
    """The storage backend the settings name, with their region, endpoint and encryption."""
    return storage_from_url(
        settings.storage_url,
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        presign_seconds=settings.presign_seconds,
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
    )


def storage_from_url(
    url: str,
    *,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    presign_seconds: int = 300,
    sse: str = "",
    kms_key_id: str | None = None,
) -> Storage:
    """The storage backend named by `url`; sse and kms_key_id are S3's encryption at rest."""
    if url.startswith("s3://"):
        from app.storage.s3 import S3Storage

        return S3Storage.from_url(
            url,
            region=region,
            endpoint_url=endpoint_url,
            presign_seconds=presign_seconds,
            sse=sse,
            kms_key_id=kms_key_id,
        )
    if url.startswith("file://"):
        from app.storage.local import FileStorage

        return FileStorage.from_url(url)
    raise ValueError(f"unsupported storage URL {url!r}: use s3://bucket/prefix or file:///dir")
