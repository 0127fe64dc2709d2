"""The export file as a readable stream: COPY rows → (gzip) → bytes for the storage upload.

Storage pulls with read(n) (boto3's managed multipart upload does), so memory stays
constant whatever the export's size. On the way through we count rows and bytes and hash
what is stored, and call back regularly so the job's progress is saved and the export can
be stopped (cancelled, lease lost) by raising from that callback.

Two threads share the work, like `psql | gzip`: the one calling read() takes the COPY rows
(one small chunk per row, Python-bound), joins them into blocks and counts records; a
worker thread compresses the blocks (zlib-ng releases the GIL while it works), so the two
overlap on two cores. At most BLOCKS_IN_FLIGHT blocks are between the two, which bounds
memory.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

# zlib-ng: zlib's API and standard gzip output, ~30 % less CPU than zlib at the same
# level (output ~3 % larger on the demo CSV); compressing is most of an export's CPU.
from zlib_ng import zlib_ng

# Raw CSV handed to the worker at once: big enough that the GIL hand-over around each
# compress call is small next to the compression itself.
BLOCK_BYTES = 1024 * 1024
BLOCKS_IN_FLIGHT = 4
PROGRESS_SECONDS = 2.0
GZIP_LEVEL = 6  # gzip(1)'s default, so `psql | gzip` is a like-for-like reference
_GZIP = 16 + zlib_ng.MAX_WBITS  # zlib wbits that select the gzip container
_END = object()  # to the worker: the COPY output is complete; from it: all flushed
_STOP = object()  # to the worker: stop now, nothing more will be read


class _Compressor(Protocol):
    def compress(self, data: bytes | bytearray, /) -> bytes: ...

    def flush(self) -> bytes: ...


class ExportFile(io.RawIOBase):
    """Non-seekable reader over COPY ... (FORMAT csv, HEADER) output; close() it after use."""

    def __init__(
        self,
        copy_chunks: Iterable[bytes | memoryview],
        *,
        gzip: bool,
        on_progress: Callable[[int, int], None],
        progress_seconds: float = PROGRESS_SECONDS,
        gzip_level: int = GZIP_LEVEL,
        record_per_chunk: bool = False,
    ) -> None:
        """`record_per_chunk`: each chunk is exactly one CSV record (psycopg's COPY output).

        PostgreSQL sends COPY TO STDOUT output as one CopyData message per row (protocol
        docs, "Copy-out mode"), and psycopg yields one message per chunk: counting chunks
        is then exact and cheaper than parsing quotes, which costs ~15 % of the reader.
        """
        super().__init__()
        self._record_per_chunk = record_per_chunk
        self._chunks: Iterator[bytes | memoryview] = iter(copy_chunks)
        self._on_progress = on_progress
        self._progress_seconds = progress_seconds
        self._next_progress = time.monotonic() + progress_seconds
        self._output: deque[bytes] = deque()  # stored bytes not read yet, in order
        self._copy_done = False  # every COPY chunk has been handed to the worker
        self._eof = False  # ... and the worker has returned all of its output
        self._in_flight = 0  # blocks handed to the worker and not returned yet
        self._stopping = False
        self._failed: BaseException | None = None
        self._in_quotes = False
        self._newlines = 0
        self._sha256 = hashlib.sha256()
        self.bytes = 0  # of the stored (possibly compressed) output
        compressor = zlib_ng.compressobj(gzip_level, zlib_ng.DEFLATED, _GZIP) if gzip else None
        self._todo: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=self._work, args=(compressor,), name="export-gzip", daemon=True
        )
        self._worker.start()

    @property
    def rows(self) -> int:
        """Data rows read so far (CSV records, header excluded)."""
        return max(0, self._newlines - 1)

    @property
    def sha256(self) -> str:
        """Hex digest of the stored output; complete once read() has returned b""."""
        return self._sha256.hexdigest()

    def readable(self) -> bool:
        """Yes: this is a source stream."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (exactly `size` until the end); b"" once the export is complete.

        The result is assembled in a BytesIO as the worker's pieces arrive, and getvalue()
        hands over that buffer without copying: S3 parts are 16 MiB, so a part exists
        once, not twice (pieces, then their join), at the peak.
        """
        if size is None or size < 0:
            return self.readall()
        if self._failed is not None:
            raise self._failed
        part = io.BytesIO()
        wanted = size
        while True:
            while wanted > 0 and self._output:
                piece = self._output.popleft()
                if len(piece) > wanted:
                    self._output.appendleft(piece[wanted:])
                    piece = piece[:wanted]
                part.write(piece)
                wanted -= len(piece)
            if wanted == 0 or self._eof:
                return part.getvalue()
            self._step()

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `target` from the export; 0 means the export is complete."""
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Stop the worker thread (also when the export was abandoned half-way)."""
        if self._worker.is_alive():
            self._stopping = True  # skips the blocks still queued
            self._todo.put(_STOP)
            self._worker.join()
        super().close()

    def _step(self) -> None:
        """Hand the worker one more block if there is room, else wait for its output."""
        if not self._copy_done and self._in_flight < BLOCKS_IN_FLIGHT:
            self._todo.put(self._next_block())
            self._in_flight += 1
            if self._copy_done:
                self._todo.put(_END)  # its answer is the compressor's flush, then _END
                self._in_flight += 1
            while not self._done.empty():  # collect without waiting
                self._collect(self._done.get())
        else:
            self._collect(self._done.get())
        if self._eof or time.monotonic() >= self._next_progress:
            self._next_progress = time.monotonic() + self._progress_seconds
            self._on_progress(self.rows, self.bytes)

    def _next_block(self) -> bytearray:
        raw = bytearray()
        deadline = self._next_progress
        monotonic = time.monotonic
        chunks = 0
        for chunk in self._chunks:
            raw += chunk
            chunks += 1
            # A slow query must still report progress (and notice a cancel) on time.
            if len(raw) >= BLOCK_BYTES or monotonic() >= deadline:
                break
        else:
            self._copy_done = True
        if self._record_per_chunk:
            self._newlines += chunks
        else:
            self._count_records(raw)
        return raw

    def _collect(self, item: object) -> None:
        if isinstance(item, BaseException):
            self._failed = item  # the worker has ended: every later read() fails too
            raise item
        if item is _END:
            self._eof = True
            return
        assert isinstance(item, bytes)
        self._in_flight -= 1
        if item:
            self._sha256.update(item)
            self._output.append(item)
            self.bytes += len(item)

    def _work(self, compressor: _Compressor | None) -> None:
        """The worker: compress (or just pass on) each block, in order.

        Only compression here: each call that releases the GIL costs a wait for it afterwards
        (up to the 5 ms switch interval while the reader runs Python), so hashing, which
        also releases it, is done by the reader on the much smaller output.
        """
        try:
            while (block := self._todo.get()) is not _STOP:
                if self._stopping:
                    continue
                if block is _END:
                    self._done.put(compressor.flush() if compressor is not None else b"")
                    self._done.put(_END)
                else:
                    assert isinstance(block, bytearray)
                    self._done.put(
                        compressor.compress(block) if compressor is not None else bytes(block)
                    )
        except BaseException as exc:  # handed to the reader, who raises it
            self._done.put(exc)

    def _count_records(self, data: bytearray) -> None:
        # A CSV record ends at a newline outside quotes. Splitting on '"' alternates
        # outside/inside segments (a doubled "" toggles twice), so only every other
        # segment's newlines count; the state carries over chunk boundaries.
        if not self._in_quotes and b'"' not in data:
            self._newlines += data.count(b"\n")
            return
        segments = data.split(b'"')
        start = 1 if self._in_quotes else 0
        self._newlines += b"".join(segments[start::2]).count(b"\n")
        if len(segments) % 2 == 0:
            self._in_quotes = not self._in_quotes
