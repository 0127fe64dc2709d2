"""One Parquet file of an export, streamed: row groups are written to the output as they
fill, the footer when the part ends, so no temporary file is needed and memory stays at
about one row group (ROW_GROUP_BYTES of Arrow data) plus one 1 MiB block, and the
output waiting for the upload's next read. 8 MiB row groups (~64k demo rows) keep a 5M
row export's peak RSS flat; bigger ones bought no speed and cost memory (bench/README.md).

Row groups are zstd-compressed. A part ends before a block that could take it past
`max_bytes`: what is written counts at its size, what is buffered for the next row group
at its Arrow size (which Parquet's encoded, compressed form does not exceed), plus
FOOTER_RESERVE. Near the limit the buffer is written out early, as a smaller row group, so
that it counts at its real size and the part fills up.
"""

from __future__ import annotations

import hashlib
import io
from collections import deque
from collections.abc import Callable

import pyarrow as pa
from pyarrow import parquet as pq

from poller.files.typed import Block, TypedBlocks

ROW_GROUP_BYTES = 8 * 1024 * 1024
FOOTER_RESERVE = 256 * 1024
COMPRESSION = "zstd"


class _Output:
    """Where pyarrow writes: the bytes wait here until the upload reads them."""

    closed = False

    def __init__(self) -> None:
        self.pieces: deque[bytes] = deque()
        self.written = 0  # since the file began
        self.waiting = 0  # in `pieces`, not read yet

    def write(self, data: bytes) -> int:
        self.pieces.append(bytes(data))
        self.written += len(data)
        self.waiting += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: every write is already in `pieces`."""

    def tell(self) -> int:
        return self.written

    def close(self) -> None:
        self.closed = True


class ParquetPart(io.RawIOBase):
    """Non-seekable reader over one Parquet file (a part) of the export."""

    def __init__(
        self,
        blocks: TypedBlocks,
        *,
        max_bytes: int,
        on_progress: Callable[[int, int], None],
    ) -> None:
        """Rows come from `blocks`; `on_progress(rows, bytes)` is called at the end."""
        super().__init__()
        self._blocks = blocks
        self._max_bytes = max_bytes
        self._on_progress = on_progress
        self._output = _Output()
        self._writer = pq.ParquetWriter(self._output, blocks.schema, compression=COMPRESSION)
        self._group: list[pa.Table] = []
        self._group_bytes = 0
        self._eof = False
        self._sha256 = hashlib.sha256()
        self.full = False  # the part ended because the next rows did not fit
        self.rows = 0
        self.bytes = 0  # handed to the reader so far; the part's size once read() gave b""

    @property
    def sha256(self) -> str:
        """Hex digest of the file; complete once read() has returned b""."""
        return self._sha256.hexdigest()

    def readable(self) -> bool:
        """Yes: this is a source stream."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes; b"" once the file is complete."""
        if size is None or size < 0:
            return self.readall()
        pieces = self._output.pieces
        while self._output.waiting < size and not self._eof:
            self._add_block()
        data = io.BytesIO()  # getvalue() hands its buffer over: one copy of the part's bytes
        wanted = size
        while pieces and wanted > 0:
            piece = pieces.popleft()
            if len(piece) > wanted:
                pieces.appendleft(piece[wanted:])
                piece = piece[:wanted]
            data.write(piece)
            wanted -= len(piece)
        self._output.waiting -= size - wanted
        out = data.getvalue()
        self._sha256.update(out)
        self.bytes += len(out)
        return out

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `target` from the file; 0 means it is complete."""
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Release the writer (also when the export was abandoned half-way)."""
        if not self._eof:
            self._writer.close()
            self._eof = True
        super().close()

    def _add_block(self) -> None:
        block = self._blocks.take()
        if block is None:
            self._finish()
            return
        if not self._fits(block) and self._group:
            self._write_group()  # what is buffered now counts at its real, encoded size
        if not self._fits(block):
            if self.rows:
                self._blocks.hold(block)
                self.full = True
                self._finish()
                return
            block = self._first_rows(block, self._room())  # a part holds at least one row
        self._group.append(block.table)
        self._group_bytes += block.table.nbytes
        self.rows += block.table.num_rows
        if self._group_bytes >= ROW_GROUP_BYTES:
            self._write_group()

    def _room(self) -> int:
        """What the part may still grow by, the buffered rows counted at their Arrow size."""
        return self._max_bytes - self._output.written - self._group_bytes - FOOTER_RESERVE

    def _fits(self, block: Block) -> bool:
        return block.table.nbytes <= self._room()

    def _first_rows(self, block: Block, room: int) -> Block:
        """As many of the block's rows as fit in `room` (at least one); the rest is held."""
        rows = block.table.num_rows * max(room, 0) // max(1, block.table.nbytes)
        head, rest = block.split(max(1, rows))
        if rest.table.num_rows:
            self._blocks.hold(rest)
        return head

    def _write_group(self) -> None:
        if self._group:
            table = pa.concat_tables(self._group)
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._group = []
        self._group_bytes = 0

    def _finish(self) -> None:
        self._write_group()
        self._writer.close()  # the footer
        self._eof = True
        self._on_progress(self.rows, self._output.written)
