"""The export catalog: parsing kind files, checking request params, binding queries."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest

from app.exports.catalog import (
    FORMATS,
    CatalogError,
    ExportKind,
    Param,
    ParamsInvalid,
    load_catalog,
    parse_kind,
)
from app.platform.settings import Settings

OWNER_QUERY = "SELECT id FROM orders WHERE owner_id = %(owner_id)s"


def kind_file(header: str, query: str = OWNER_QUERY) -> str:
    """The text of a kind file with this TOML header and query."""
    return f"/*---\n{header}\n---*/\n{query}\n"


ORDERS = kind_file(
    """
description = "Orders placed by the user"
formats = ["csv"]

[params.since]
type = "date"
default = "2020-01-01"
description = "Only orders placed on or after this day"

[params.status]
type = "string"
required = true

[params.limit]
type = "integer"
""",
    "SELECT id FROM orders WHERE owner_id = %(owner_id)s AND placed_at >= %(since)s"
    " AND status = %(status)s LIMIT %(limit)s;",
)


@pytest.fixture
def orders() -> ExportKind:
    return parse_kind("orders", ORDERS)


# --- the shipped catalog ------------------------------------------------------------------


def test_shipped_catalog_loads() -> None:
    catalog = load_catalog(Settings.from_env({}).catalog_dir)

    kinds = list(catalog)
    assert kinds, "the shipped catalog has at least one kind"
    assert catalog.get("demo_orders") is not None
    for kind in kinds:
        assert "%(owner_id)s" in kind.query
        assert set(kind.formats) <= set(FORMATS)


def test_unknown_kind_is_none() -> None:
    catalog = load_catalog(Settings.from_env({}).catalog_dir)

    assert catalog.get("no_such_kind") is None


# --- parsing one kind ---------------------------------------------------------------------


def test_well_formed_kind_is_parsed(orders: ExportKind) -> None:
    assert orders.name == "orders"
    assert orders.description == "Orders placed by the user"
    assert orders.formats == ("csv",)
    assert not orders.query.endswith(";")
    assert orders.query.startswith("SELECT id FROM orders")
    by_name = {p.name: p for p in orders.params}
    assert by_name["since"] == Param(
        "since", "date", False, "2020-01-01", "Only orders placed on or after this day"
    )
    assert by_name["status"].required is True
    assert by_name["limit"].type == "integer"


def test_formats_default_to_every_format() -> None:
    kind = parse_kind("plain", kind_file('description = "x"'))

    assert set(kind.formats) == set(FORMATS)
    assert kind.params == ()


def test_escaped_percent_is_accepted_in_the_query() -> None:
    """The error for a bare % says to write %%; doing so must then be accepted."""
    query = OWNER_QUERY + " AND note LIKE 'gift%%'"

    kind = parse_kind("gifts", kind_file('description = "x"', query))

    assert "'gift%%'" in kind.query


# (case id, kind name, file text, words the error must contain)
MALFORMED: list[tuple[str, str, str, str]] = [
    ("no-header", "k", OWNER_QUERY, "header"),
    ("header-not-first", "k", f"{OWNER_QUERY}\n/*---\ndescription = 'x'\n---*/\n", "header"),
    ("bad-toml", "k", kind_file("description = "), "TOML"),
    ("no-query", "k", kind_file('description = "x"', ""), "no query"),
    ("no-owner-placeholder", "k", kind_file('description = "x"', "SELECT 1"), "owner_id"),
    (
        "undeclared-placeholder",
        "k",
        kind_file('description = "x"', OWNER_QUERY + " AND day = %(day)s"),
        "day",
    ),
    ("unused-param", "k", kind_file('[params.day]\ntype = "date"'), "day"),
    (
        "owner-id-as-param",
        "k",
        kind_file('[params.owner_id]\ntype = "string"'),
        "owner_id",
    ),
    (
        "unknown-type",
        "k",
        kind_file('[params.day]\ntype = "uuid"', OWNER_QUERY + " AND d = %(day)s"),
        "type",
    ),
    (
        "missing-type",
        "k",
        kind_file('[params.day]\ndescription = "x"', OWNER_QUERY + " AND d = %(day)s"),
        "type",
    ),
    (
        "unknown-param-key",
        "k",
        kind_file('[params.day]\ntype = "date"\nrequried = true', OWNER_QUERY + " AND d = %(day)s"),
        "requried",
    ),
    (
        "param-not-a-table",
        "k",
        kind_file('[params]\nday = "date"', OWNER_QUERY + " AND d = %(day)s"),
        "day",
    ),
    ("params-not-a-table", "k", kind_file("params = 3"), "params"),
    (
        "required-not-a-boolean",
        "k",
        kind_file(
            '[params.day]\ntype = "date"\nrequired = "false"', OWNER_QUERY + " AND d = %(day)s"
        ),
        "required",
    ),
    ("unknown-format", "k", kind_file('formats = ["csv", "pdf"]'), "pdf"),
    ("bare-percent", "k", kind_file('description = "x"', OWNER_QUERY + " AND n LIKE 'a%'"), "%%"),
    (
        "bad-integer-default",
        "k",
        kind_file('[params.n]\ntype = "integer"\ndefault = "ten"', OWNER_QUERY + " LIMIT %(n)s"),
        "default",
    ),
    (
        "bad-date-default",
        "k",
        kind_file(
            '[params.day]\ntype = "date"\ndefault = "31/01/2024"', OWNER_QUERY + " AND d = %(day)s"
        ),
        "default",
    ),
    (
        "naive-datetime-default",
        "k",
        kind_file(
            '[params.at]\ntype = "datetime"\ndefault = "2024-01-31T12:00:00"',
            OWNER_QUERY + " AND t = %(at)s",
        ),
        "default",
    ),
    (
        "unquoted-toml-date-default",
        "k",
        kind_file(
            '[params.day]\ntype = "date"\ndefault = 2024-01-31', OWNER_QUERY + " AND d = %(day)s"
        ),
        "default",
    ),
    ("name-with-capitals", "Orders", kind_file('description = "x"'), "file name"),
    ("name-with-dash", "my-orders", kind_file('description = "x"'), "file name"),
    ("name-starts-with-digit", "2024_orders", kind_file('description = "x"'), "file name"),
    ("name-too-long", "a" * 64, kind_file('description = "x"'), "file name"),
    ("name-empty", "", kind_file('description = "x"'), "file name"),
]


@pytest.mark.parametrize(
    ("name", "text", "words"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_kind_file_is_a_clear_catalog_error(name: str, text: str, words: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_kind(name, text)

    assert words in str(caught.value)


def test_load_catalog_lists_every_broken_file(tmp_path: Path) -> None:
    (tmp_path / "good.sql").write_text(kind_file('description = "fine"'))
    (tmp_path / "no_header.sql").write_text(OWNER_QUERY)
    (tmp_path / "no_owner.sql").write_text(kind_file('description = "x"', "SELECT 1"))

    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)

    message = str(caught.value)
    assert "no_header.sql" in message
    assert "no_owner.sql" in message
    assert "good.sql" not in message


def test_load_catalog_names_kinds_after_their_files(tmp_path: Path) -> None:
    (tmp_path / "first_kind.sql").write_text(kind_file('description = "one"'))
    (tmp_path / "second_kind.sql").write_text(kind_file('description = "two"'))
    (tmp_path / "README.md").write_text("not a kind")

    catalog = load_catalog(tmp_path)

    assert [k.name for k in catalog] == ["first_kind", "second_kind"]
    kind = catalog.get("second_kind")
    assert kind is not None
    assert kind.description == "two"


def test_load_catalog_refuses_a_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "missing")
    with pytest.raises(CatalogError, match="no"):
        load_catalog(tmp_path)


# --- request params -----------------------------------------------------------------------


def test_validate_params_fills_in_defaults_and_keeps_json_values(orders: ExportKind) -> None:
    assert orders.validate_params({"status": "shipped"}) == {
        "since": "2020-01-01",
        "status": "shipped",
        "limit": None,
    }


def test_validate_params_keeps_given_values(orders: ExportKind) -> None:
    given = {"since": "2024-02-29", "status": "placed", "limit": 10}

    assert orders.validate_params(given) == given


def test_validate_params_reports_every_problem_per_field(orders: ExportKind) -> None:
    with pytest.raises(ParamsInvalid) as caught:
        orders.validate_params({"colour": "red", "limit": "ten", "since": "yesterday"})

    errors = caught.value.errors
    assert set(errors) == {"colour", "status", "limit", "since"}
    assert "unknown" in errors["colour"]
    assert "required" in errors["status"]
    assert "integer" in errors["limit"]
    assert "date" in errors["since"]


def test_explicit_null_for_a_required_param_is_missing(orders: ExportKind) -> None:
    with pytest.raises(ParamsInvalid) as caught:
        orders.validate_params({"status": None})

    assert set(caught.value.errors) == {"status"}


def test_owner_id_in_request_params_is_refused(orders: ExportKind) -> None:
    with pytest.raises(ParamsInvalid) as caught:
        orders.validate_params({"status": "placed", "owner_id": "someone-else"})

    assert set(caught.value.errors) == {"owner_id"}


# (type, JSON value, converted Python value)
ACCEPTED: list[tuple[str, Any, Any]] = [
    ("string", "shipped", "shipped"),
    ("string", "", ""),
    ("string", "x" * 1000, "x" * 1000),
    ("integer", 0, 0),
    ("integer", -42, -42),
    ("integer", 2**63 - 1, 2**63 - 1),
    ("integer", -(2**63), -(2**63)),
    ("number", 1.5, 1.5),
    ("number", 3, 3.0),
    ("number", -0.25, -0.25),
    ("boolean", True, True),
    ("boolean", False, False),
    ("date", "2024-01-31", dt.date(2024, 1, 31)),
    ("date", "2024-02-29", dt.date(2024, 2, 29)),
    (
        "datetime",
        "2024-01-31T12:00:00Z",
        dt.datetime(2024, 1, 31, 12, tzinfo=dt.UTC),
    ),
    (
        "datetime",
        "2024-01-31T12:00:00+02:00",
        dt.datetime(2024, 1, 31, 10, tzinfo=dt.UTC),
    ),
    (
        "datetime",
        "2024-01-31T12:00:00.250-05:30",
        dt.datetime(2024, 1, 31, 17, 30, 0, 250000, tzinfo=dt.UTC),
    ),
]


@pytest.mark.parametrize(("type_", "value", "expected"), ACCEPTED)
def test_param_conversion_accepts(type_: str, value: Any, expected: Any) -> None:
    converted = Param("p", type_).convert(value)

    assert converted == expected
    assert type(converted) is type(expected)
    if type_ == "datetime":
        assert converted.tzinfo is not None


REJECTED: list[tuple[str, Any]] = [
    ("string", 5),
    ("string", None),
    ("string", ["a"]),
    ("string", "x" * 1001),
    ("integer", True),
    ("integer", False),
    ("integer", 1.5),
    ("integer", 1.0),
    ("integer", "1"),
    ("integer", 2**63),
    ("integer", -(2**63) - 1),
    ("number", True),
    ("number", "1.5"),
    ("number", math.nan),
    ("number", math.inf),
    ("number", None),
    ("boolean", 1),
    ("boolean", 0),
    ("boolean", "true"),
    ("boolean", None),
    ("date", "31/01/2024"),
    ("date", "2024-02-30"),
    ("date", "2024-01-31T10:00:00"),
    ("date", "yesterday"),
    ("date", 20240131),
    ("datetime", "2024-01-31T12:00:00"),
    ("datetime", "2024-01-31"),
    ("datetime", "noon"),
    ("datetime", 1706702400),
]


@pytest.mark.parametrize(("type_", "value"), REJECTED)
def test_param_conversion_rejects(type_: str, value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        Param("p", type_).convert(value)


def test_naive_datetime_error_asks_for_a_time_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        Param("at", "datetime").convert("2024-01-31T12:00:00")


# --- binding ------------------------------------------------------------------------------


def test_bind_converts_stored_params_and_adds_the_owner(orders: ExportKind) -> None:
    bound = orders.bind("user-1", {"since": "2024-01-31", "status": "placed", "limit": None})

    assert bound == {
        "since": dt.date(2024, 1, 31),
        "status": "placed",
        "limit": None,
        "owner_id": "user-1",
    }


def test_bind_takes_owner_from_the_job_even_if_params_smuggle_one_in(orders: ExportKind) -> None:
    smuggled = {"status": "placed", "owner_id": "victim", "OWNER_ID": "victim"}

    bound = orders.bind("attacker", smuggled)

    assert bound["owner_id"] == "attacker"
    assert "victim" not in bound.values()


def test_bind_leaves_missing_params_null(orders: ExportKind) -> None:
    bound = orders.bind("user-1", {})

    assert bound == {"since": None, "status": None, "limit": None, "owner_id": "user-1"}
