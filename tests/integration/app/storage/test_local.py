"""FileStorage on a real temporary folder."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app.platform.errors import PermanentError
from app.storage import storage_from_url
from app.storage.local import FileStorage


class ExportCancelled(Exception):
    """What our export code raises from inside `read` to stop an upload."""


class BreakingStream:
    """Hands out `good` bytes, then raises ExportCancelled (a cancelled export)."""

    def __init__(self, good: bytes) -> None:
        self._good = io.BytesIO(good)

    def read(self, size: int = -1) -> bytes:
        """The good bytes first; once they are used up, the error."""
        chunk = self._good.read(size)
        if not chunk:
            raise ExportCancelled("cancelled by the user")
        return chunk


@pytest.fixture
def storage(tmp_path: Path) -> FileStorage:
    """File storage in an empty folder, made the way the settings make it."""
    storage = storage_from_url(f"file://{tmp_path / 'exports'}")
    assert isinstance(storage, FileStorage)
    return storage


def files_under(folder: Path) -> list[Path]:
    """Every file (not folder) below `folder`, hidden temporary files included."""
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_round_trip(storage: FileStorage) -> None:
    data = b"id,name\n" + b"1,Zo\xc3\xab\n" * 100_000

    storage.upload("tenant/job/export.csv", io.BytesIO(data), "text/csv")

    with storage.open("tenant/job/export.csv") as stored:
        assert stored.read() == data
    assert files_under(storage.root) == [storage.root / "tenant" / "job" / "export.csv"]


def test_upload_replaces_an_earlier_file(storage: FileStorage) -> None:
    storage.upload("a.csv", io.BytesIO(b"old"), "text/csv")
    storage.upload("a.csv", io.BytesIO(b"new"), "text/csv")

    assert storage.open("a.csv").read() == b"new"


def test_failing_stream_leaves_no_file_and_keeps_its_error(storage: FileStorage) -> None:
    with pytest.raises(ExportCancelled) as raised:
        storage.upload("tenant/job/export.csv", BreakingStream(b"x" * 3_000_000), "text/csv")

    assert type(raised.value) is ExportCancelled
    assert files_under(storage.root) == []


def test_failed_upload_keeps_the_earlier_file(storage: FileStorage) -> None:
    storage.upload("a.csv", io.BytesIO(b"complete"), "text/csv")

    with pytest.raises(ExportCancelled):
        storage.upload("a.csv", BreakingStream(b"partial"), "text/csv")

    assert storage.open("a.csv").read() == b"complete"
    assert files_under(storage.root) == [storage.root / "a.csv"]


@pytest.mark.parametrize(
    "key", ["../outside.csv", "tenant/../../outside.csv", "/etc/passwd", "a/..", ""]
)
def test_keys_that_could_leave_the_folder_are_refused(storage: FileStorage, key: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        storage.upload(key, io.BytesIO(b"x"), "text/csv")
    with pytest.raises(ValueError, match="relative path"):
        storage.download(key, "x.csv", "text/csv")
    with pytest.raises(ValueError, match="relative path"):
        storage.open(key)
    with pytest.raises(ValueError, match="relative path"):
        storage.delete(key)
    assert not (storage.root.parent / "outside.csv").exists()


def test_download_gives_the_absolute_path(storage: FileStorage) -> None:
    storage.upload("tenant/job/export.csv", io.BytesIO(b"a,b\n"), "text/csv")

    download = storage.download("tenant/job/export.csv", "Export.csv", "text/csv")

    assert download.redirect_url is None
    assert download.path == storage.root / "tenant" / "job" / "export.csv"
    assert download.path.is_absolute()
    assert download.path.read_bytes() == b"a,b\n"


def test_delete_is_idempotent(storage: FileStorage) -> None:
    storage.upload("a.csv", io.BytesIO(b"x"), "text/csv")

    storage.delete("a.csv")
    storage.delete("a.csv")

    assert files_under(storage.root) == []


def test_opening_a_missing_file_is_permanent(storage: FileStorage) -> None:
    with pytest.raises(PermanentError):
        storage.open("missing.csv")


def test_discard_removes_files_under_a_prefix_only(storage: FileStorage, tmp_path: Path) -> None:
    storage.upload("t/job-1/finished.csv", io.BytesIO(b"a,b\n"), "text/csv")
    storage.upload("t/job-2/other-job.csv", io.BytesIO(b"a,b\n"), "text/csv")
    half_written = storage.path("t/job-1/.half.csv.tmp")  # a killed upload's temp file
    half_written.write_bytes(b"a,")

    assert storage.discard("t/job-1/") == 2
    assert storage.discard("t/no-such-job/") == 0
    assert files_under(tmp_path / "exports") == [storage.path("t/job-2/other-job.csv")]


def test_discard_can_keep_one_file(storage: FileStorage, tmp_path: Path) -> None:
    storage.upload("t/job-1/result.csv", io.BytesIO(b"a,b\n"), "text/csv")
    storage.upload("t/job-1/stray.csv", io.BytesIO(b"a,b\n"), "text/csv")

    assert storage.discard("t/job-1/", keep=["t/job-1/result.csv"]) == 1
    assert files_under(tmp_path / "exports") == [storage.path("t/job-1/result.csv")]
