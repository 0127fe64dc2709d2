"""Export files in a local folder, for development: `file:///some/dir`."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from app.platform.errors import PermanentError
from app.storage import Download

COPY_CHUNK = 1024 * 1024


class FileStorage:
    """Objects as files under `root`; a key is a relative path with "/" separators."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @classmethod
    def from_url(cls, url: str) -> FileStorage:
        """Storage for `file:///some/dir` (an absolute path)."""
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError(f"not a file storage URL: {url!r} (expected file:///some/dir)")
        return cls(Path(unquote(parts.path)))

    def path(self, key: str) -> Path:
        """The file that stores `key`; ValueError for keys that could leave `root`."""
        relative = PurePosixPath(key)
        if not key or relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"storage key must be a relative path without '..': {key!r}")
        return self.root.joinpath(*relative.parts)

    def upload(self, key: str, stream: BinaryIO, content_type: str) -> None:
        """Copy `stream` into `key`; the file appears only once the stream ended cleanly."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target so os.replace is an atomic rename on one file system.
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".part"
        )
        try:
            with os.fdopen(fd, "wb") as file:
                shutil.copyfileobj(stream, file, COPY_CHUNK)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def download(self, key: str, filename: str, content_type: str) -> Download:
        """The file's absolute path, for the API to send itself."""
        return Download(path=self.path(key))

    def open(self, key: str) -> BinaryIO:
        """The stored file, opened for reading; PermanentError when there is none."""
        try:
            return self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise PermanentError(f"no stored export at {key!r}") from exc

    def delete(self, key: str) -> None:
        """Remove the file if it is there."""
        self.path(key).unlink(missing_ok=True)

    def discard(self, prefix: str, *, keep: Collection[str] = ()) -> int:
        """Remove every file (finished or half-written) under the folder `prefix` but those
        in `keep`."""
        folder = self.path(prefix.rstrip("/"))
        kept = {self.path(key) for key in keep}
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        files = [p for p in files if p not in kept]
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)
