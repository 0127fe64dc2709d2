"""exports-admin create-key / revoke-key / list-keys: the API clients' bearer keys."""

from __future__ import annotations

import json

import click

from app.operators.cli.common import connect
from app.tenancy import clients


@click.command("create-key")
@click.option("--name", required=True, help="Who uses the key, e.g. backend (unique).")
@click.option(
    "--tenant",
    default=None,
    help="Tenant whose jobs the key creates and sees (default: the name). Give an existing "
    "tenant to rotate its key.",
)
@click.option(
    "--operator",
    is_flag=True,
    help="An operator's key: opens the console (/console/) over every tenant; it cannot "
    "call the /v1 API. Takes no --tenant.",
)
def create_key(name: str, tenant: str | None, operator: bool) -> None:
    """Make an API key and print it once on stdout (only its hash is stored)."""
    try:
        with connect() as conn:
            client, key = clients.create_client(conn, name, tenant, operator=operator)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except clients.ClientNameTaken:
        raise click.ClickException(f"an API client named {name!r} exists already") from None
    # The key alone on stdout (for `> file` or a secret manager's CLI), the note on stderr.
    click.echo(key)
    scope = "operator: the console" if client.operator else f"tenant {client.tenant}"
    click.echo(
        f"created key {client.key_prefix} for client {client.name} ({scope}); "
        "the key above is shown only now: store it in your secret manager",
        err=True,
    )


@click.command("revoke-key")
@click.argument("prefix")
def revoke_key(prefix: str) -> None:
    """Refuse the key with this PREFIX (as list-keys shows it) from now on."""
    prefix = prefix.removeprefix(f"{clients.KEY_SCHEME}_").split("_", 1)[0]
    try:
        with connect() as conn:
            client = clients.revoke(conn, prefix)
    except clients.ClientNotFound:
        raise click.ClickException(f"no API key has the prefix {prefix!r}") from None
    click.echo(f"revoked key {client.key_prefix} of client {client.name} at {client.revoked_at}")


@click.command("list-keys")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_keys(as_json: bool) -> None:
    """Every API key: prefix, client, tenant, created, last used, revoked (never the key)."""
    with connect() as conn:
        found = clients.list_clients(conn)
    rows = [
        {
            "key_prefix": c.key_prefix,
            "name": c.name,
            "tenant": c.tenant,
            "role": c.role,
            "created_at": c.created_at.isoformat(),
            "last_used_at": c.last_used_at.isoformat() if c.last_used_at else None,
            "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
        }
        for c in found
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = list(rows[0]) if rows else ["key_prefix", "name", "tenant"]
    widths = {c: max([len(c), *(len(str(r[c] or "-")) for r in rows)]) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        click.echo("  ".join(str(row[c] or "-").ljust(widths[c]) for c in columns).rstrip())
