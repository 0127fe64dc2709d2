"""exports-admin webhooks list / deliveries / retry: the webhook endpoints of every tenant
and how their deliveries go (retry runs what POST /v1/webhook-deliveries/{id}/retry runs)."""

from __future__ import annotations

import uuid

import click

from app.notifications import webhooks as channel
from app.operators import reads
from app.operators.cli.common import connect, emit_json, fail, json_option, table


@click.group()
def webhooks() -> None:
    """Webhook endpoints and deliveries (every tenant's)."""


@webhooks.command("list")
@click.option("--tenant", help="Only this tenant's endpoints.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def list_endpoints(tenant: str | None, limit: int, as_json: bool) -> None:
    """Endpoints, newest first: URL, events, enabled (and why not), last success."""
    with connect() as conn:
        rows = reads.webhook_endpoints(conn, tenant=tenant, limit=limit)
    if as_json:
        emit_json({"endpoints": rows})
        return
    table(rows, ["id", "tenant", "url", "enabled", "disabled_reason", "last_success_at"])


@webhooks.command()
@click.option(
    "--state",
    type=click.Choice(["pending", "succeeded", "retrying", "failed"]),
    help="Only deliveries in this state.",
)
@click.option("--endpoint", "endpoint_id", type=click.UUID, help="Only this endpoint's.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def deliveries(state: str | None, endpoint_id: uuid.UUID | None, limit: int, as_json: bool) -> None:
    """Deliveries, newest first: event, state, attempts, last status and error."""
    with connect() as conn:
        rows = reads.webhook_deliveries(conn, state=state, endpoint_id=endpoint_id, limit=limit)
    if as_json:
        emit_json({"deliveries": rows})
        return
    table(
        rows,
        ["id", "tenant", "event_type", "state", "attempts", "last_status_code", "last_error"],
    )


@webhooks.command()
@click.argument("delivery_id", type=click.IntRange(min=1))
@json_option
def retry(delivery_id: int, as_json: bool) -> None:
    """Deliver DELIVERY_ID again now, with the same webhook-id."""
    with connect() as conn:
        tenant = reads.delivery_tenant(conn, delivery_id)
        if tenant is None:
            fail(f"no webhook delivery {delivery_id}", as_json)
        row = channel.redeliver(conn, tenant, delivery_id)
    if as_json:
        emit_json({"delivery": row})
    else:
        click.echo(f"webhook delivery {row['id']} ({row['event_id']}) is pending again")
