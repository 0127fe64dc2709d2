"""Typed values for the xlsx and parquet writers: COPY's CSV records → Arrow tables.

PostgreSQL writes each value as text (shaping.py), and pyarrow's CSV parser, in C++, turns
a block of whole records at a time into typed columns: no Python work per value. The
column types come from the description of the query (columns.py):

    integer → int16/int32/int64    number → float32/float64    decimal → decimal128(p, s)
    boolean → bool (t/f)           date → date32               timestamp → timestamp[us]
    datetime → timestamp[us, tz=<the job's zone>]   string, json, decimal without a
    precision → string

NULL is COPY's unquoted empty field; an empty string is quoted ("") and stays a string.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyarrow import csv as pa_csv

from app.exports.columns import Column
from app.platform.errors import PermanentError
from poller.files.feed import RecordFeed

# By Column.pg_type, PostgreSQL's format_type() spelling.
_INTEGERS = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64()}
_FLOATS = {"real": pa.float32(), "double precision": pa.float64()}
# How PostgreSQL's text of a timestamptz is read: an instant with its offset.
_INSTANT = pa.timestamp("us", tz="UTC")


def arrow_type(column: Column, timezone: str) -> pa.DataType:
    """The Arrow (and so Parquet) type a column's values are stored as."""
    match column.type:
        case "integer":
            return _INTEGERS.get(column.pg_type, pa.int64())
        case "number":
            return _FLOATS.get(column.pg_type, pa.float64())
        case "decimal" if column.has_decimal_type:
            assert column.precision is not None
            return pa.decimal128(column.precision, column.scale or 0)
        case "boolean":
            return pa.bool_()
        case "date":
            return pa.date32()
        case "datetime":
            return pa.timestamp("us", tz=timezone)
        case "timestamp":
            return pa.timestamp("us")
        case _:
            return pa.string()


def arrow_schema(columns: Sequence[Column], timezone: str) -> pa.Schema:
    """The file's schema: one field per chosen column, nullable, in order."""
    return pa.schema([pa.field(c.name, arrow_type(c, timezone)) for c in columns])


@dataclass(frozen=True)
class Block:
    """Rows as an Arrow table, and the bytes of CSV text they came from."""

    table: pa.Table
    raw_bytes: int

    def split(self, rows: int) -> tuple[Block, Block]:
        """The first `rows` rows, and the rest (raw bytes shared out in proportion)."""
        head_raw = self.raw_bytes * rows // max(1, self.table.num_rows)
        return (
            Block(self.table.slice(0, rows), head_raw),
            Block(self.table.slice(rows), self.raw_bytes - head_raw),
        )


class TypedBlocks:
    """Arrow tables of whole records from the feed, a block (≤ 1 MiB of CSV) at a time,
    read once across every part of an export (a block a part could not take is held)."""

    def __init__(
        self,
        feed: RecordFeed,
        columns: Sequence[Column],
        timezone: str,
        *,
        on_tick: Callable[[], None],
        tick_seconds: float,
    ) -> None:
        """`on_tick` is called at least every `tick_seconds` while rows are awaited (the
        caller reports progress and learns of a cancel there)."""
        self.schema = arrow_schema(columns, timezone)
        self._feed = feed
        self._on_tick = on_tick
        self._tick_seconds = tick_seconds
        parse_types = {
            f.name: _INSTANT if pa.types.is_timestamp(f.type) and f.type.tz else f.type
            for f in self.schema
        }
        self._read = pa_csv.ReadOptions(column_names=self.schema.names, use_threads=False)
        self._parse = pa_csv.ParseOptions(newlines_in_values=True)
        self._convert = pa_csv.ConvertOptions(
            column_types=parse_types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        )
        self._held: Block | None = None

    def take(self) -> Block | None:
        """The next rows, or None when every row has been taken."""
        if self._held is not None:
            held, self._held = self._held, None
            return held
        while not self._feed.exhausted:
            raw = bytearray()
            deadline = time.monotonic() + self._tick_seconds
            records, _ = self._feed.read_block(raw, limit=2**63, deadline=deadline, take_one=True)
            self._on_tick()
            if records:
                return Block(self._parsed(raw), len(raw))
        return None

    def hold(self, block: Block) -> None:
        """Give `block` back: the next take() returns it."""
        assert self._held is None, "one block of look-ahead"
        self._held = block

    def _parsed(self, block: bytearray) -> pa.Table:
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(block),
                read_options=self._read,
                parse_options=self._parse,
                convert_options=self._convert,
            )
        except pa.ArrowInvalid as exc:
            # e.g. 'infinity' in a timestamp column, a BC date: no Arrow value holds it.
            raise PermanentError(f"a value does not fit the file's column type: {exc}") from None
        return table.cast(self.schema)  # timestamptz: UTC instants shown in the job's zone
