"""exports-admin stats, list, show, retry, cancel, requeue-dead, prune: jobs and the queue.

State changes go through the domain (app/exports/jobs.py, app/queue/outbox.py), which calls
the same SQL functions a DBA uses from psql; see sql/runbook.md.
"""

from __future__ import annotations

import datetime as dt
import uuid

import click

from app.exports import jobs
from app.exports.topics import EXPORT_NOTIFY, EXPORT_RUN
from app.notifications.webhooks import TOPIC as WEBHOOK_TOPIC
from app.operators import reads
from app.operators.cli.common import (
    Duration,
    Since,
    cell,
    connect,
    emit_json,
    fail,
    json_option,
    settings,
    table,
)
from app.queue import outbox
from app.queue.outbox import DEFAULT_PRUNE_BATCH, prune_outbox


@click.command()
@click.option(
    "--by-tenant",
    "tenants",
    type=click.IntRange(1, 10_000),
    is_flag=False,
    flag_value=20,
    default=None,
    help="Also the tenants with the biggest backlogs (20, or this many).",
)
@json_option
def stats(tenants: int | None, as_json: bool) -> None:
    """Queue health per topic, stuck work, recent failures, jobs of the last 24 h, pollers;
    with --by-tenant, who is flooding the queue."""
    with connect() as conn:
        report = {
            "queues": reads.queue_health(conn),
            "stuck": len(reads.stuck(conn)),
            "recent_failures": len(reads.recent_failures(conn, limit=1000)),
            "jobs_last_24h": reads.jobs_by_state(conn, hours=24),
            "workers": reads.workers(conn),
        }
        if tenants is not None:
            report["tenants"] = reads.tenant_queue_health(conn, limit=tenants)
    if as_json:
        emit_json(report)
        return
    table(
        report["queues"],
        ["topic", "ready", "leased", "retrying", "dead", "oldest_ready_age"],
        title="queues:",
    )
    if tenants is not None:
        table(
            report["tenants"],
            ["tenant", "ready", "running", "retrying", "oldest_ready_age", "max_running",
             "weight"],
            title=f"tenants by backlog (top {tenants}; exports.tenant_queue_health):",
        )  # fmt: skip
    click.echo(f"stuck messages: {report['stuck']} (exports.stuck)")
    click.echo(f"failures in the last 24 h: {report['recent_failures']} (exports.recent_failures)")
    by_state = report["jobs_last_24h"]
    click.echo(
        "jobs created in the last 24 h: "
        + (", ".join(f"{state} {n}" for state, n in by_state.items()) or "none")
    )
    table(
        report["workers"],
        ["id", "hostname", "version", "since_heartbeat", "in_flight"],
        title="pollers:",
    )


@click.command("list")
@click.option("--state", type=click.Choice(jobs.STATES), help="Only jobs in this state.")
@click.option("--owner-id", help="Only this end user's jobs.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def list_jobs(state: str | None, owner_id: str | None, limit: int, as_json: bool) -> None:
    """Jobs of every tenant, newest first."""
    with connect() as conn:
        rows = reads.list_jobs(conn, state=state, owner_id=owner_id, limit=limit)
    if as_json:
        emit_json({"jobs": rows})
        return
    table(
        rows,
        ["id", "tenant", "owner_id", "kind", "state", "attempts", "created_at", "last_error"],
    )


@click.command()
@click.argument("job_id", type=click.UUID)
@json_option
def show(job_id: uuid.UUID, as_json: bool) -> None:
    """One job: its row, its outbox messages and its timeline (every error included)."""
    with connect() as conn:
        job = jobs.find_job(conn, job_id)
        if job is None:
            fail(f"no job {job_id}", as_json)
        messages = reads.job_messages(conn, job_id)
        timeline = reads.job_timeline(conn, job_id)
    if as_json:
        emit_json({"job": job.__dict__, "messages": messages, "timeline": timeline})
        return
    for name, value in job.__dict__.items():
        if value is not None:
            click.echo(f"{name:>20}: {cell(value)}")
    table(
        messages,
        ["id", "topic", "state", "attempts", "max_attempts", "leased_by", "last_error"],
        title="\nmessages:",
    )
    table(
        timeline, ["at", "message_id", "topic", "attempt", "event", "detail"], title="\ntimeline:"
    )


@click.command()
@click.argument("job_id", type=click.UUID)
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    help="Tries for the new run [default: EXPORTS_MAX_ATTEMPTS].",
)
@json_option
def retry(job_id: uuid.UUID, max_attempts: int | None, as_json: bool) -> None:
    """Run a failed or cancelled export again (exports.retry_job)."""
    attempts = max_attempts or settings().max_attempts
    with connect() as conn:
        try:
            job = jobs.retry_job(conn, job_id, max_attempts=attempts)
        except jobs.JobNotFound:
            fail(f"no job {job_id}", as_json)
        except jobs.NotRetryable as exc:
            fail(
                f"job {job_id} is {exc.job.state}: only failed or cancelled jobs whose export "
                "has stopped can be retried",
                as_json,
                state=exc.job.state,
            )
    if as_json:
        emit_json({"job": job.__dict__})
    else:
        click.echo(f"job {job.id} is queued again")


@click.command()
@click.argument("job_id", type=click.UUID)
@json_option
def cancel(job_id: uuid.UUID, as_json: bool) -> None:
    """Cancel a queued or running export, as the API does (exports.cancel_job)."""
    with connect() as conn:
        found = jobs.find_job(conn, job_id)
        if found is None:
            fail(f"no job {job_id}", as_json)
        try:
            job = jobs.cancel_job(conn, found.tenant, job_id)
        except jobs.NotCancellable as exc:
            fail(f"job {job_id} already ended: {exc.job.state}", as_json, state=exc.job.state)
    if as_json:
        emit_json({"job": job.__dict__})
    else:
        click.echo(f"job {job.id} is cancelled")


@click.command("requeue-dead")
@click.option(
    "--topic",
    type=click.Choice([EXPORT_RUN, EXPORT_NOTIFY, WEBHOOK_TOPIC]),
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
    with connect() as conn:
        revived = outbox.requeue_dead(conn, topic=topic, since=since, extra_attempts=extra_attempts)
    if as_json:
        emit_json({"requeued": revived})
        return
    table(revived, ["id", "topic", "job_id", "state", "attempts", "max_attempts", "last_error"])
    click.echo(f"{len(revived)} dead messages are ready again")


@click.command()
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
        older_than = dt.timedelta(seconds=settings().outbox_retention_seconds)
    with connect() as conn:
        deleted = prune_outbox(conn, older_than=older_than, batch_size=batch_size)
    if as_json:
        emit_json({"deleted": deleted, "older_than_seconds": older_than.total_seconds()})
    else:
        click.echo(f"deleted {deleted} finished outbox messages older than {older_than}")
