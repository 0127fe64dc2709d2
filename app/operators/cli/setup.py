"""exports-admin migrate, seed-demo, check-catalog: getting a database ready."""

from __future__ import annotations

import sys

import click

from app.exports.catalog import CatalogError, load_catalog
from app.exports.demo import create_demo_table, demo_table_empty, seed_demo_orders
from app.operators.cli.common import connect, emit_json, json_option, settings
from app.platform.schema import upgrade


@click.command()
@json_option
def migrate(as_json: bool) -> None:
    """Upgrade the database schema to the newest migration (alembic upgrade head)."""
    upgrade(settings().database_url)
    if as_json:
        emit_json({"migrated": True})
    else:
        click.echo("schema is at head")


@click.command("seed-demo")
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
    with connect() as conn:
        create_demo_table(conn)
        added = 0
        if not (if_empty and not demo_table_empty(conn)):
            seed_demo_orders(conn, rows, owners)
            added = rows
    if as_json:
        emit_json({"added": added, "owners": owners})
    elif added:
        click.echo(f"added {rows} demo orders for owners user-1 .. user-{owners}")
    else:
        click.echo("demo table already has rows; nothing added")


@click.command("check-catalog")
@json_option
def check_catalog(as_json: bool) -> None:
    """Parse every export kind and describe its query's output columns against the database."""
    config = settings()
    try:
        catalog = load_catalog(config.catalog_dir)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    with connect(config.source_database_url or config.database_url) as conn:
        described, problems = catalog.describe(conn)
    if as_json:
        emit_json({kind.name: problems.get(kind.name, "ok") for kind in catalog})
    else:
        for kind in described:
            columns = ", ".join(f"{c.name} {c.pg_type}" for c in kind.columns)
            click.echo(f"{kind.name}: {problems.get(kind.name) or 'ok (' + columns + ')'}")
    if problems:
        sys.exit(1)
