"""One Excel workbook of an export (a part), written with xlsxwriter in constant_memory mode.

A workbook is a zip whose directory comes last, so it is built in a temporary file and
then uploaded. constant_memory keeps one row in memory and writes each sheet's XML to a
temporary file first: the disk needed is about that XML (several times the workbook's
size) plus the workbook; memory stays flat. Layout: a bold, frozen header row with an
autofilter; numbers as numbers, dates and timestamps as Excel dates with a visible format
(timestamps as wall-clock time in the export's time zone: Excel has no zones); past
1,048,575 data rows the rows continue on a new sheet with its own header.

Excel holds numbers as doubles and shows 15 significant digits, so integers and decimals
that need more are written as text, keeping every digit. A part ends before a block whose
CSV text could take it past `max_bytes` (a workbook is smaller than that text: zipped XML).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from app.exports.columns import Column
from poller.files.typed import TypedBlocks

MAX_SHEET_ROWS = 1_048_576  # Excel's limit, the header row included
WORKBOOK_OVERHEAD = 64 * 1024  # styles, sheet XML around the cells, zip directory
EXACT_DIGITS = 15  # what Excel shows of a number; longer ones become text
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_EXCEL_EPOCH_YEAR = 1900  # earlier dates are not Excel dates: written as ISO text

CellWriter = Callable[[Worksheet, int, int, Any], None]


class XlsxPart(io.RawIOBase):
    """Non-seekable reader over one workbook (a part) of the export."""

    def __init__(
        self,
        blocks: TypedBlocks,
        columns: Sequence[Column],
        *,
        max_bytes: int,
        on_progress: Callable[[int, int], None],
        sheet_name: str,
        rows_per_sheet: int = MAX_SHEET_ROWS - 1,
    ) -> None:
        """Rows come from `blocks`; sheets are named `sheet_name`, `sheet_name` 2, ..."""
        super().__init__()
        self._blocks = blocks
        self._columns = tuple(columns)
        self._max_bytes = max_bytes
        self._on_progress = on_progress
        self._sheet_name = sheet_name[:25]  # Excel allows 31, and " 9999" must fit
        self._rows_per_sheet = rows_per_sheet
        self._file: BinaryIO | None = None
        self._sha256 = hashlib.sha256()
        self.full = False  # the part ended because the next rows did not fit
        self.rows = 0
        self.bytes = 0  # handed to the reader so far; the workbook's size at the end

    @property
    def sha256(self) -> str:
        """Hex digest of the workbook; complete once read() has returned b""."""
        return self._sha256.hexdigest()

    def readable(self) -> bool:
        """Yes: this is a source stream."""
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes of the workbook (built on the first read); b"" at its end."""
        if self._file is None:
            self._file = self._build()
        data = self._file.read(-1 if size is None else size)
        self._sha256.update(data)
        self.bytes += len(data)
        return data

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill `target` from the workbook; 0 means it is complete."""
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Delete the temporary workbook."""
        if self._file is not None:
            self._file.close()  # already unlinked: the space is freed now
        super().close()

    def _build(self) -> BinaryIO:
        handle, path = tempfile.mkstemp(prefix="export-", suffix=".xlsx")
        os.close(handle)
        try:
            workbook = xlsxwriter.Workbook(
                path,
                {"constant_memory": True, "remove_timezone": True, "strings_to_numbers": False},
            )
            self._fill(workbook)
            workbook.close()
            built: BinaryIO = open(path, "rb")  # noqa: SIM115  # closed by close()
        finally:
            os.unlink(path)  # the open handle keeps the data until it is closed
        size = os.fstat(built.fileno()).st_size
        self._on_progress(self.rows, size)
        return built

    def _fill(self, workbook: xlsxwriter.Workbook) -> None:
        header = workbook.add_format({"bold": True})
        writers = [_cell_writer(c, workbook) for c in self._columns]
        sheet, row, sheets = None, 0, 0
        estimate = WORKBOOK_OVERHEAD
        while (block := self._blocks.take()) is not None:
            if estimate + block.raw_bytes > self._max_bytes:
                if self.rows:
                    self._blocks.hold(block)
                    self.full = True
                    break
                fit = block.table.num_rows * (self._max_bytes - estimate) // block.raw_bytes
                block, rest = block.split(max(1, fit))
                if rest.table.num_rows:
                    self._blocks.hold(rest)
            estimate += block.raw_bytes
            values = [column.to_pylist() for column in block.table.columns]
            for index in range(block.table.num_rows):
                if sheet is None or row > self._rows_per_sheet:
                    if sheet is not None:
                        _finish_sheet(sheet, row - 1, len(writers))
                    sheets += 1
                    sheet = self._new_sheet(workbook, sheets, header)
                    row = 1
                for col, write in enumerate(writers):
                    value = values[col][index]
                    if value is not None:  # NULL: an empty cell
                        write(sheet, row, col, value)
                row += 1
            self.rows += block.table.num_rows
        if sheet is None:  # no rows at all: the header alone
            sheet, row = self._new_sheet(workbook, 1, header), 1
        _finish_sheet(sheet, row - 1, len(writers))

    def _new_sheet(self, workbook: xlsxwriter.Workbook, number: int, header: Any) -> Worksheet:
        name = self._sheet_name if number == 1 else f"{self._sheet_name} {number}"
        sheet = workbook.add_worksheet(name)
        for col, column in enumerate(self._columns):
            width = 20 if column.type in ("datetime", "timestamp") else 12
            sheet.set_column(col, col, max(width, len(column.name) + 2))
            sheet.write_string(0, col, column.name, header)
        sheet.freeze_panes(1, 0)
        return sheet


def _finish_sheet(sheet: Worksheet, last_row: int, columns: int) -> None:
    sheet.autofilter(0, 0, last_row, max(0, columns - 1))


def _cell_writer(column: Column, workbook: xlsxwriter.Workbook) -> CellWriter:
    """How one column's non-NULL values are written."""
    match column.type:
        case "integer" | "decimal":
            return _write_exact_number
        case "number":
            return _write_float
        case "boolean":
            return lambda sheet, row, col, value: sheet.write_boolean(row, col, value)
        case "date":
            return _date_writer(workbook.add_format({"num_format": DATE_FORMAT}))
        case "datetime" | "timestamp":
            return _date_writer(workbook.add_format({"num_format": DATETIME_FORMAT}))
        case _:
            return lambda sheet, row, col, value: sheet.write_string(row, col, value)


def _write_exact_number(sheet: Worksheet, row: int, col: int, value: Any) -> None:
    """A number when Excel shows it exactly, else its digits as text."""
    number = value if isinstance(value, int | decimal.Decimal) else decimal.Decimal(value)
    if isinstance(number, decimal.Decimal) and not number.is_finite():
        sheet.write_string(row, col, str(value))
        return
    as_float = float(number)
    if decimal.Decimal(f"{as_float:.{EXACT_DIGITS}g}") == number:
        sheet.write_number(row, col, as_float)
    else:
        sheet.write_string(row, col, str(value))


def _write_float(sheet: Worksheet, row: int, col: int, value: float) -> None:
    if math.isfinite(value):
        sheet.write_number(row, col, value)
    else:
        sheet.write_string(row, col, str(value))  # Excel has no NaN or infinity


def _date_writer(cell_format: Any) -> CellWriter:
    def write(sheet: Worksheet, row: int, col: int, value: dt.date) -> None:
        if value.year < _EXCEL_EPOCH_YEAR:
            sheet.write_string(row, col, value.isoformat())
        else:
            sheet.write_datetime(row, col, value, cell_format)

    return write
