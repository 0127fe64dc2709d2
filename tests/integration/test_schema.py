"""The schema has one source of truth, and the files people read agree with it.

- sql/schema.sql is exactly what `alembic upgrade head` makes (scripts/dump-schema).
- sql/views/*.sql and sql/functions/*.sql are the current definitions: running them on a
  migrated database changes nothing.
- No migration reads those files: each embeds the text it ran, frozen.
"""

from __future__ import annotations

import re

import psycopg

from app.platform.schema import schema_sql
from app.platform.settings import PROJECT_ROOT

SQL = PROJECT_ROOT / "sql"
MIGRATIONS = PROJECT_ROOT / "migrations" / "versions"


def test_schema_sql_is_what_the_migrations_make(database_url: str) -> None:
    written = (SQL / "schema.sql").read_text()
    header_end = written.index("--\n-- PostgreSQL database dump")

    assert written[header_end:] == schema_sql(database_url), (
        "sql/schema.sql is out of date: run .venv/bin/python scripts/dump-schema"
    )


def test_view_and_function_files_are_the_current_definitions(
    database_url: str, db: psycopg.Connection
) -> None:
    before = schema_sql(database_url)
    files = sorted((SQL / "views").glob("*.sql")) + sorted((SQL / "functions").glob("*.sql"))
    for path in files:
        db.execute(path.read_text())

    assert schema_sql(database_url) == before, (
        "a file in sql/views or sql/functions differs from what the migrations created: "
        "run its new text from a new migration"
    )


def test_every_view_and_dba_function_has_its_file(db: psycopg.Connection) -> None:
    views = {
        row["name"]
        for row in db.execute(
            "SELECT viewname AS name FROM pg_views WHERE schemaname = 'exports'"
        ).fetchall()
    }
    functions = {
        row["name"]
        for row in db.execute(
            "SELECT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'exports' AND p.prorettype <> 'trigger'::regtype"
        ).fetchall()
    }

    assert views == {p.stem for p in (SQL / "views").glob("*.sql")}
    assert functions == {p.stem for p in (SQL / "functions").glob("*.sql")}


def test_no_migration_reads_the_live_sql_files() -> None:
    for migration in MIGRATIONS.glob("*.py"):
        text = migration.read_text()
        assert not re.search(r"read_text|open\(|Path\(", text), (
            f"{migration.name} reads files at run time: embed the SQL it runs instead"
        )
