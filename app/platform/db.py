"""Database access: connection pools and the named SQL queries kept in sql/queries/*.sql."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from app.platform.settings import PROJECT_ROOT

QUERIES_DIR = PROJECT_ROOT / "sql" / "queries"
_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)

Row = dict[str, Any]
# Every connection of the service's own works in UTC (libpq's `options`).
SESSION_OPTIONS = "-c TimeZone=UTC"
# The queue's statements are short but some plans are big (claim_fair): with JIT on, a
# custom plan whose estimate passes jit_above_cost was compiled at every execution, ~50 ms
# for a claim that runs in 5. Export queries (the source pool) keep the server's setting.
QUEUE_SESSION_OPTIONS = SESSION_OPTIONS + " -c jit=off"


class LeaseLost(Exception):
    """A fenced write changed nothing: another poller owns this message now."""


def load_queries(folder: Path = QUERIES_DIR) -> dict[str, str]:
    """Read every `-- name: x` block of every .sql file in `folder` into {name: sql}."""
    queries: dict[str, str] = {}
    for path in sorted(folder.glob("*.sql")):
        parts = _NAME_LINE.split(path.read_text())
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice ({path.name})")
            queries[name] = body.strip()
    return queries


QUERIES: Mapping[str, str] = load_queries()


def fetch_one(conn: Connection, query: str, **params: Any) -> Row | None:
    """Run the named query and return its first row (as a dict), or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES[query], params)
        return cur.fetchone()


def fetch_all(conn: Connection, query: str, **params: Any) -> list[Row]:
    """Run the named query and return all rows (as dicts)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(QUERIES[query], params)
        return cur.fetchall()


# How often insert_or_find tries again when the row it conflicted with vanished meanwhile.
_INSERT_OR_FIND_TRIES = 5


class RowKeptVanishing(Exception):
    """insert_or_find lost its race with concurrent deletes every time (retry later)."""


def request_fingerprint(fields: Mapping[str, Any]) -> str:
    """sha256 of a request's canonical JSON, stored beside an Idempotency-Key: tells a
    retry of the same request from another request that reuses the key."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def insert_or_find(
    conn: Connection, insert: str, find: str, params: Mapping[str, Any], key: Mapping[str, Any]
) -> tuple[Row, bool]:
    """Idempotent insert: (the new row, True), or (the row holding its unique key, False).

    `insert` is an INSERT … ON CONFLICT DO NOTHING RETURNING; `find` selects by `key`. The
    row that made the insert do nothing can be deleted before `find` runs (each statement
    has its own snapshot): then the insert is tried again, as it may now succeed.
    """
    for _ in range(_INSERT_OR_FIND_TRIES):
        row = fetch_one(conn, insert, **params)
        if row is not None:
            return row, True
        existing = fetch_one(conn, find, **key)
        if existing is not None:
            return existing, False
    raise RowKeptVanishing(f"{insert}: the conflicting row was deleted {_INSERT_OR_FIND_TRIES}x")


def fenced(conn: Connection, query: str, **params: Any) -> Row:
    """Run a fenced write; raise LeaseLost when it matched no row."""
    row = fetch_one(conn, query, **params)
    if row is None:
        raise LeaseLost(f"{query} matched nothing for {params.get('id')}")
    return row


def keyset_after(before: tuple[datetime.datetime, uuid.UUID | int] | None) -> dict[str, Any]:
    """The parameters of a newest-first keyset page's WHERE (created_at, id) < before, as
    every list query names them (None: the first page)."""
    return {
        "before_created_at": before[0] if before else None,
        "before_id": before[1] if before else None,
    }


def open_pool(
    url: str,
    *,
    name: str,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 10.0,
    options: str = QUEUE_SESSION_OPTIONS,
) -> ConnectionPool:
    """A pool whose `connection()` block is one transaction (commit on success).

    `timeout` bounds the wait for a connection, so an unreachable database becomes a
    PoolTimeout (a 503 in the API) rather than a hung request. `options`: libpq's.
    """
    return ConnectionPool(
        conninfo=url,
        name=name,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        # Timestamps come back in UTC whatever the server's or database's TimeZone says.
        kwargs={"application_name": name, "options": options},
        check=ConnectionPool.check_connection,
        open=True,
    )


def sqlalchemy_url(url: str) -> str:
    """DATABASE_URL in SQLAlchemy's spelling, using the psycopg 3 driver (for Alembic)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)
