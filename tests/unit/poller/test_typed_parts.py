"""Parquet and Excel parts from COPY's CSV records: types, part limits, sheets past the row
limit. Read back with pyarrow and openpyxl, not with the writers."""

from __future__ import annotations

import io

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.exports.columns import Column
from app.platform.errors import PermanentError
from poller.files.feed import RecordFeed
from poller.files.parquet import ParquetPart
from poller.files.typed import TypedBlocks
from poller.files.xlsx import XlsxPart
from tests.support.batches import in_batches

COLUMNS = (
    Column("n", "integer", "bigint"),
    Column("at", "datetime", "timestamp with time zone"),
    Column("word", "string", "text"),
)


def records(count: int) -> list[bytes]:
    """COPY (FORMAT csv) records as PostgreSQL writes them, one per chunk."""
    return [
        f'{i},2024-03-31 0{i % 4}:30:00+0{1 + i % 2},"w{i:07d}, ""q"""\n'.encode()
        for i in range(count)
    ]


def blocks(count: int) -> TypedBlocks:
    return TypedBlocks(
        RecordFeed(in_batches(records(count))),
        COLUMNS,
        "Europe/Berlin",
        on_tick=lambda: None,
        tick_seconds=60,
    )


def read(part: ParquetPart | XlsxPart) -> bytes:
    data = bytearray()
    while piece := part.read(64 * 1024):
        data += piece
    part.close()
    return bytes(data)


def parquet_parts(source: TypedBlocks, max_bytes: int) -> list[tuple[ParquetPart, bytes]]:
    parts = []
    while True:
        part = ParquetPart(source, max_bytes=max_bytes, on_progress=lambda r, b: None)
        parts.append((part, read(part)))
        if not part.full:
            return parts


def test_parquet_parts_stay_within_the_limit_and_are_each_a_file() -> None:
    limit = 600_000  # FOOTER_RESERVE is 256 KiB of it
    parts = parquet_parts(blocks(200_000), limit)

    assert len(parts) >= 3
    numbers: list[int] = []
    for part, data in parts:
        assert len(data) == part.bytes <= limit
        table = pq.read_table(io.BytesIO(data))
        assert table.num_rows == part.rows
        assert table.schema.field("at").type == pa.timestamp("us", tz="Europe/Berlin")
        numbers += table.column("n").to_pylist()
    assert numbers == list(range(200_000))
    first = pq.read_table(io.BytesIO(parts[0][1])).slice(0, 2).to_pylist()
    assert first[0]["word"] == 'w0000000, "q"'
    # 01:30+02 is 23:30Z the day before: in Berlin, still winter time.
    assert first[1]["at"].isoformat() == "2024-03-31T00:30:00+01:00"


def test_an_empty_export_is_one_parquet_file_with_the_schema_and_no_rows() -> None:
    [(part, data)] = parquet_parts(blocks(0), 10_000_000)

    table = pq.read_table(io.BytesIO(data))
    assert part.rows == table.num_rows == 0
    assert table.schema.names == ["n", "at", "word"]


def test_a_value_no_column_type_can_hold_is_a_permanent_error() -> None:
    feed = RecordFeed([[b"1,infinity,x\n"]])
    source = TypedBlocks(feed, COLUMNS, "UTC", on_tick=lambda: None, tick_seconds=60)

    with pytest.raises(PermanentError, match="does not fit the file's column type"):
        source.take()


def test_rows_past_the_sheet_limit_continue_on_a_new_sheet_with_its_header() -> None:
    part = XlsxPart(
        blocks(7),
        COLUMNS,
        max_bytes=10_000_000,
        on_progress=lambda r, b: None,
        sheet_name="numbered",
        rows_per_sheet=3,
    )

    book = openpyxl.load_workbook(io.BytesIO(read(part)))

    assert book.sheetnames == ["numbered", "numbered 2", "numbered 3"]
    sheets = [[row for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets]
    assert all(rows[0] == ("n", "at", "word") for rows in sheets)
    assert [[row[0] for row in rows[1:]] for rows in sheets] == [[0, 1, 2], [3, 4, 5], [6]]
    assert all(sheet.freeze_panes == "A2" for sheet in book.worksheets)
    assert [sheet.auto_filter.ref for sheet in book.worksheets] == ["A1:C4", "A1:C4", "A1:C2"]
    assert part.rows == 7


def test_xlsx_parts_end_before_their_estimate_passes_the_limit() -> None:
    source = blocks(30_000)
    parts = []
    while True:
        part = XlsxPart(
            source, COLUMNS, max_bytes=400_000, on_progress=lambda r, b: None, sheet_name="x"
        )
        parts.append((part, read(part)))
        if not part.full:
            break

    assert len(parts) >= 3
    numbers = []
    for part, data in parts:
        assert len(data) <= 400_000
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
        column = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert len(column) == part.rows
        numbers += column
    assert numbers == list(range(30_000))
