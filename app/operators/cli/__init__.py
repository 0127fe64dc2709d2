"""exports-admin: the operator's command line.

Every command prints a human table, or with --json one JSON document for scripts. Exit
codes: 0 done, 1 not found or refused (a job in the wrong state), 2 usage error (click).
Commands live by subject in this package; each is added to the group here.
"""

from __future__ import annotations

from typing import Any

import click
import psycopg
import sqlalchemy.exc

from app.operators.cli import encryption, jobs, keys, setup, tenants, webhooks
from app.platform import crypto
from app.platform.logs import redact
from app.platform.settings import ConfigError, Settings


class _AdminGroup(click.Group):
    """The command group: a database that is away or not migrated is one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; database trouble becomes a ClickException (exit 1)."""
        try:
            return super().invoke(ctx)
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            raise click.ClickException(
                f"the database at {_database()} has no exports schema yet: "
                "run `exports-admin migrate`"
            ) from None
        except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise click.ClickException(
                f"cannot reach the database at {_database()}: "
                f"{reason[-1] if reason else type(exc).__name__}. Set DATABASE_URL (for "
                "make run's database: eval \"$(scripts/dev-db exports)\")"
            ) from None


def _database() -> str:
    try:
        return redact(Settings.from_env().database_url)
    except ConfigError:
        return "DATABASE_URL"


@click.group(cls=_AdminGroup)
def cli() -> None:
    """Operate the exports service (reads the same environment as the API and poller)."""
    try:  # addresses and webhook secrets are stored encrypted
        crypto.configure(Settings.from_env().encryption_keys)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


for command in (
    setup.migrate,
    setup.seed_demo,
    setup.check_catalog,
    jobs.stats,
    jobs.list_jobs,
    jobs.show,
    jobs.retry,
    jobs.cancel,
    jobs.requeue_dead,
    jobs.prune,
    keys.create_key,
    keys.revoke_key,
    keys.list_keys,
    tenants.tenant_limit,
    webhooks.webhooks,
    encryption.rotate_keys,
    encryption.unsuppress,
):
    cli.add_command(command)
