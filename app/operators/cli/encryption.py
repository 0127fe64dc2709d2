"""exports-admin rotate-keys / unsuppress: encrypted data at rest."""

from __future__ import annotations

import dataclasses

import click

from app.notifications import ses_feedback
from app.operators import key_rotation
from app.operators.cli.common import connect, emit_json, fail, json_option


@click.command("rotate-keys")
@click.option(
    "--batch-size",
    default=key_rotation.DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(min=1),
)
@json_option
def rotate_keys(batch_size: int, as_json: bool) -> None:
    """Re-encrypt every stored address and webhook secret with the first key of
    EXPORTS_ENCRYPTION_KEYS (put the new key first, restart, run this, drop the old key)."""
    with connect() as conn:
        rotated = key_rotation.rotate_keys(conn, batch=batch_size)
    if as_json:
        emit_json(dataclasses.asdict(rotated))
    else:
        click.echo(
            f"re-encrypted {rotated.job_emails} job and {rotated.schedule_emails} schedule "
            f"addresses, {rotated.webhook_endpoints} webhook endpoints' secrets and "
            f"{rotated.suppressions} suppressions"
        )


@click.command()
@click.argument("address")
@json_option
def unsuppress(address: str, as_json: bool) -> None:
    """Allow ADDRESS to be emailed again (suppressions are stored encrypted: find by it)."""
    with connect() as conn:
        removed = ses_feedback.unsuppress(conn, address)
    if not removed:
        fail("that address is not suppressed", as_json)
    if as_json:
        emit_json({"unsuppressed": True})
    else:
        click.echo("the address may be emailed again")
