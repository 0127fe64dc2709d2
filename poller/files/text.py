"""One part of a text export (csv, jsonl, optionally gzipped) as a readable stream.

Storage pulls with read(n) (boto3's managed multipart upload does), so memory stays
constant whatever the export's size. On the way through we count rows and bytes and hash
what is stored, and call back regularly so the job's progress is saved and the export can
be stopped (cancelled, lease lost) by raising from that callback.

Two threads share the work, like `psql | gzip`: the one calling read() takes the COPY
records and joins them into blocks; a worker thread compresses the blocks (zlib-ng releases
the GIL while it works), so the two overlap on two cores. At most BLOCKS_IN_FLIGHT blocks
are between the two, which bounds memory.

A part ends when the feed is exhausted or when the next record could make it bigger than
`max_bytes`. Each compressed block ends with a zlib sync flush, so what has come back from
the worker is exactly what the part holds so far; the blocks still with the worker are
counted at their worst case (deflate's bound), so the limit holds without guessing.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

# zlib-ng: zlib's API and standard gzip output; at level 6 ~40 % less CPU than gzip -6 on
# the demo CSV (0.60 s against 1.04 s per 65 MB). Compressing is a third of a csv.gz
# export's CPU (bench/README.md). On the bench's demo CSV zlib-ng's level 6 writes
# 1.035-1.043x gzip -6's bytes, its level 5 1.046-1.053x in 55 % of the time, which is why
# the level is a setting.
from zlib_ng import zlib_ng

from poller.files.feed import BLOCK_BYTES, RecordFeed

BLOCKS_IN_FLIGHT = 4
PROGRESS_SECONDS = 2.0
GZIP_LEVEL = 6  # Settings.gzip_level's default (EXPORTS_GZIP_LEVEL)
_GZIP = 16 + zlib_ng.MAX_WBITS  # zlib wbits that select the gzip container
# gzip header and trailer, the final empty deflate block, a sync flush's marker.
_GZIP_FRAMING = 64
_END = object()  # to the worker: the part is complete; from it: all flushed
_STOP = object()  # to the worker: stop now, nothing more will be read
UNLIMITED = 2**63


class _Compressor(Protocol):
    def compress(self, data: bytes | bytearray, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


def stored_bound(raw: int, *, gzip: bool) -> int:
    """The most bytes `raw` bytes of input can become in the stored part."""
    # deflate's own bound is raw + raw/4096 + raw/16384 + 13 (zlib deflateBound).
    return raw + raw // 1000 + _GZIP_FRAMING if gzip else raw


class TextPart(io.RawIOBase):
    """Non-seekable reader over one part of the export; close() it after use."""

    def __init__(
        self,
        feed: RecordFeed,
        *,
        gzip: bool,
        on_progress: Callable[[int, int], None],
        preamble: bytes = b"",
        max_bytes: int = UNLIMITED,
        progress_seconds: float = PROGRESS_SECONDS,
        gzip_level: int = GZIP_LEVEL,
    ) -> None:
        """`preamble` starts the part (a BOM, the CSV header); `on_progress(rows, bytes)` is
        called every `progress_seconds` and at the end."""
        super().__init__()
        self._feed = feed
        self._gzip = gzip
        self._on_progress = on_progress
        self._preamble = preamble
        self._max_bytes = max_bytes
        self._progress_seconds = progress_seconds
        self._next_progress = time.monotonic() + progress_seconds
        self._output: deque[bytes] = deque()  # stored bytes not read yet, in order
        self._bounds: deque[int] = deque()  # worst-case output of each block in flight
        self._input_done = False  # the part's last block has been handed to the worker
        self._eof = False  # ... and the worker has returned all of its output
        self._stopping = False
        self._failed: BaseException | None = None
        self.full = False  # the part ended because the next record did not fit
        self.rows = 0  # data records in the part (the preamble is not one)
        self.bytes = 0  # of the stored (possibly compressed) output
        self._sha256 = hashlib.sha256()
        compressor = zlib_ng.compressobj(gzip_level, zlib_ng.DEFLATED, _GZIP) if gzip else None
        self._todo: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._worker = threading.Thread(
            target=self._work, args=(compressor,), name="export-gzip", daemon=True
        )
        self._worker.start()

    @property
    def sha256(self) -> str:
        """Hex digest of the stored output; complete once read() has returned b""."""
        return self._sha256.hexdigest()

    def readable(self) -> bool:
        """Yes: this is a source stream."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (exactly `size` until the end); b"" once the part is complete.

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
        """Fill `target` from the part; 0 means the part is complete."""
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

    def _room(self) -> int:
        """Bytes the part may still grow by, counting blocks in flight at their worst."""
        framing = _GZIP_FRAMING if self._gzip else 0
        return self._max_bytes - self.bytes - sum(self._bounds) - framing

    def _step(self) -> None:
        """Hand the worker one more block if there is room, else wait for its output."""
        if not self._input_done and len(self._bounds) < BLOCKS_IN_FLIGHT:
            room = self._room()
            if self._bounds and room < stored_bound(BLOCK_BYTES, gzip=self._gzip):
                # Near the limit: let what is in flight come back and be counted exactly.
                self._collect(self._done.get())
            else:
                self._hand_over(self._next_block(room))
                while not self._done.empty():  # collect without waiting
                    self._collect(self._done.get())
        else:
            self._collect(self._done.get())
        if self._eof or time.monotonic() >= self._next_progress:
            self._next_progress = time.monotonic() + self._progress_seconds
            self._on_progress(self.rows, self.bytes)

    def _next_block(self, room: int) -> bytearray:
        raw = bytearray(self._preamble)
        self._preamble = b""
        # The largest raw input whose worst-case output still fits in `room`.
        limit = room if not self._gzip else (room - _GZIP_FRAMING) * 1000 // 1001
        records, full = self._feed.read_block(
            raw, limit=limit, deadline=self._next_progress, take_one=self.rows == 0
        )
        self.rows += records
        # Blocks in flight count at their worst case: once they are back and counted
        # exactly, the record that did not fit may fit after all. Only then is the part full.
        self.full = full and not records and not self._bounds
        self._input_done = self.full or self._feed.exhausted
        return raw

    def _hand_over(self, block: bytearray) -> None:
        if block:
            self._todo.put(block)
            self._bounds.append(stored_bound(len(block), gzip=self._gzip))
        if self._input_done:
            self._todo.put(_END)  # its answer is the compressor's flush, then _END
            self._bounds.append(0)

    def _collect(self, item: object) -> None:
        if isinstance(item, BaseException):
            self._failed = item  # the worker has ended: every later read() fails too
            raise item
        if item is _END:
            self._eof = True
            return
        assert isinstance(item, bytes)
        self._bounds.popleft()
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
                elif compressor is None:
                    assert isinstance(block, bytearray)
                    self._done.put(bytes(block))
                else:
                    assert isinstance(block, bytearray)
                    out = compressor.compress(block)
                    # Everything handed over so far is now in the output: the part's size
                    # is known exactly, block by block.
                    self._done.put(out + compressor.flush(zlib_ng.Z_SYNC_FLUSH))
        except BaseException as exc:  # handed to the reader, who raises it
            self._done.put(exc)
