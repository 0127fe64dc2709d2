"""The COPY statement that reads a kind's query shaped for one file format.

PostgreSQL does the per-value work it does best, so no format makes Python touch each value
when the database can: the chosen columns in their order, JSON text for json and arrays,
the safe-cells prefix, and for JSON Lines the whole line (row_to_json). What comes out is
always CSV-framed COPY output, one record per CopyData message:

- csv: the file itself (header, delimiter as asked);
- jsonl: one JSON object per record. QUOTE and DELIMITER are control characters that JSON
  text never holds raw (row_to_json escapes them), so CSV mode writes each line untouched;
- xlsx, parquet: plain CSV that pyarrow parses into typed columns (poller/files/typed.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from app.exports.columns import Column
from app.exports.formats import FORMULA_STARTS, SAFE_CELL_FAMILIES, FileOptions, Format

# Types written as their own text by COPY and parsed back by type (not prefixed, not cast).
_NATIVE_TYPES = ("integer", "number", "decimal", "boolean", "date", "datetime", "timestamp")


def copy_statement(
    query: str, columns: Sequence[Column], fmt: Format, options: FileOptions
) -> sql.Composed:
    """COPY (the kind's query, shaped for `fmt`) TO STDOUT, one record per output row."""
    safe = options.safe_cells and fmt.family in SAFE_CELL_FAMILIES
    expressions = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(
            _expression(column, jsonl=fmt.family == "jsonl", safe=safe),
            sql.Identifier(column.name),
        )
        for column in columns
    )
    shaped = sql.SQL("SELECT {} FROM ({}) AS kind_query").format(expressions, sql.SQL(query))
    if fmt.family == "jsonl":
        return sql.SQL(
            "COPY (SELECT row_to_json(line)::text FROM ({}) AS line) TO STDOUT "
            "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
        ).format(shaped)
    if fmt.family == "csv":
        return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER {}, DELIMITER {})").format(
            shaped,
            sql.SQL("true" if options.csv.header else "false"),
            sql.Literal(options.csv.delimiter),
        )
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(shaped)


def _expression(column: Column, *, jsonl: bool, safe: bool) -> sql.Composable:
    value = sql.SQL("kind_query.{}").format(sql.Identifier(column.name))
    if jsonl or column.type in _NATIVE_TYPES:
        return value  # row_to_json renders every type itself, nested JSON included
    if column.type == "json":
        return sql.SQL("to_jsonb({})::text").format(value)  # arrays too: JSON, not {1,2}
    text = sql.SQL("{}::text").format(value)
    if not safe:
        return text
    # ascii(): the first character's code as an integer, no new text value per cell.
    # left(value, 1) IN ('=', ...) built a one-character string for every cell and cost
    # the server ~35 % of its COPY rate on the demo kind (bench/README.md, export). Every
    # formula start is below 'A': the `<` settles most cells (letters) in one comparison
    # instead of six (PostgreSQL searches a short IN list one by one): ~6 % of the COPY.
    codes = [ord(start) for start in FORMULA_STARTS]
    return sql.SQL(
        "CASE WHEN ascii({text}) < {above} AND ascii({text}) IN ({codes})"
        " THEN '''' || {text} ELSE {text} END"
    ).format(
        text=text,
        above=sql.Literal(max(codes) + 1),
        codes=sql.SQL(", ").join(sql.Literal(code) for code in codes),
    )
