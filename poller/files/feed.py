"""The COPY output as whole records, read once across every part of an export."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

# Raw records handed on at once: big enough that per-block costs (a GIL hand-over around a
# compress call, a pyarrow parse) are small next to the work on the block itself.
BLOCK_BYTES = 1024 * 1024


class RecordFeed:
    """Records of COPY ... TO STDOUT output, with one record of look-ahead.

    PostgreSQL sends COPY output as one CopyData message per row (protocol docs,
    "Copy-out mode") and psycopg yields one message per chunk, so a chunk is exactly one
    record: counting chunks counts rows, and a part can end between any two chunks. A record
    that would not fit in the current part is held back for the next one.
    """

    def __init__(self, chunks: Iterable[bytes | memoryview]) -> None:
        self._chunks: Iterator[bytes | memoryview] = iter(chunks)
        self._held: bytes | memoryview | None = None
        self.exhausted = False  # every record has been handed out

    def first(self) -> bytes | None:
        """The next record on its own (a CSV header), or None when there is none."""
        record = self._held if self._held is not None else next(self._chunks, None)
        self._held = None
        if record is None:
            self.exhausted = True
            return None
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
        monotonic = time.monotonic
        if self._held is not None:
            held, self._held = self._held, None
            if len(into) + len(held) > limit and not take_one:
                self._held = held
                return 0, True
            into += held
            records = 1
            if len(into) >= cap or monotonic() >= deadline:
                return records, False
        for chunk in self._chunks:
            if len(into) + len(chunk) > limit and (records or not take_one):
                self._held = chunk
                return records, True
            into += chunk
            records += 1
            if len(into) >= cap or monotonic() >= deadline:
                return records, False
        self.exhausted = True
        return records, False
