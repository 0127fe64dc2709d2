"""The jobs domain: every change of an export job's state happens through these functions.

    queued ──start──► running ──finish──► succeeded ──(retention)──► expired
       ▲                 │ └────fail────► failed
       └────requeue──────┘
    queued | running ──cancel──► cancelled

The API calls request_export / cancel_job; the poller calls the rest, always naming the
outbox message (and so the attempt) it holds. Each function is one transaction's worth of
work on the caller's connection; the caller commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, fields
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from app.exports import priorities
from app.exports.formats import CSV_FAMILY, FileOptions
from app.exports.topics import EXPORT_RUN
from app.exports.windows import Window
from app.notifications import email, webhooks
from app.platform import crypto
from app.platform.crypto import mask_address
from app.platform.db import (
    fenced,
    fetch_all,
    fetch_one,
    insert_or_find,
    keyset_after,
    request_fingerprint,
)
from app.queue import outbox
from app.queue.outbox import Message
from app.storage import Storage

DEFAULT_TENANT = "default"
STATES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


@dataclass(frozen=True)
class Job:
    """One row of exports.jobs."""

    id: uuid.UUID
    tenant: str
    owner_id: str
    kind: str
    params: dict[str, Any]
    format: str
    notify_email: str | None
    state: str
    attempts: int
    idempotency_key: str | None
    request_fingerprint: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    progress_rows: int
    progress_bytes: int
    result_key: str | None
    result_rows: int | None
    result_bytes: int | None
    result_sha256: str | None
    result_content_type: str | None
    expires_at: dt.datetime | None
    last_error: str | None
    notified_at: dt.datetime | None
    email_message_id: str | None
    email_status: str | None
    schedule_id: uuid.UUID | None
    notify_webhook: bool
    columns: list[str] | None
    timezone: str
    csv_options: dict[str, Any] | None
    safe_cells: bool
    max_part_bytes: int
    result_parts: list[dict[str, Any]] | None
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    priority: str

    @property
    def window(self) -> Window | None:
        """The period a windowed kind's job exports; None for other kinds."""
        if self.window_start is None and self.window_end is None:
            return None
        return Window(self.window_start, self.window_end)

    @property
    def options(self) -> FileOptions:
        """How the file is shaped: columns, time zone, CSV dialect, safe cells, parts."""
        return FileOptions.stored(
            columns=self.columns,
            timezone=self.timezone,
            csv_options=self.csv_options,
            safe_cells=self.safe_cells,
            max_part_bytes=self.max_part_bytes,
        )

    @property
    def parts(self) -> list[StoredPart]:
        """The stored files in order (jobs made before parts existed had exactly one)."""
        if self.result_parts is not None:
            return [StoredPart(**part) for part in self.result_parts]
        if self.result_key is None:
            return []
        assert self.result_rows is not None and self.result_bytes is not None
        return [
            StoredPart(
                key=self.result_key,
                rows=self.result_rows,
                bytes=self.result_bytes,
                sha256=self.result_sha256 or "",
            )
        ]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        """Build from a dict row (notify_email decrypted), ignoring columns this code does
        not know yet."""
        values = {f.name: row[f.name] for f in fields(cls)}
        if values["notify_email"] is not None:
            values["notify_email"] = crypto.vault().decrypt(values["notify_email"])
        return cls(**values)


@dataclass(frozen=True)
class ExportRequest:
    """A validated request for an export (params already checked against the catalog)."""

    owner_id: str
    kind: str
    params: dict[str, Any]
    format: str
    notify_email: str | None
    notify_webhook: bool = True  # the tenant's webhook endpoints hear of it
    options: FileOptions = dataclasses.field(default_factory=FileOptions)
    window: Window | None = None  # windowed kinds only
    # The window was worked out by the service (a kind's default, a schedule's slot), not
    # given: a replay computes another one, so the fingerprint leaves it out.
    window_derived: bool = False
    priority: str = priorities.INTERACTIVE  # app/exports/priorities.py

    def fingerprint(self) -> str:
        """sha256 of the request's canonical JSON: tells a retry from a different request."""
        return request_fingerprint(self.fingerprint_fields())

    def fingerprint_fields(self) -> dict[str, Any]:
        """What the fingerprint covers. Defaults of what came later (notify_webhook, the file
        options, the window) are left out, so older requests keep their fingerprint across
        upgrades."""
        fields = dict(self.__dict__)
        if fields["notify_webhook"]:
            del fields["notify_webhook"]
        if fields["priority"] == priorities.INTERACTIVE:
            del fields["priority"]
        del fields["options"], fields["window"], fields["window_derived"]
        if self.window is not None and not self.window_derived:
            fields["window"] = self.window.to_json()
        return {**fields, **self.options.changed_fields()}

    def option_columns(self) -> dict[str, Any]:
        """The file options as exports.jobs / exports.schedules columns (timezone apart)."""
        options = self.options
        return {
            "columns": list(options.columns) if options.columns is not None else None,
            "csv_options": Jsonb(options.csv.to_json()) if self.format in CSV_FAMILY else None,
            "safe_cells": options.safe_cells,
            "max_part_bytes": options.max_part_bytes,
        }


@dataclass(frozen=True)
class StoredPart:
    """One stored file of an export (most exports have exactly one)."""

    key: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ExportResult:
    """What a finished export produced: its parts, and the manifest when there are several."""

    parts: tuple[StoredPart, ...]
    content_type: str
    manifest: StoredPart | None = None

    @property
    def key(self) -> str:
        """What exports.jobs.result_key names: the only part, or the manifest."""
        return (self.manifest or self.parts[0]).key

    @property
    def rows(self) -> int:
        """Data rows, every part together."""
        return sum(p.rows for p in self.parts)

    @property
    def bytes(self) -> int:
        """Bytes stored, every part together (the manifest not counted)."""
        return sum(p.bytes for p in self.parts)


def sealed_address(column: str, address: str | None) -> dict[str, str | None]:
    """The query parameters that store an address: `column` encrypted, `column`_masked."""
    if address is None:
        return {column: None, f"{column}_masked": None}
    return {column: crypto.vault().encrypt(address), f"{column}_masked": mask_address(address)}


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"idempotency key already used for job {job.id}")
        self.job = job


class QuotaExceeded(Exception):
    """The owner already has `limit` exports queued or running for this tenant."""

    def __init__(self, active: int, limit: int) -> None:
        super().__init__(f"{active} exports queued or running (limit {limit})")
        self.active = active
        self.limit = limit


class JobNotFound(Exception):
    """No job with that id for this tenant."""


class NotCancellable(Exception):
    """The job already ended; `job` is its current state."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is {job.state}")
        self.job = job


class ExportStopped(Exception):
    """The running export must stop: the job was cancelled, or our lease was lost."""


def request_export(
    conn: Connection,
    tenant: str,
    request: ExportRequest,
    *,
    idempotency_key: str | None,
    max_attempts: int,
    max_active: int = 0,
    dedupe_seconds: float = 0,
    schedule_id: uuid.UUID | None = None,
    priority_max_wait: int = priorities.DEFAULT_MAX_WAIT,
) -> tuple[Job, bool]:
    """Insert the job and its export.run message together; (job, created).

    A repeated idempotency key returns the first job (created=False) or raises
    IdempotencyConflict when the body differs. Without a key, an identical request of the
    last `dedupe_seconds` returns that job (created=False). QuotaExceeded when the owner
    already has `max_active` jobs queued or running (0: no limit; 0 s: no dedupe).
    `schedule_id` names the schedule that queued it, if any; `priority_max_wait` is
    EXPORTS_PRIORITY_MAX_WAIT (app/exports/priorities.py).
    """
    fingerprint = request.fingerprint()
    if max_active or (dedupe_seconds and idempotency_key is None):
        earlier, active = _check_owner_requests(
            conn,
            tenant,
            request.owner_id,
            fingerprint,
            idempotency_key=idempotency_key,
            count_active=bool(max_active),
            dedupe_seconds=dedupe_seconds,
        )
        if earlier is not None:
            if idempotency_key is not None:  # a replay is never refused for the quota
                return _replayed(Job.from_row(earlier), fingerprint), False
            return Job.from_row(earlier), False  # the recent twin
        if max_active and active >= max_active:
            raise QuotaExceeded(active, max_active)
    row, created = insert_or_find(
        conn,
        "insert_job_with_message",
        "get_job_by_key",
        {
            "tenant": tenant,
            "owner_id": request.owner_id,
            "kind": request.kind,
            "params": Jsonb(request.params),
            "format": request.format,
            **request.option_columns(),
            "timezone": request.options.timezone,
            "window_start": request.window.start if request.window else None,
            "window_end": request.window.end if request.window else None,
            **sealed_address("notify_email", request.notify_email),
            "notify_webhook": request.notify_webhook,
            "idempotency_key": idempotency_key,
            "request_fingerprint": fingerprint,
            "schedule_id": schedule_id,
            "priority": request.priority,
            "priority_wait_seconds": priorities.wait_seconds(request.priority, priority_max_wait),
            "topic": EXPORT_RUN,
            "payload": Jsonb({}),
            "max_attempts": max_attempts,
        },
        {"tenant": tenant, "owner_id": request.owner_id, "idempotency_key": idempotency_key},
    )
    if not created:  # the key was taken (possibly by a concurrent twin of this request)
        return _replayed(Job.from_row(row), fingerprint), False
    return Job.from_row(row), True


def _check_owner_requests(
    conn: Connection,
    tenant: str,
    owner_id: str,
    fingerprint: str,
    *,
    idempotency_key: str | None,
    count_active: bool,
    dedupe_seconds: float,
) -> tuple[dict[str, Any] | None, int]:
    """Lock the owner's requests until commit, then (earlier job, active jobs count).

    The earlier job is the one the idempotency key names, else (with dedupe) a recent
    twin. One call of exports.check_owner_requests, which says why the lock makes the
    checks safe under concurrency; the earlier job's row is read only when there is one.
    """
    checked = fetch_one(
        conn,
        "check_owner_requests",
        tenant=tenant,
        owner_id=owner_id,
        request_fingerprint=fingerprint,
        idempotency_key=idempotency_key,
        dedupe_seconds=float(dedupe_seconds),
        count_active=count_active,
    )
    assert checked is not None  # a function with OUT parameters returns one row
    earlier = None
    if checked["earlier_job_id"] is not None:
        earlier = fetch_one(conn, "get_job_by_id", id=checked["earlier_job_id"])
    return earlier, checked["active_jobs"]


def _replayed(job: Job, fingerprint: str) -> Job:
    """The job a reused idempotency key names, if the request is the same one."""
    if job.request_fingerprint != fingerprint:
        raise IdempotencyConflict(job)
    return job


def get_job(conn: Connection, tenant: str, job_id: uuid.UUID) -> Job:
    """The tenant's job; JobNotFound otherwise (another tenant's job is 'not found' too)."""
    row = fetch_one(conn, "get_job", tenant=tenant, id=job_id)
    if row is None:
        raise JobNotFound(str(job_id))
    return Job.from_row(row)


def list_jobs(
    conn: Connection,
    tenant: str,
    *,
    owner_id: str | None,
    state: str | None,
    limit: int,
    before: tuple[dt.datetime, uuid.UUID] | None,
    schedule_id: uuid.UUID | None = None,
) -> list[Job]:
    """Newest first, starting after the keyset position `before` (created_at, id); only
    `schedule_id`'s jobs when given."""
    rows = fetch_all(
        conn,
        "list_jobs",
        tenant=tenant,
        owner_id=owner_id,
        state=state,
        schedule_id=schedule_id,
        limit=limit,
        **keyset_after(before),
    )
    return [Job.from_row(r) for r in rows]


def cancel_job(conn: Connection, tenant: str, job_id: uuid.UUID) -> Job:
    """queued/running → cancelled. A running export notices at its next progress write."""
    row = fetch_one(conn, "cancel_job", tenant=tenant, id=job_id)
    if row is not None:
        return _ended(conn, Job.from_row(row))
    job = get_job(conn, tenant, job_id)  # raises JobNotFound
    if job.state == "cancelled":
        return job  # cancelling twice is not an error: the caller gets what it asked for
    raise NotCancellable(job)


# --- poller side ---------------------------------------------------------------------------


def start_export(conn: Connection, message: Message) -> Job | None:
    """Claim the job for this attempt (→ running); None if it ended (cancelled) or a later
    attempt holds it."""
    row = fetch_one(conn, "start_export", id=message.job_id, attempt=message.attempts)
    return Job.from_row(row) if row else None


def record_progress(conn: Connection, message: Message, *, rows: int, bytes_: int) -> None:
    """Store progress; ExportStopped when the job was cancelled or re-claimed meanwhile."""
    row = fetch_one(
        conn,
        "record_progress",
        id=message.job_id,
        attempt=message.attempts,
        rows=rows,
        bytes=bytes_,
    )
    if row is None:
        raise ExportStopped(f"job {message.job_id} is no longer running under this attempt")


def finish_export(
    conn: Connection, message: Message, result: ExportResult, *, retention_seconds: int
) -> Job:
    """In one transaction: job succeeded with its result, message done, notify queued."""
    row = fenced(
        conn,
        "finish_export",
        id=message.job_id,
        attempt=message.attempts,
        key=result.key,
        rows=result.rows,
        bytes=result.bytes,
        sha256=(result.manifest or result.parts[0]).sha256,
        content_type=result.content_type,
        parts=Jsonb([dataclasses.asdict(p) for p in result.parts]),
        retention_seconds=retention_seconds,
    )
    outbox.complete_message(conn, message)
    return _notify(conn, Job.from_row(row))


def retry_export(conn: Connection, message: Message, error: str, delay_seconds: float) -> None:
    """A transient failure: back to queued until the message's back-off passes."""
    outbox.retry_message(conn, message, error, delay_seconds)  # the fence: LeaseLost if not ours
    fetch_one(conn, "requeue_export", id=message.job_id, error=error)


def fail_export(conn: Connection, message: Message, error: str) -> Job | None:
    """Give up: message dead, job failed, a failure email queued if anyone is to be told.

    None when the job had already ended otherwise (cancelled): it keeps that state.
    """
    outbox.bury_message(conn, message, error)  # the fence: LeaseLost if not ours
    row = fetch_one(conn, "fail_export", id=message.job_id, error=error)
    if row is None:
        return None
    return _notify(conn, Job.from_row(row))


def _notify(conn: Connection, job: Job) -> Job:
    """The job succeeded or failed: queue the email its owner asked for, and the webhooks."""
    if email.queue_email(conn, job.id):
        job = dataclasses.replace(job, email_status="pending")
    return _ended(conn, job)


def _ended(conn: Connection, job: Job) -> Job:
    """The job reached a terminal state: its tenant's webhook endpoints hear of it (in this
    transaction), unless the request said notify.webhook = false."""
    if job.notify_webhook:
        webhooks.queue_event(conn, job.tenant, job.id, f"export.{job.state}")
    return job


def requeue_handed_back(conn: Connection, message: Message) -> None:
    """The poller stopped and handed `message` back: the job waits as queued again."""
    fetch_one(conn, "requeue_handed_back", id=message.job_id, attempt=message.attempts)


def find_job(conn: Connection, job_id: uuid.UUID) -> Job | None:
    """A job by id whatever its tenant (the poller, and signed links that name it)."""
    row = fetch_one(conn, "get_job_by_id", id=job_id)
    return Job.from_row(row) if row else None


# --- retention ------------------------------------------------------------------------------


def expiring_jobs(
    conn: Connection, *, limit: int, after: tuple[dt.datetime, uuid.UUID] | None = None
) -> list[Job]:
    """Succeeded jobs past expires_at, oldest first, after the keyset position `after`."""
    rows = fetch_all(
        conn,
        "expiring_jobs",
        limit=limit,
        after_expires_at=after[0] if after else None,
        after_id=after[1] if after else None,
    )
    return [Job.from_row(r) for r in rows]


def expire_job(conn: Connection, storage: Storage, job_id: uuid.UUID) -> Job | None:
    """Retention over: delete the job's files, then mark it expired (its links answer 410).

    None when the job is not (or no longer) succeeded and past expires_at. The row stays
    locked from the check to the caller's commit; the file goes first, so a crash before
    the commit leaves a succeeded job without a file, which the next run expires again.
    """
    row = fetch_one(conn, "lock_expiring_job", id=job_id)
    if row is None:
        return None
    job = Job.from_row(row)
    assert job.result_key is not None, "a succeeded job has a result (jobs_succeeded_has_result)"
    for key in dict.fromkeys([*(part.key for part in job.parts), job.result_key]):
        storage.delete(key)  # no error when already gone: repeating is safe
    expired = fetch_one(conn, "expire_job", id=job_id)
    assert expired is not None, "the row is locked and was succeeded"
    return _ended(conn, Job.from_row(expired))


# --- operators (exports-admin; the same SQL functions DBAs call) ----------------------------


class NotRetryable(Exception):
    """The job is not failed or cancelled, or its export is still stopping; `job` is it now."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is {job.state}: not retryable")
        self.job = job


def retry_job(conn: Connection, job_id: uuid.UUID, *, max_attempts: int) -> Job:
    """A failed or cancelled job → queued with a fresh export.run message (exports.retry_job).

    JobNotFound for an unknown id (any tenant); NotRetryable otherwise.
    """
    row = fetch_one(conn, "retry_job", id=job_id, max_attempts=max_attempts)
    if row is not None:
        return Job.from_row(row)
    job = find_job(conn, job_id)
    if job is None:
        raise JobNotFound(str(job_id))
    raise NotRetryable(job)
