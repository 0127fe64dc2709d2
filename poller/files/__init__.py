"""Export files: COPY output → the job's format, cut into parts of at most max_part_bytes.

Every format streams: the storage upload pulls each part with read(n), and each part pulls
COPY records as it needs them. A part is a complete file of its format on its own (a CSV
header in each, every Parquet file with its footer, every workbook whole).

    record_batches (copy_out.py)  COPY records from libpq, many at a time
    RecordFeed (feed.py)          COPY records, read once across the parts
      ├─ TextPart (text.py)          csv, csv.gz, jsonl, jsonl.gz
      └─ TypedBlocks (typed.py)      CSV → Arrow tables
           ├─ ParquetPart (parquet.py)
           └─ XlsxPart (xlsx.py)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from app.exports.columns import Column
from app.exports.formats import FileOptions, Format
from poller.files.feed import Record, RecordFeed
from poller.files.text import GZIP_LEVEL, PROGRESS_SECONDS, TextPart

if TYPE_CHECKING:
    from poller.files.typed import TypedBlocks

UTF8_BOM = b"\xef\xbb\xbf"


class Part(Protocol):
    """One file of the export, read by the upload; its numbers are final once read() is
    done."""

    rows: int
    bytes: int
    full: bool  # it ended because the next rows did not fit: another part follows

    @property
    def sha256(self) -> str: ...

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FileShape:
    """What the file looks like: its format, its columns (described now), the options."""

    format: Format
    columns: tuple[Column, ...]
    options: FileOptions
    sheet_name: str = "Export"


class ExportParts:
    """The export's parts, in order; iterate, and upload each part before the next.

    `on_progress(rows, bytes)`, totals over the parts so far, is called at least every
    `progress_seconds` while data flows and at the end of each part; raising from it
    stops the export. `gzip_level` is zlib's level for .gz formats (EXPORTS_GZIP_LEVEL).
    """

    def __init__(
        self,
        record_batches: Iterable[Sequence[Record]],
        shape: FileShape,
        *,
        on_progress: Callable[[int, int], None],
        progress_seconds: float = PROGRESS_SECONDS,
        gzip_level: int = GZIP_LEVEL,
    ) -> None:
        self._feed = RecordFeed(record_batches)
        self._gzip_level = gzip_level
        self._shape = shape
        self._on_progress = on_progress
        self._progress_seconds = progress_seconds
        self._next_tick = time.monotonic() + progress_seconds
        self._done_rows = 0
        self._done_bytes = 0
        self._current: Part | None = None
        self._preamble = b""
        self._blocks: TypedBlocks | None = None
        fmt = shape.format
        if fmt.family == "csv":
            csv = shape.options.csv
            header = (self._feed.first() or b"") if csv.header else b""
            self._preamble = (UTF8_BOM if csv.bom else b"") + header
        elif fmt.typed:
            # pyarrow is imported by the first typed export, not at start-up: it adds ~35 MiB
            # to every poller's memory, which csv and jsonl exports never use.
            from poller.files.typed import TypedBlocks

            self._blocks = TypedBlocks(
                self._feed,
                shape.columns,
                shape.options.timezone,
                on_tick=self._tick,
                tick_seconds=progress_seconds,
            )

    def __iter__(self) -> Iterator[Part]:
        while True:
            part = self._open_part()
            self._current = part
            try:
                yield part
            finally:
                part.close()
            self._done_rows += part.rows
            self._done_bytes += part.bytes
            if not part.full:
                return

    def _open_part(self) -> Part:
        shape = self._shape
        max_bytes = shape.options.max_part_bytes
        if self._blocks is None:
            return TextPart(
                self._feed,
                gzip=shape.format.gzip,
                on_progress=self._report,
                preamble=self._preamble,
                max_bytes=max_bytes,
                progress_seconds=self._progress_seconds,
                gzip_level=self._gzip_level,
            )
        if shape.format.family == "parquet":
            from poller.files.parquet import ParquetPart

            return ParquetPart(self._blocks, max_bytes=max_bytes, on_progress=self._report)
        from poller.files.xlsx import XlsxPart

        return XlsxPart(
            self._blocks,
            shape.columns,
            max_bytes=max_bytes,
            on_progress=self._report,
            sheet_name=shape.sheet_name,
        )

    def _report(self, rows: int, bytes_: int) -> None:
        """A part's own numbers → the export's totals."""
        self._next_tick = time.monotonic() + self._progress_seconds
        self._on_progress(self._done_rows + rows, self._done_bytes + bytes_)

    def _tick(self) -> None:
        """Typed formats: rows are being read; report when it is time."""
        if time.monotonic() >= self._next_tick and self._current is not None:
            self._report(self._current.rows, self._current.bytes)


def part_key(base: str, number: int, fmt: Format) -> str:
    """Storage key of part `number` (from 1) under the export's `base`."""
    return f"{base}/part-{number:05d}.{fmt.name}"


def manifest_key(base: str) -> str:
    """Storage key of the manifest of an export in several parts."""
    return f"{base}/manifest.json"
