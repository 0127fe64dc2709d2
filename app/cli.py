"""exports-admin: the operator's command line."""

from __future__ import annotations

import sys

import click
import psycopg

from app.catalog import CatalogError, load_catalog
from app.demo import create_demo_table, demo_table_empty, seed_demo_orders
from app.schema import upgrade
from app.settings import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def cli() -> None:
    """Operate the exports service (reads the same environment as the API and poller)."""


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the newest migration (alembic upgrade head)."""
    upgrade(_settings().database_url)
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
def seed_demo(rows: int, owners: int, if_empty: bool) -> None:
    """Create the demo table (exports_demo.orders) and add ROWS fake orders to it."""
    with psycopg.connect(_settings().database_url) as conn:
        create_demo_table(conn)
        if if_empty and not demo_table_empty(conn):
            click.echo("demo table already has rows; nothing added")
            return
        seed_demo_orders(conn, rows, owners)
    click.echo(f"added {rows} demo orders for owners user-1 .. user-{owners}")


@cli.command("check-catalog")
def check_catalog() -> None:
    """Parse every export kind and plan its query against the database (EXPLAIN)."""
    settings = _settings()
    try:
        catalog = load_catalog(settings.catalog_dir)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    with psycopg.connect(settings.source_database_url or settings.database_url) as conn:
        problems = catalog.plan_problems(conn)
    for kind in catalog:
        click.echo(f"{kind.name}: {problems.get(kind.name, 'ok')}")
    if problems:
        sys.exit(1)
