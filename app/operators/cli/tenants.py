"""exports-admin tenant-limit: slow a tenant down (or give it a bigger share), at once.

See sql/runbook.md, "A tenant floods the queue".
"""

from __future__ import annotations

import click

from app.operators.cli.common import connect, emit_json, fail, json_option, table
from app.tenancy import limits

COLUMNS = ["tenant", "max_running", "weight", "note", "updated_at"]


@click.command("tenant-limit")
@click.argument("tenant", required=False)
@click.option(
    "--max-running",
    type=click.IntRange(min=0),
    help="Most exports of the tenant running at once, over every poller (0: no limit).",
)
@click.option("--weight", type=click.IntRange(1, 100), help="Its share per round (default 1).")
@click.option("--note", help="Why (who asked, the ticket): shown to the next operator.")
@click.option("--clear", is_flag=True, help="Remove the override: back to the defaults.")
@json_option
def tenant_limit(
    tenant: str | None,
    max_running: int | None,
    weight: int | None,
    note: str | None,
    clear: bool,
    as_json: bool,
) -> None:
    """Set, clear or (without TENANT) list per-tenant limits; pollers apply them at their
    next claim."""
    changes = max_running is not None or weight is not None or note is not None or clear
    if tenant is None and changes:
        fail("name the tenant to change (without one, the limits are listed)", as_json)
    with connect() as conn:
        if tenant is None:
            rows = limits.all_limits(conn)
        elif clear:
            if not limits.clear_limit(conn, tenant):
                fail(f"tenant {tenant} has no override", as_json, tenant=tenant)
            rows = []
        else:
            if not changes:
                fail("give --max-running, --weight, --note or --clear", as_json)
            rows = [
                limits.set_limit(
                    conn, tenant, max_running=max_running, weight=weight, note=note
                )
            ]
    if as_json:
        emit_json({"tenant_limits": rows})
    elif clear:
        click.echo(f"tenant {tenant}: back to the defaults")
    else:
        table(rows, COLUMNS, title="tenant limits (exports.tenant_limits):")
