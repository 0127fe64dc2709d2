"""exports-admin: the operator's command line.

Every command prints a human table, or with --json one JSON document for scripts. Exit
codes: 0 done, 1 not found or refused (a job in the wrong state), 2 usage error (click).
State changes go through the domain (app/jobs.py, app/outbox.py), which calls the same SQL
functions a DBA uses from psql; see sql/runbook.md.
"""

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

from app import jobs, operations, outbox
from app.catalog import CatalogError, load_catalog
from app.demo import create_demo_table, demo_table_empty, seed_demo_orders
from app.maintenance import DEFAULT_PRUNE_BATCH, prune_outbox
from app.schema import upgrade
from app.settings import ConfigError, Settings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _connect() -> Iterator[psycopg.Connection]:
    """A connection to DATABASE_URL with dict rows; commits when the block ends cleanly."""
    with psycopg.connect(_settings().database_url, row_factory=dict_row) as conn:
        yield conn


# --- output ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
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
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _emit_json(document: Any) -> None:
    click.echo(json.dumps(_plain(document), indent=2, sort_keys=False))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.timedelta):
        return str(dt.timedelta(seconds=round(value.total_seconds())))
    if isinstance(value, dict | list):
        value = json.dumps(_plain(value))
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str = "") -> None:
    """Print rows as an aligned text table (or a note when there are none)."""
    if title:
        click.echo(title)
    if not rows:
        click.echo("  (none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _fail(message: str, as_json: bool, **details: Any) -> NoReturn:
    """Exit 1: not found, or refused because of the state things are in."""
    if as_json:
        _emit_json({"error": message, **details})
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


# --- commands -------------------------------------------------------------------------------


@click.group()
def cli() -> None:
    """Operate the exports service (reads the same environment as the API and poller)."""


@cli.command()
@json_option
def migrate(as_json: bool) -> None:
    """Upgrade the database schema to the newest migration (alembic upgrade head)."""
    upgrade(_settings().database_url)
    if as_json:
        _emit_json({"migrated": True})
    else:
        click.echo("schema is at head")


@cli.command("seed-demo")
@click.argument("rows", type=click.IntRange(min=1))
@click.option(
    "--owners",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Spread rows over owners user-1 .. user-N.",
)
@click.option("--if-empty", is_flag=True, help="Do nothing when the demo table has rows.")
@json_option
def seed_demo(rows: int, owners: int, if_empty: bool, as_json: bool) -> None:
    """Create the demo table (exports_demo.orders) and add ROWS fake orders to it."""
    with psycopg.connect(_settings().database_url) as conn:
        create_demo_table(conn)
        added = 0
        if not (if_empty and not demo_table_empty(conn)):
            seed_demo_orders(conn, rows, owners)
            added = rows
    if as_json:
        _emit_json({"added": added, "owners": owners})
    elif added:
        click.echo(f"added {rows} demo orders for owners user-1 .. user-{owners}")
    else:
        click.echo("demo table already has rows; nothing added")


@cli.command("check-catalog")
@json_option
def check_catalog(as_json: bool) -> None:
    """Parse every export kind and plan its query against the database (EXPLAIN)."""
    settings = _settings()
    try:
        catalog = load_catalog(settings.catalog_dir)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    with psycopg.connect(settings.source_database_url or settings.database_url) as conn:
        problems = catalog.plan_problems(conn)
    if as_json:
        _emit_json({kind.name: problems.get(kind.name, "ok") for kind in catalog})
    else:
        for kind in catalog:
            click.echo(f"{kind.name}: {problems.get(kind.name, 'ok')}")
    if problems:
        sys.exit(1)


@cli.command()
@json_option
def stats(as_json: bool) -> None:
    """Queue health per topic, stuck work, recent failures, jobs of the last 24 h, pollers."""
    with _connect() as conn:
        report = {
            "queues": operations.queue_health(conn),
            "stuck": len(operations.stuck(conn)),
            "recent_failures": len(operations.recent_failures(conn, limit=1000)),
            "jobs_last_24h": operations.jobs_by_state(conn, hours=24),
            "workers": operations.workers(conn),
        }
    if as_json:
        _emit_json(report)
        return
    _table(
        report["queues"],
        ["topic", "ready", "leased", "retrying", "dead", "oldest_ready_age"],
        title="queues:",
    )
    click.echo(f"stuck messages: {report['stuck']} (exports.stuck)")
    click.echo(f"failures in the last 24 h: {report['recent_failures']} (exports.recent_failures)")
    by_state = report["jobs_last_24h"]
    click.echo(
        "jobs created in the last 24 h: "
        + (", ".join(f"{state} {n}" for state, n in by_state.items()) or "none")
    )
    _table(
        report["workers"],
        ["id", "hostname", "version", "since_heartbeat", "in_flight"],
        title="pollers:",
    )


@cli.command("list")
@click.option("--state", type=click.Choice(jobs.STATES), help="Only jobs in this state.")
@click.option("--owner-id", help="Only this end user's jobs.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def list_jobs(state: str | None, owner_id: str | None, limit: int, as_json: bool) -> None:
    """Jobs of every tenant, newest first."""
    with _connect() as conn:
        rows = operations.list_jobs(conn, state=state, owner_id=owner_id, limit=limit)
    if as_json:
        _emit_json({"jobs": rows})
        return
    _table(
        rows,
        ["id", "tenant", "owner_id", "kind", "state", "attempts", "created_at", "last_error"],
    )


@cli.command()
@click.argument("job_id", type=click.UUID)
@json_option
def show(job_id: uuid.UUID, as_json: bool) -> None:
    """One job: its row, its outbox messages and its timeline (every error included)."""
    with _connect() as conn:
        job = jobs.find_job(conn, job_id)
        if job is None:
            _fail(f"no job {job_id}", as_json)
        messages = operations.job_messages(conn, job_id)
        timeline = operations.job_timeline(conn, job_id)
    if as_json:
        _emit_json({"job": job.__dict__, "messages": messages, "timeline": timeline})
        return
    for name, value in job.__dict__.items():
        if value is not None:
            click.echo(f"{name:>20}: {_cell(value)}")
    _table(
        messages,
        ["id", "topic", "state", "attempts", "max_attempts", "leased_by", "last_error"],
        title="\nmessages:",
    )
    _table(
        timeline, ["at", "message_id", "topic", "attempt", "event", "detail"], title="\ntimeline:"
    )


@cli.command()
@click.argument("job_id", type=click.UUID)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    help="Tries for the new run [default: EXPORTS_MAX_ATTEMPTS].",
)
@json_option
def retry(job_id: uuid.UUID, max_attempts: int | None, as_json: bool) -> None:
    """Run a failed or cancelled export again (exports.retry_job)."""
    attempts = max_attempts or _settings().max_attempts
    with _connect() as conn:
        try:
            job = jobs.retry_job(conn, job_id, max_attempts=attempts)
        except jobs.JobNotFound:
            _fail(f"no job {job_id}", as_json)
        except jobs.NotRetryable as exc:
            _fail(
                f"job {job_id} is {exc.job.state}: only failed or cancelled jobs whose export "
                "has stopped can be retried",
                as_json,
                state=exc.job.state,
            )
    if as_json:
        _emit_json({"job": job.__dict__})
    else:
        click.echo(f"job {job.id} is queued again")


@cli.command()
@click.argument("job_id", type=click.UUID)
@json_option
def cancel(job_id: uuid.UUID, as_json: bool) -> None:
    """Cancel a queued or running export, as the API does (exports.cancel_job)."""
    with _connect() as conn:
        found = jobs.find_job(conn, job_id)
        if found is None:
            _fail(f"no job {job_id}", as_json)
        try:
            job = jobs.cancel_job(conn, found.tenant, job_id)
        except jobs.NotCancellable as exc:
            _fail(f"job {job_id} already ended: {exc.job.state}", as_json, state=exc.job.state)
    if as_json:
        _emit_json({"job": job.__dict__})
    else:
        click.echo(f"job {job.id} is cancelled")


@cli.command("requeue-dead")
@click.option(
    "--topic",
    type=click.Choice([outbox.EXPORT_RUN, outbox.EXPORT_NOTIFY]),
    help="Only this topic [default: all].",
)
@click.option(
    "--since",
    type=Since(),
    default="24h",
    show_default=True,
    help="Messages that died since then: 24h, 7d, an ISO timestamp, or 'all'.",
)
@click.option("--extra-attempts", default=3, show_default=True, type=click.IntRange(min=1))
@json_option
def requeue_dead(
    topic: str | None, since: dt.datetime | None, extra_attempts: int, as_json: bool
) -> None:
    """Make dead messages ready again, with their jobs (exports.requeue_dead).

    Finding none is not an error (exit 0): the command can be repeated safely.
    """
    with _connect() as conn:
        revived = outbox.requeue_dead(conn, topic=topic, since=since, extra_attempts=extra_attempts)
    if as_json:
        _emit_json({"requeued": revived})
        return
    _table(revived, ["id", "topic", "job_id", "state", "attempts", "max_attempts", "last_error"])
    click.echo(f"{len(revived)} dead messages are ready again")


@cli.command()
@click.option(
    "--older-than",
    type=Duration(),
    help="Delete done and dead messages that ended longer ago than this "
    "[default: EXPORTS_OUTBOX_RETENTION_SECONDS, 7d].",
)
@click.option(
    "--batch-size", default=DEFAULT_PRUNE_BATCH, show_default=True, type=click.IntRange(min=1)
)
@json_option
def prune(older_than: dt.timedelta | None, batch_size: int, as_json: bool) -> None:
    """Delete finished outbox messages past retention, in batches (what maintenance runs)."""
    if older_than is None:
        older_than = dt.timedelta(seconds=_settings().outbox_retention_seconds)
    with _connect() as conn:
        deleted = prune_outbox(conn, older_than=older_than, batch_size=batch_size)
    if as_json:
        _emit_json({"deleted": deleted, "older_than_seconds": older_than.total_seconds()})
    else:
        click.echo(f"deleted {deleted} finished outbox messages older than {older_than}")


# Commands kept in their own modules register themselves on `cli` when imported here: add
# one line per module below (they import `cli` and `_settings` from this module).
from app import cli_keys  # noqa: E402, F401  (registers create-key, revoke-key, list-keys)
