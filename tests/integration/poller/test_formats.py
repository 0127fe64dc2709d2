"""Every format, written by a real poller and read back by an independent reader (csv, json,
openpyxl, pyarrow): each value of the typed_values test kind must come back as it was."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import psycopg
import pyarrow as pa
import pytest
from flask.testing import FlaskClient
from psycopg import sql
from pyarrow import parquet as pq

from app.exports.catalog import parse_kind
from app.exports.formats import FORMATS, FileOptions
from app.exports.shaping import copy_statement
from app.platform.settings import Settings
from poller.core.dispatch import Poller
from tests.support.exports import all_settled, job_ended, stored_file, submit
from tests.support.waiting import wait_until

BERLIN = ZoneInfo("Europe/Berlin")
COLUMNS = [
    "id", "big", "small", "price", "huge", "ratio", "flag", "day", "at", "local_at", "note",
    "tags", "doc",
]  # fmt: skip


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.UTC)


D = Decimal
# tests/support/kinds/typed_values.sql, row by row, as Python values.
EXPECTED: list[tuple[Any, ...]] = [
    (1, 9007199254740993, -3, D("1234.50"), D("12345678901234567890.123456789"), 0.1, True,
     dt.date(2024, 3, 31), utc(2024, 3, 31, 0, 30), dt.datetime(2024, 3, 31, 2, 30),
     "=SUM(A1:A9)", ["a", "b,c"], {"k": [1, "x"], "n": None}),
    (2, -42, 7, D("-0.01"), D("-1"), -2.5e-10, False, dt.date(1999, 12, 31),
     utc(2024, 3, 31, 1, 30), dt.datetime(1999, 12, 31, 23, 59, 59, 500000),
     'Grüße 👋 "quoted", tab\there\nnew line', [], {"emoji": "👋"}),
    (3, 0, 0, D("0.00"), D("0"), 1e300, True, dt.date(2024, 2, 29), utc(2024, 10, 27, 0, 30),
     dt.datetime(2024, 10, 27, 2, 30), "", ["x"], []),
    (4, None, None, None, None, None, None, None, None, None, None, None, None),
    (5, 1, 1, D("1.00"), D("1"), 1.0, True, dt.date(2024, 1, 1), utc(2024, 10, 27, 1, 30),
     dt.datetime(2024, 1, 1), "-5 apples", [None, "y"], "text"),
    (6, 2, 2, D("2.00"), D("2"), 2.0, False, dt.date(2024, 1, 2),
     utc(2024, 6, 1, 12, 0, 0, 123456), dt.datetime(2024, 1, 2), "+1 and @cmd", None, None),
    (7, 3, 3, D("3.00"), D("3"), 3.0, True, dt.date(2024, 1, 3), utc(2024, 1, 1),
     dt.datetime(2024, 1, 3), "\tstarts with a tab", ["z"], {}),
    (8, 4, 4, D("4.00"), D("4"), 4.0, True, dt.date(2024, 1, 4), utc(2024, 1, 1),
     dt.datetime(2024, 1, 4), "@SUM(1)", ["w"], 1),
]  # fmt: skip
NOTE = COLUMNS.index("note")
AT = COLUMNS.index("at")
# Safe cells: these notes start like a formula, so csv and xlsx prefix them with '.
FORMULA_ROWS = {1, 5, 6, 7, 8}


def safe(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """`row` as csv and xlsx write it with safe_cells on (the default)."""
    if row[0] not in FORMULA_ROWS:
        return row
    return (*row[:NOTE], "'" + row[NOTE], *row[NOTE + 1 :])


def export_all(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
    requests: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Submit every request, run a poller, and return each finished job row by label."""
    ids = {
        label: submit(client, kind="typed_values", owner_id="typed-1", **body)["id"]
        for label, body in requests.items()
    }
    start_poller()
    wait_until(lambda: all_settled(db), what="the exports")
    ended = {label: job_ended(db, job_id) for label, job_id in ids.items()}
    for label, job in ended.items():
        assert job is not None and job["state"] == "succeeded", (label, job and job["last_error"])
    return ended  # type: ignore[return-value]


def only_part(settings: Settings, job: dict[str, Any]) -> bytes:
    [part] = job["result_parts"]
    assert part["key"] == job["result_key"]
    return stored_file(settings, part["key"]).read_bytes()


@pytest.fixture
def exported(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> dict[str, bytes]:
    """The typed_values kind in every format, in Berlin time."""
    formats = ["csv", "csv.gz", "jsonl", "jsonl.gz", "xlsx", "parquet"]
    jobs = export_all(
        client,
        db,
        settings,
        start_poller,
        {f: {"format": f, "timezone": "Europe/Berlin"} for f in formats},
    )
    for f, job in jobs.items():
        assert job["result_rows"] == len(EXPECTED), f
        assert job["timezone"] == "Europe/Berlin"
    return {f: only_part(settings, job) for f, job in jobs.items()}


def read_csv(data: bytes) -> tuple[list[str], list[tuple[Any, ...]]]:
    """CSV text → typed values (an empty field is NULL; see the raw-bytes checks)."""
    header, *records = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))

    def value(column: str, text: str) -> Any:
        if text == "" and column != "note":
            return None
        match column:
            case "id" | "big" | "small":
                return int(text)
            case "price" | "huge":
                return Decimal(text)
            case "ratio":
                return float(text)
            case "flag":
                return {"t": True, "f": False}[text]
            case "day":
                return dt.date.fromisoformat(text)
            case "at" | "local_at":
                return dt.datetime.fromisoformat(text)
            case "tags" | "doc":
                return json.loads(text)
            case _:
                return text

    return header, [tuple(value(c, t) for c, t in zip(header, r, strict=True)) for r in records]


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_csv_round_trips_every_value(exported: dict[str, bytes], fmt: str) -> None:
    data = exported[fmt]
    text = gzip.decompress(data) if fmt.endswith(".gz") else data

    header, rows = read_csv(text)

    assert header == COLUMNS
    expected = [safe(row) for row in EXPECTED]
    expected[3] = (*expected[3][:NOTE], "", *expected[3][NOTE + 1 :])  # NULL: an empty field
    assert rows == expected
    # Time zone: instants carry the Berlin offset of their day (DST starts 2024-03-31,
    # ends 2024-10-27: 02:30 happens twice that day, once in each offset).
    assert [rows[i][AT].utcoffset() for i in (0, 1)] == [
        dt.timedelta(hours=1),
        dt.timedelta(hours=2),
    ]
    assert b"2024-03-31 01:30:00+01" in text and b"2024-03-31 03:30:00+02" in text
    assert b"2024-10-27 02:30:00+02" in text and b"2024-10-27 02:30:00+01" in text
    # As PostgreSQL writes CSV: NULL is an unquoted empty field, an empty string is "".
    lines = text.decode().split("\n")
    assert any(line.startswith("4,,,,,,,,,,,,") for line in lines)
    assert any(line.startswith("3,") and ',"",' in line for line in lines)


def test_jsonl_round_trips_every_value_with_exact_numbers(exported: dict[str, bytes]) -> None:
    for fmt in ("jsonl", "jsonl.gz"):
        data = exported[fmt]
        text = (gzip.decompress(data) if fmt.endswith(".gz") else data).decode("utf-8")
        lines = text.splitlines()
        assert len(lines) == len(EXPECTED) and text.endswith("\n")
        # Numbers keep every digit (parse_float=Decimal reads them without rounding).
        objects = [json.loads(line, parse_float=Decimal) for line in lines]
        assert [list(o) for o in objects] == [COLUMNS] * len(EXPECTED)

        def typed(column: str, value: Any) -> Any:
            if value is None:
                return None
            if column == "ratio":
                return float(value)
            if column in ("day",):
                return dt.date.fromisoformat(value)
            if column in ("at", "local_at"):
                return dt.datetime.fromisoformat(value)
            return value

        rows = [tuple(typed(c, o[c]) for c in COLUMNS) for o in objects]
        assert rows == EXPECTED, fmt
        assert objects[0]["at"] == "2024-03-31T01:30:00+01:00"
        assert objects[1]["at"] == "2024-03-31T03:30:00+02:00"
        assert objects[0]["big"] == 9007199254740993  # past 2**53: still exact
        assert objects[0]["doc"] == {"k": [1, "x"], "n": None}  # nested, not a string


def test_parquet_round_trips_every_value_with_its_type(exported: dict[str, bytes]) -> None:
    table = pq.read_table(io.BytesIO(exported["parquet"]))

    schema = table.schema
    assert schema.names == COLUMNS
    assert schema.field("id").type == pa.int32()
    assert schema.field("big").type == pa.int64()
    assert schema.field("small").type == pa.int16()
    assert schema.field("price").type == pa.decimal128(12, 2)
    assert schema.field("huge").type == pa.string()  # numeric without a precision
    assert schema.field("ratio").type == pa.float64()
    assert schema.field("flag").type == pa.bool_()
    assert schema.field("day").type == pa.date32()
    assert schema.field("at").type == pa.timestamp("us", tz="Europe/Berlin")
    assert schema.field("local_at").type == pa.timestamp("us")
    assert schema.field("tags").type == pa.string()  # JSON text
    metadata = pq.read_metadata(io.BytesIO(exported["parquet"]))
    assert metadata.row_group(0).column(0).compression == "ZSTD"

    def typed(column: str, value: Any) -> Any:
        if value is None:
            return None
        if column == "huge":
            return Decimal(value)
        if column in ("tags", "doc"):
            return json.loads(value)
        if column == "at":
            # In Berlin, as stored; as UTC to compare (Python never finds a time in a DST
            # fold equal to one in another zone, PEP 495).
            assert value.tzinfo.key == "Europe/Berlin"
            return value.astimezone(dt.UTC)
        return value

    rows = [tuple(typed(c, r[c]) for c in COLUMNS) for r in table.to_pylist()]
    assert rows == EXPECTED


def test_xlsx_opens_with_typed_cells_a_frozen_header_and_a_filter(
    exported: dict[str, bytes],
) -> None:
    book = openpyxl.load_workbook(io.BytesIO(exported["xlsx"]))
    [sheet] = book.worksheets

    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:M{len(EXPECTED) + 1}"
    header = [cell.value for cell in sheet[1]]
    assert header == COLUMNS
    assert all(cell.font.b for cell in sheet[1])
    assert "yyyy-mm-dd" in sheet.cell(2, COLUMNS.index("day") + 1).number_format
    assert "hh:mm:ss" in sheet.cell(2, AT + 1).number_format
    assert isinstance(sheet.cell(2, COLUMNS.index("price") + 1).value, float)  # a number

    def typed(column: str, value: Any) -> Any:
        if value is None:
            return None
        match column:
            case "big" | "huge" | "price" if isinstance(value, str):  # > 15 digits: text
                return Decimal(value) if column != "big" else int(value)
            case "price" | "huge":
                return Decimal(str(value))
            case "day":
                return value.date()
            case "tags" | "doc":
                return json.loads(value)
        return value

    rows = [
        tuple(typed(c, v) for c, v in zip(COLUMNS, r, strict=True))
        for r in sheet.iter_rows(min_row=2, values_only=True)
    ]

    def as_excel(row: tuple[Any, ...]) -> tuple[Any, ...]:
        """Excel has no zones (wall-clock time in Berlin) and keeps milliseconds."""
        values = list(safe(row))
        if values[AT] is not None:
            local = values[AT].astimezone(BERLIN).replace(tzinfo=None)
            values[AT] = local.replace(microsecond=local.microsecond // 1000 * 1000)
        return tuple(values)

    assert rows == [as_excel(row) for row in EXPECTED]
    assert sheet.cell(2, COLUMNS.index("big") + 1).value == "9007199254740993"  # every digit


def test_chosen_columns_in_their_order_and_safe_cells_off(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    jobs = export_all(
        client,
        db,
        settings,
        start_poller,
        {
            "csv": {"format": "csv", "columns": ["note", "id"], "safe_cells": False},
            "semicolon": {
                "format": "csv",
                "columns": ["id", "price"],
                "csv": {"delimiter": ";", "header": False, "bom": True},
            },
            "parquet": {"format": "parquet", "columns": ["doc", "at"]},
        },
    )

    header, rows = read_csv(only_part(settings, jobs["csv"]))
    assert header == ["note", "id"]
    assert rows[0] == ("=SUM(A1:A9)", 1)  # as stored: safe_cells was turned off
    semicolon = only_part(settings, jobs["semicolon"])
    assert semicolon.startswith(b"\xef\xbb\xbf1;1234.50\n2;-0.01\n")  # BOM, no header
    table = pq.read_table(io.BytesIO(only_part(settings, jobs["parquet"])))
    assert table.schema.names == ["doc", "at"]
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")  # the default zone


@pytest.mark.parametrize(
    ("body", "pointer", "words"),
    [
        ({"columns": ["id", "nope"]}, "/columns/1", "must be one of"),
        ({"columns": []}, "/columns", ""),
        ({"columns": ["id", "id"]}, "/columns", ""),
        ({"timezone": "Mars/Olympus"}, "/timezone", "time zone"),
        ({"csv": {"delimiter": "x"}}, "/csv/delimiter", ""),
        ({"format": "parquet", "csv": {"bom": True}}, "/csv", "csv and csv.gz"),
        ({"max_part_bytes": 1024}, "/max_part_bytes", ""),
        ({"safe_cells": "yes"}, "/safe_cells", ""),
    ],
)
def test_bad_file_options_are_a_422_naming_the_field(
    client: FlaskClient, body: dict[str, Any], pointer: str, words: str
) -> None:
    response = client.post(
        "/v1/exports", json={"owner_id": "u", "kind": "typed_values", **body}
    )

    assert response.status_code == 422, response.get_json()
    errors = {e["pointer"]: e["detail"] for e in response.get_json()["errors"]}
    assert pointer in errors, errors
    assert words in errors[pointer]


def test_kinds_list_their_output_columns_with_types(client: FlaskClient) -> None:
    kinds = {k["name"]: k for k in client.get("/v1/export-kinds").get_json()["kinds"]}

    columns = {c["name"]: c["type"] for c in kinds["typed_values"]["columns"]}
    assert list(columns) == COLUMNS
    assert columns == {
        "id": "integer", "big": "integer", "small": "integer", "price": "decimal",
        "huge": "decimal", "ratio": "number", "flag": "boolean", "day": "date",
        "at": "datetime", "local_at": "timestamp", "note": "string", "tags": "json",
        "doc": "json",
    }  # fmt: skip
    assert kinds["typed_values"]["formats"] == [
        "csv", "csv.gz", "jsonl", "jsonl.gz", "xlsx", "parquet",
    ]  # fmt: skip


SAFE_CELLS = [  # (stored text, as csv and xlsx write it with safe_cells on)
    ("=1+1", "'=1+1"),
    ("+49 30 1234", "'+49 30 1234"),
    ("-5 apples", "'-5 apples"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tindented", "'\tindented"),
    ("\rreturn", "'\rreturn"),
    ("plain", "plain"),
    ("a=b", "a=b"),
    ("'quoted", "'quoted"),
    ("", ""),
    ("42 apples", "42 apples"),  # below 'A' but no formula start
    ("A=1", "A=1"),  # 'A' itself, where the shortcut in shaping.py begins
    ("Ωmega", "Ωmega"),  # ascii() of a non-ASCII start is its code point
]


def test_safe_cells_prefix_formula_starts_and_leave_numbers_alone(db: psycopg.Connection) -> None:
    # The shaping SQL on its own (what every csv and xlsx export runs), against PostgreSQL.
    values = ", ".join(f"({sql.quote(text)}, -{n})" for n, (text, _) in enumerate(SAFE_CELLS))
    kind = parse_kind(
        "cells",
        '/*---\ndescription = "x"\n---*/\n'
        f"SELECT v.text, v.n FROM (VALUES {values}) AS v(text, n)"
        " WHERE %(owner_id)s::text IS NOT NULL",
    )
    columns = kind.describe(db)

    def exported(**options: Any) -> list[list[str]]:
        statement = copy_statement(kind.query, columns, FORMATS["csv"], FileOptions(**options))
        with db.cursor() as cur, cur.copy(statement, kind.bind("u", {})) as copy:
            text = b"".join(bytes(chunk) for chunk in copy).decode()
        return list(csv.reader(io.StringIO(text, newline="")))[1:]

    assert exported() == [[safe, str(-n)] for n, (_, safe) in enumerate(SAFE_CELLS)]
    assert exported(safe_cells=False) == [[raw, str(-n)] for n, (raw, _) in enumerate(SAFE_CELLS)]


def test_the_gzip_level_setting_changes_the_file_size_not_its_content(
    client: FlaskClient,
    db: psycopg.Connection,
    settings: Settings,
    start_poller: Callable[..., Poller],
) -> None:
    """EXPORTS_GZIP_LEVEL reaches the poller's compressor: the same rows at levels 1 and 9
    unzip to the same CSV, and level 9's file is the smaller."""
    stored: dict[int, bytes] = {}
    for level in (1, 9):
        poller = start_poller(gzip_level=level)
        job_id = submit(
            client, kind="numbered_lines", owner_id=f"gz-{level}", params={"rows": 20_000}
        )["id"]
        row = wait_until(partial(job_ended, db, job_id), timeout=60, what=f"level {level}")
        poller.stop()  # the next level's poller takes the next export
        assert row["state"] == "succeeded", row["last_error"]
        stored[level] = stored_file(settings, row["result_key"]).read_bytes()
    assert gzip.decompress(stored[1]) == gzip.decompress(stored[9])
    assert gzip.decompress(stored[9]).count(b"\n") == 20_001  # the header and every row
    assert len(stored[9]) < len(stored[1])
