"""Real PostgreSQL for tests: a template database migrated once, cloned for every test.

pytest-postgresql's no-process fixture uses the server that `make test` made sure of
(scripts/dev-db exports PGHOST/PGPORT/PGUSER), because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor

from app.exports.demo import create_demo_table
from app.platform.schema import upgrade

TEST_SCHEMA = Path(__file__).parent / "schema.sql"


def _url(host: str, port: int | str, user: str, dbname: str) -> str:
    return f"postgresql://{user}@{host}:{port}/{dbname}"


def build_template(host: str, port: int, user: str, dbname: str, **_: object) -> None:
    """Migrate the template database to head and add the demo schema the demo kind reads."""
    url = _url(host, port, user, dbname)
    upgrade(url)
    with psycopg.connect(url) as conn:
        create_demo_table(conn)
        conn.execute(TEST_SCHEMA.read_text())


postgresql_noproc = factories.postgresql_noproc(
    host=os.environ.get("PGHOST", "127.0.0.1"),
    port=os.environ.get("PGPORT", "5432"),
    user=os.environ.get("PGUSER", "postgres"),
    # One name per run, so two runs on one server (CI and a developer) don't collide.
    dbname=f"exports_test_{os.getpid()}",
    load=[build_template],
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def database_url(postgresql: psycopg.Connection) -> str:
    """URL of this test's own database (a fresh clone of the migrated template)."""
    info = postgresql.info
    return _url(info.host, info.port, info.user, info.dbname)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection for arranging and inspecting data (rows as dicts)."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def empty_database(postgresql_noproc: NoopExecutor) -> Iterator[str]:
    """A brand-new database with nothing in it."""
    server = (
        f"postgresql://{postgresql_noproc.user}@{postgresql_noproc.host}:{postgresql_noproc.port}"
    )
    name = f"exports_migrations_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
