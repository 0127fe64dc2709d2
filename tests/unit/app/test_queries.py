"""Named SQL queries (sql/queries/*.sql): every name the code runs exists, names are unique."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.platform.db import QUERIES, load_queries
from app.platform.settings import PROJECT_ROOT

# Runner → the positions of its query-name arguments.
RUNNERS = {"fetch_one": (1,), "fetch_all": (1,), "fenced": (1,), "insert_or_find": (1, 2)}
SOURCE_DIRS = [PROJECT_ROOT / "app", PROJECT_ROOT / "poller"]
# Defines the runners; passes names through.
RUNNERS_MODULE = PROJECT_ROOT / "app" / "platform" / "db.py"


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _queries_lookup(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "QUERIES"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    )


def query_names_used_in_code() -> dict[str, list[str]]:
    """{query name: [file:line, ...]} for every call of a RUNNERS function and every
    QUERIES["name"] lookup."""
    used: dict[str, list[str]] = {}
    for folder in SOURCE_DIRS:
        for path in sorted(folder.rglob("*.py")):
            if path == RUNNERS_MODULE:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                where = f"{path.relative_to(PROJECT_ROOT)}:{getattr(node, 'lineno', 0)}"
                if _queries_lookup(node):  # QUERIES["name"]: run through a cursor directly
                    assert isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                    used.setdefault(node.slice.value, []).append(where)
                    continue
                if not isinstance(node, ast.Call) or _called_name(node) not in RUNNERS:
                    continue
                for position in RUNNERS[_called_name(node)]:
                    query = node.args[position] if len(node.args) > position else None
                    if position == 1:
                        query = next((k.value for k in node.keywords if k.arg == "query"), query)
                    assert isinstance(query, ast.Constant) and isinstance(query.value, str), (
                        f"{where}: pass the query name as a string literal so it can be checked"
                    )
                    used.setdefault(query.value, []).append(where)
    return used


def test_code_runs_named_queries() -> None:
    used = query_names_used_in_code()

    assert {"claim_fair", "claim_fifo", "insert_job_with_message", "complete_message"} <= set(
        used
    )


def test_every_query_the_code_runs_exists() -> None:
    missing = {
        name: places for name, places in query_names_used_in_code().items() if name not in QUERIES
    }

    assert missing == {}


def test_every_loaded_query_has_sql() -> None:
    assert QUERIES
    assert all(sql.strip() for sql in QUERIES.values())


def test_load_queries_reads_every_named_block(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text(
        "-- A file comment before the first block is ignored.\n\n"
        "-- name: first\n-- What it does.\nSELECT 1;\n\n"
        "-- name: second\nSELECT 2\nFROM t;\n"
    )
    (tmp_path / "b.sql").write_text("-- name: third\nSELECT 3;\n")
    (tmp_path / "notes.txt").write_text("-- name: not_sql\nSELECT 4;\n")

    assert load_queries(tmp_path) == {
        "first": "-- What it does.\nSELECT 1;",
        "second": "SELECT 2\nFROM t;",
        "third": "SELECT 3;",
    }


def test_a_name_defined_in_two_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "jobs.sql").write_text("-- name: get_job\nSELECT 1;\n")
    (tmp_path / "more.sql").write_text("-- name: other\nSELECT 2;\n-- name: get_job\nSELECT 3;\n")

    with pytest.raises(ValueError, match="get_job"):
        load_queries(tmp_path)


def test_a_name_defined_twice_in_one_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "jobs.sql").write_text("-- name: get_job\nSELECT 1;\n-- name: get_job\nSELECT 2;\n")

    with pytest.raises(ValueError, match="get_job"):
        load_queries(tmp_path)
