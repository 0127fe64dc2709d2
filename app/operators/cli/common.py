"""What every exports-admin command shares: settings, a connection, tables, --json, types."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import psycopg
from psycopg.rows import dict_row

from app.platform.settings import ConfigError, Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def settings() -> Settings:
    """The settings from the environment; a bad value is one clear line, not a traceback."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def connect(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A connection to `url` (default DATABASE_URL) with dict rows; commits when the block
    ends cleanly. (The cli group turns an unreachable database into one line.)"""
    with psycopg.connect(url or settings().database_url, row_factory=dict_row) as conn:
        yield conn


# --- output ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-friendly form of what psycopg returns (intervals as seconds)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit_json(document: Any) -> None:
    """Print `document` as indented JSON (dates, intervals, UUIDs made plain)."""
    click.echo(json.dumps(plain(document), indent=2, sort_keys=False))


def cell(value: Any) -> str:
    """One value as a short table cell."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.timedelta):
        return str(dt.timedelta(seconds=round(value.total_seconds())))
    if isinstance(value, dict | list):
        value = json.dumps(plain(value))
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str = "") -> None:
    """Print rows as an aligned text table (or a note when there are none)."""
    if title:
        click.echo(title)
    if not rows:
        click.echo("  (none)")
        return
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def fail(message: str, as_json: bool, **details: Any) -> NoReturn:
    """Exit 1: not found, or refused because of the state things are in."""
    if as_json:
        emit_json({"error": message, **details})
    else:
        click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def json_option(command: Callable[..., None]) -> Callable[..., None]:
    """Add --json (one JSON document on stdout, for scripts) to a command."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table."
    )(command)


# --- argument types -------------------------------------------------------------------------


class Duration(click.ParamType):
    """A length of time: 90s, 30m, 24h, 7d, 2w, or a number of seconds."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.timedelta:
        """Parse '24h' and friends into a timedelta."""
        if isinstance(value, dt.timedelta):
            return value
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 30m, 24h or 7d", param, ctx)
        return dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


class Since(click.ParamType):
    """A point in time: an ISO 8601 timestamp (UTC unless it says), a duration ago, or 'all'."""

    name = "since"

    def convert(self, value: Any, param: Any, ctx: Any) -> dt.datetime | None:
        """'24h' → 24 hours ago; '2026-11-22T10:00' → that time; 'all' → None (ever)."""
        if value is None or isinstance(value, dt.datetime):
            return value
        text = str(value).strip()
        if text == "all":
            return None
        if _DURATION.match(text):
            return dt.datetime.now(dt.UTC) - Duration().convert(text, param, ctx)
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a timestamp, a duration like 24h, or 'all'", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
