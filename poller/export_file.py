"""The export file as a readable stream: COPY rows → (gzip) → bytes for the storage upload.

Storage pulls with read(n) (boto3's managed multipart upload does), so memory stays
constant whatever the export's size. On the way through we count rows and bytes and hash
what is stored, and call back regularly so the job's progress is saved and the export can
be stopped (cancelled, lease lost) by raising from that callback.
"""

from __future__ import annotations

import hashlib
import io
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

FILL_BYTES = 64 * 1024
PROGRESS_SECONDS = 2.0
_GZIP = 16 + zlib.MAX_WBITS  # zlib wbits that select the gzip container


class ExportFile(io.RawIOBase):
    """Non-seekable reader over COPY ... (FORMAT csv, HEADER) output."""

    def __init__(
        self,
        copy_chunks: Iterable[bytes | memoryview],
        *,
        gzip: bool,
        on_progress: Callable[[int, int], None],
        progress_seconds: float = PROGRESS_SECONDS,
    ) -> None:
        super().__init__()
        self._chunks: Iterator[bytes | memoryview] = iter(copy_chunks)
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP) if gzip else None
        self._on_progress = on_progress
        self._progress_seconds = progress_seconds
        self._next_progress = time.monotonic() + progress_seconds
        self._buffer = bytearray()
        self._eof = False
        self._in_quotes = False
        self._newlines = 0
        self._sha256 = hashlib.sha256()
        self.bytes = 0  # of the stored (possibly compressed) output

    @property
    def rows(self) -> int:
        """Data rows read so far (CSV records, header excluded)."""
        return max(0, self._newlines - 1)

    @property
    def sha256(self) -> str:
        """Hex digest of everything read out so far (the whole object once at EOF)."""
        return self._sha256.hexdigest()

    def readable(self) -> bool:
        """Yes: this is a source stream."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (exactly `size` until the end); b"" once the export is complete.

        Overrides RawIOBase.read, which would allocate a second part-sized buffer and copy
        twice: S3 parts are 16 MiB, so each copy saved is 16 MiB of peak memory.
        """
        if size is None or size < 0:
            return self.readall()
        while len(self._buffer) < size and not self._eof:
            self._fill()
        with memoryview(self._buffer) as view:
            out = bytes(view[:size])
        del self._buffer[:size]
        return out

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `target` from the export; 0 means the export is complete."""
        while len(self._buffer) < len(target) and not self._eof:
            self._fill()
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        del self._buffer[:size]
        return size

    def _fill(self) -> None:
        raw = bytearray()
        for chunk in self._chunks:
            raw += chunk
            # A slow query must still report progress (and notice a cancel) on time.
            if len(raw) >= FILL_BYTES or time.monotonic() >= self._next_progress:
                break
        else:
            self._eof = True
        self._count_records(raw)
        out = bytes(raw)
        if self._compressor is not None:
            out = self._compressor.compress(out)
            if self._eof:
                out += self._compressor.flush()
        self._sha256.update(out)
        self.bytes += len(out)
        self._buffer += out
        if self._eof or time.monotonic() >= self._next_progress:
            self._next_progress = time.monotonic() + self._progress_seconds
            self._on_progress(self.rows, self.bytes)

    def _count_records(self, data: bytearray) -> None:
        # A CSV record ends at a newline outside quotes. Splitting on '"' alternates
        # outside/inside segments (a doubled "" toggles twice), so only every other
        # segment's newlines count; the state carries over chunk boundaries.
        segments = bytes(data).split(b'"')
        start = 1 if self._in_quotes else 0
        self._newlines += sum(s.count(b"\n") for s in segments[start::2])
        if len(segments) % 2 == 0:
            self._in_quotes = not self._in_quotes
