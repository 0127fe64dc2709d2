"""Choosing and configuring a storage backend from its URL; no network involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.storage import storage_from_url
from app.storage.local import FileStorage
from app.storage.s3 import DEFAULT_PART_SIZE, S3Storage, content_disposition


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("s3://bucket", ""),
        ("s3://bucket/", ""),
        ("s3://bucket/exports", "exports/"),
        ("s3://bucket/exports/", "exports/"),
        ("s3://bucket/a/b", "a/b/"),
    ],
)
def test_s3_url_names_bucket_and_prefix(url: str, prefix: str) -> None:
    storage = storage_from_url(url, region="eu-west-1", presign_seconds=60)

    assert isinstance(storage, S3Storage)
    assert storage.bucket == "bucket"
    assert storage.prefix == prefix
    assert storage.object_name("t/j/x.csv") == f"{prefix}t/j/x.csv"
    assert storage.presign_seconds == 60
    assert storage.part_size == DEFAULT_PART_SIZE


def test_file_url_names_the_folder(tmp_path: Path) -> None:
    storage = storage_from_url(f"file://{tmp_path}/exports%20dev")

    assert isinstance(storage, FileStorage)
    assert storage.root == tmp_path / "exports dev"


@pytest.mark.parametrize("url", ["s3://", "file://", "file://host/dir", "gs://bucket", "/tmp/x"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        storage_from_url(url)


def test_parts_smaller_than_s3_allows_are_refused() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Storage("bucket", part_size=1024 * 1024)


@pytest.mark.parametrize(
    ("filename", "header"),
    [
        ("export.csv", "attachment; filename=\"export.csv\"; filename*=UTF-8''export.csv"),
        (
            'Zoë "Q1".csv',
            "attachment; filename=\"Zo_ _Q1_.csv\"; filename*=UTF-8''Zo%C3%AB%20%22Q1%22.csv",
        ),
        ("日本.csv", "attachment; filename=\"__.csv\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.csv"),
    ],
)
def test_content_disposition_carries_ascii_and_utf8_names(filename: str, header: str) -> None:
    assert content_disposition(filename) == header
