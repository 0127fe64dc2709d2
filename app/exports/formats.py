"""File formats and the options that shape an export file (columns, time zone, CSV dialect,
safe cells, parts). The values here are what a job stores and what the poller obeys."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Format:
    """One file format an export can be written in."""

    name: str
    content_type: str
    family: str  # csv | jsonl | xlsx | parquet: which writer produces it
    gzip: bool = False

    @property
    def typed(self) -> bool:
        """The writer needs each value typed (Excel cells, Parquet columns), not just text."""
        return self.family in ("xlsx", "parquet")


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("csv", "text/csv", "csv"),
        Format("csv.gz", "application/gzip", "csv", gzip=True),
        Format("jsonl", "application/jsonl", "jsonl"),
        Format("jsonl.gz", "application/gzip", "jsonl", gzip=True),
        Format(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        ),
        Format("parquet", "application/vnd.apache.parquet", "parquet"),
    )
}
DEFAULT_FORMAT = "csv.gz"
CSV_FAMILY = tuple(name for name, f in FORMATS.items() if f.family == "csv")
SAFE_CELL_FAMILIES = ("csv", "xlsx")

DEFAULT_TIMEZONE = "UTC"
CSV_DELIMITERS = (",", ";", "\t", "|")
MIB = 1024 * 1024
# S3's smallest multipart part: a smaller file part would buy nothing and cost requests.
MIN_PART_BYTES = 5 * MIB
DEFAULT_PART_BYTES = 1024 * MIB
MAX_PART_BYTES = 1024 * 1024 * MIB  # 1 TiB; S3 objects may be up to 5 TiB
# Text cells beginning with these are formulas (or become them) in Excel, LibreOffice and
# Google Sheets: OWASP "CSV injection". A leading ' makes the cell plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvOptions:
    """The CSV dialect: delimiter, header row, UTF-8 byte-order mark (for Excel)."""

    delimiter: str = ","
    header: bool = True
    bom: bool = False

    def to_json(self) -> dict[str, Any]:
        """As the API and exports.jobs.csv_options show it."""
        return {"delimiter": self.delimiter, "header": self.header, "bom": self.bom}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> CsvOptions:
        """From the stored or requested object; absent fields take their defaults."""
        return cls(**(value or {}))


@dataclass(frozen=True)
class FileOptions:
    """How the file is shaped, beyond its format."""

    columns: tuple[str, ...] | None = None  # None: every output column, in query order
    timezone: str = DEFAULT_TIMEZONE
    csv: CsvOptions = field(default_factory=CsvOptions)
    safe_cells: bool = True
    max_part_bytes: int = DEFAULT_PART_BYTES

    @classmethod
    def stored(
        cls,
        *,
        columns: Sequence[str] | None,
        timezone: str,
        csv_options: dict[str, Any] | None,
        safe_cells: bool,
        max_part_bytes: int,
    ) -> FileOptions:
        """From the columns of an exports.jobs or exports.schedules row."""
        return cls(
            columns=tuple(columns) if columns is not None else None,
            timezone=timezone,
            csv=CsvOptions.from_json(csv_options),
            safe_cells=safe_cells,
            max_part_bytes=max_part_bytes,
        )

    def changed_fields(self) -> dict[str, Any]:
        """The options that differ from their defaults, JSON-shaped (for fingerprints: a
        request that sets none of them keeps the fingerprint it had before they existed)."""
        default = FileOptions()
        changed: dict[str, Any] = {}
        if self.columns != default.columns:
            changed["columns"] = list(self.columns or ())
        if self.timezone != default.timezone:
            changed["timezone"] = self.timezone
        if self.csv != default.csv:
            changed["csv"] = self.csv.to_json()
        if self.safe_cells != default.safe_cells:
            changed["safe_cells"] = self.safe_cells
        if self.max_part_bytes != default.max_part_bytes:
            changed["max_part_bytes"] = self.max_part_bytes
        return changed


def zone(name: str) -> dt.tzinfo:
    """The IANA zone a job runs in, for showing its times to people; UTC if this machine's
    time zone data does not know it (the API checked it when the job was requested)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.UTC
