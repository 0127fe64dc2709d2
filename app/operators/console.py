"""What the operator console does: its reads, and its actions, each written to the audit log
(exports.operator_actions) in the same transaction as the change itself.

Every action calls the domain function the CLI calls (and through it the SQL function DBAs
call: exports.cancel_job, retry_job, requeue_dead, retry_message): the console adds no
second way to change state. An action never raises for a job or schedule in the wrong
state: the result says what happened, and is what the audit log records.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass

from psycopg import Connection

from app.exports import jobs
from app.operators.sessions import OperatorSession
from app.platform.db import Row, fetch_all, fetch_one, keyset_after
from app.queue import outbox
from app.schedules import store

PAGE_SIZE = 50


@dataclass(frozen=True)
class JobFilters:
    """The jobs page's filters; None: any."""

    state: str | None = None
    tenant: str | None = None
    owner_id: str | None = None
    kind: str | None = None
    schedule_id: uuid.UUID | None = None


@dataclass(frozen=True)
class JobsPage:
    """One page of jobs, newest first, and the keyset of the next (None: the last page)."""

    jobs: list[Row]
    next_before: tuple[dt.datetime, uuid.UUID] | None


def jobs_page(
    conn: Connection,
    filters: JobFilters,
    before: tuple[dt.datetime, uuid.UUID] | None = None,
    *,
    size: int = PAGE_SIZE,
) -> JobsPage:
    """Jobs of every tenant matching `filters`, older than `before`, newest first."""
    rows = fetch_all(
        conn,
        "console_jobs",
        state=filters.state,
        tenant=filters.tenant,
        owner_id=filters.owner_id,
        kind=filters.kind,
        schedule_id=filters.schedule_id,
        **keyset_after(before),
        limit=size + 1,  # one more tells whether a next page exists
    )
    if len(rows) <= size:
        return JobsPage(rows, None)
    last = rows[size - 1]
    return JobsPage(rows[:size], (last["created_at"], last["id"]))


def job(conn: Connection, job_id: uuid.UUID) -> Row | None:
    """Every column of one job, any tenant's."""
    return fetch_one(conn, "get_job_by_id", id=job_id)


def job_deliveries(conn: Connection, job_id: uuid.UUID) -> list[Row]:
    """The job's webhook deliveries, oldest first."""
    return fetch_all(conn, "console_job_deliveries", id=job_id)


def finished_per_minute(conn: Connection) -> list[Row]:
    """(minute, succeeded, failed) for each of the last 60 minutes, oldest first."""
    return fetch_all(conn, "console_finished_per_minute")


def dead_by_topic(conn: Connection) -> list[Row]:
    """Per topic with dead messages: how many, first and last death."""
    return fetch_all(conn, "console_dead_by_topic")


def schedules(conn: Connection, *, limit: int = 200) -> list[Row]:
    """Every tenant's schedules, soonest next run first, with their last job."""
    return fetch_all(conn, "console_schedules", limit=limit)


def actions(conn: Connection, *, limit: int = 200) -> list[Row]:
    """The audit log, newest first."""
    return fetch_all(conn, "operator_actions", limit=limit)


def _record(
    conn: Connection, session: OperatorSession, action: str, target: str, result: str
) -> str:
    fetch_one(
        conn,
        "record_operator_action",
        key_prefix=session.key_prefix,
        name=session.name,
        action=action,
        target=target,
        result=result,
    )
    return result


def cancel_job(conn: Connection, session: OperatorSession, job_id: uuid.UUID) -> str:
    """Cancel a queued or running export (exports.cancel_job); what happened."""
    found = jobs.find_job(conn, job_id)
    if found is None:
        result = "no such job"
    else:
        try:
            jobs.cancel_job(conn, found.tenant, job_id)
            result = "cancelled"
        except jobs.NotCancellable as exc:
            result = f"not cancelled: the job is {exc.job.state}"
    return _record(conn, session, "cancel_job", str(job_id), result)


def retry_job(
    conn: Connection, session: OperatorSession, job_id: uuid.UUID, *, max_attempts: int
) -> str:
    """Run a failed or cancelled export again (exports.retry_job); what happened."""
    try:
        jobs.retry_job(conn, job_id, max_attempts=max_attempts)
        result = "queued again"
    except jobs.JobNotFound:
        result = "no such job"
    except jobs.NotRetryable as exc:
        if exc.job.state in ("failed", "cancelled"):
            result = "not retried: its export has not stopped yet"
        else:
            result = f"not retried: the job is {exc.job.state}"
    return _record(conn, session, "retry_job", str(job_id), result)


def requeue_dead(
    conn: Connection,
    session: OperatorSession,
    *,
    topic: str | None,
    since: dt.datetime | None,
    extra_attempts: int = 3,
) -> str:
    """Make dead messages of `topic` (None: all) that died since `since` ready again, with
    their jobs (exports.requeue_dead); what happened."""
    revived = outbox.requeue_dead(conn, topic=topic, since=since, extra_attempts=extra_attempts)
    target = f"topic={topic or 'all'} since={since.isoformat() if since else 'all'}"
    return _record(conn, session, "requeue_dead", target, f"{len(revived)} requeued")


def requeue_message(
    conn: Connection, session: OperatorSession, job_id: uuid.UUID, message_id: int
) -> str:
    """Make one dead message of a job ready again, with its job (exports.retry_message)."""
    owned = fetch_one(conn, "console_job_message", id=message_id, job_id=job_id) is not None
    revived = owned and outbox.requeue_message(conn, message_id)
    result = "requeued" if revived else "not requeued: it is not a dead message of this job"
    return _record(conn, session, "requeue_message", f"{job_id} message {message_id}", result)


def set_schedule_enabled(
    conn: Connection,
    session: OperatorSession,
    schedule_id: uuid.UUID,
    *,
    enabled: bool,
    now: dt.datetime,
) -> str:
    """Pause or resume a schedule, as PATCH {"enabled": ...} does; what happened."""
    action = "resume_schedule" if enabled else "pause_schedule"
    row = fetch_one(conn, "console_schedule_tenant", id=schedule_id)
    result = "no such schedule"
    if row is not None:
        # Its tenant's DELETE may commit between the lookup and the update.
        with contextlib.suppress(store.ScheduleNotFound):
            changes = store.ScheduleChanges(enabled=enabled)
            result = store.update_schedule(conn, row["tenant"], schedule_id, changes, now=now).state
    return _record(conn, session, action, str(schedule_id), result)
