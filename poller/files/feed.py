"""The COPY output as whole records, read once across every part of an export."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

# Raw records handed on at once: big enough that per-block costs (a GIL hand-over around a
# compress call, a pyarrow parse) are small next to the work on the block itself.
BLOCK_BYTES = 1024 * 1024

Record = bytes | memoryview


class RecordFeed:
    """Records of COPY ... TO STDOUT output, arriving in batches (copy_out.record_batches).

    PostgreSQL sends COPY output as one CopyData message per row (protocol docs,
    "Copy-out mode"), so a record is exactly one row: counting records counts rows, and a
    part can end between any two records. A record that would not fit in the current part
    is held back for the next one.

    A batch that fits in the block whole is joined in one call: per record, Python work
    would cost as much as compressing it (bench/README.md, "Export: where the time goes").
    """

    def __init__(self, batches: Iterable[Sequence[Record]]) -> None:
        self._batches: Iterator[Sequence[Record]] = iter(batches)
        self._batch: Sequence[Record] = ()  # the current batch; records from _at on are due
        self._at = 0
        self.exhausted = False  # every record has been handed out

    def first(self) -> bytes | None:
        """The next record on its own (a CSV header), or None when there is none."""
        if not self._pending():
            return None
        record = self._batch[self._at]
        self._at += 1
        return bytes(record)

    def read_block(
        self, into: bytearray, *, limit: int, deadline: float, take_one: bool
    ) -> tuple[int, bool]:
        """Append whole records to `into` while it stays within `limit` bytes and up to
        BLOCK_BYTES, stopping early at `deadline` (time.monotonic) so that a slow query still
        reports progress on time; (records added, whether the next record did not fit).

        `take_one`: add the first record even if it is bigger than `limit` (a part must hold
        at least one record, however big).
        """
        records = 0
        cap = min(limit, BLOCK_BYTES)
        while self._pending():
            due = self._batch[self._at :] if self._at else self._batch
            if len(into) + sum(map(len, due)) < cap:
                into += b"".join(due)
                records += len(due)
                self._batch, self._at = (), 0
            else:  # the block (or the part) ends in this batch: record by record
                for record in due:
                    if len(into) + len(record) > limit and (records or not take_one):
                        return records, True  # held: _at still points at it
                    into += record
                    records += 1
                    self._at += 1
                    if len(into) >= cap:
                        return records, False
            if time.monotonic() >= deadline:
                return records, False
        return records, False

    def _pending(self) -> bool:
        """Whether a record is due, taking the next batch if needed; sets `exhausted`."""
        while self._at >= len(self._batch):
            batch = next(self._batches, None)
            if batch is None:
                self.exhausted = True
                return False
            self._batch, self._at = batch, 0
        return True
