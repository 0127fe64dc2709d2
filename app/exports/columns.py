"""A kind's output columns and their types, learned from PostgreSQL by describing the query.

The API uses them to check `columns` and to document each kind; the poller describes the
query again when it runs an export (a migration may have changed a type since start-up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

# The API's names for what a column holds, and how each format writes it.
OUTPUT_TYPES = (
    "integer",  # int2/int4/int8: exact everywhere
    "number",  # float4/float8
    "decimal",  # numeric: exact (every digit in text formats)
    "boolean",
    "date",
    "datetime",  # timestamptz: in the export's time zone, with its offset
    "timestamp",  # timestamp without time zone: as stored
    "string",  # text, varchar, enums, and every other type as its PostgreSQL text
    "json",  # json, jsonb, arrays: nested in JSON Lines, JSON text elsewhere
)
_BY_TYPE_NAME = {
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "float4": "number",
    "float8": "number",
    "numeric": "decimal",
    "bool": "boolean",
    "date": "date",
    "timestamptz": "datetime",
    "timestamp": "timestamp",
    "json": "json",
    "jsonb": "json",
}
# PostgreSQL's numeric(p, s) fits Arrow's decimal128 up to 38 digits.
MAX_DECIMAL_PRECISION = 38


@dataclass(frozen=True)
class Column:
    """One output column of a kind's query."""

    name: str
    type: str  # one of OUTPUT_TYPES
    pg_type: str  # PostgreSQL's name for the type, e.g. timestamptz, numeric(12,2), text[]
    precision: int | None = None  # numeric(p, s) only
    scale: int | None = None

    @property
    def has_decimal_type(self) -> bool:
        """A numeric with a declared precision Parquet's decimal128 can hold."""
        return (
            self.type == "decimal"
            and self.precision is not None
            and self.precision <= MAX_DECIMAL_PRECISION
        )

    def to_json(self) -> dict[str, Any]:
        """As GET /v1/export-kinds shows it."""
        return {"name": self.name, "type": self.type, "pg_type": self.pg_type}


class DescribeError(ValueError):
    """The query's output cannot be described (it does not plan, or repeats a column name)."""


def describe_query(
    conn: psycopg.Connection, query: str, params: Mapping[str, Any]
) -> tuple[Column, ...]:
    """The query's output columns, from a zero-row execution (nothing is read)."""
    statement = sql.SQL("SELECT * FROM ({}) AS described LIMIT 0").format(sql.SQL(query))
    try:
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(statement, params)
            description = cur.description or []
            cur.execute(
                "SELECT oid, typname, typcategory, format_type(oid, NULL) AS shown"
                " FROM pg_type WHERE oid = ANY(%s)",
                [[d.type_code for d in description]],
            )
            types = {row[0]: row[1:] for row in cur.fetchall()}
    except psycopg.Error as exc:
        raise DescribeError(str(exc).strip()) from exc
    names = [d.name for d in description]
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise DescribeError(f"output column names must be unique; repeated: {repeated}")
    columns = []
    for d in description:
        typname, category, shown = types.get(d.type_code, ("unknown", "X", "unknown"))
        output = "json" if category == "A" else _BY_TYPE_NAME.get(typname, "string")
        precision = d.precision if output == "decimal" else None
        scale = d.scale if output == "decimal" else None
        if precision is not None:
            shown = f"numeric({precision},{scale or 0})"
        columns.append(Column(d.name, output, shown, precision, scale))
    return tuple(columns)


def choose(columns: Sequence[Column], names: Sequence[str] | None) -> tuple[Column, ...]:
    """The columns `names` asks for, in its order (all of them for None); KeyError names the
    first one the query does not have."""
    if names is None:
        return tuple(columns)
    by_name = {c.name: c for c in columns}
    return tuple(by_name[name] for name in names)
