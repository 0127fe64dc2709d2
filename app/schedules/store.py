"""Schedules in the database: create, read, list, change, delete, and fire due slots.

Slot arithmetic is app/schedules/timing.py; every function that needs the time takes `now`
(timezone-aware), so tests never wait; the poller passes the database's clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, fields, replace
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from app.exports import jobs, priorities
from app.exports.formats import FileOptions
from app.exports.jobs import ExportRequest
from app.exports.windows import Window
from app.platform import crypto
from app.platform.db import fetch_all, fetch_one, insert_or_find, keyset_after, request_fingerprint
from app.schedules.timing import UPCOMING_RUNS, Timing, timing_of

log = logging.getLogger(__name__)

CHANNEL = "exports_schedules"  # NOTIFYed by a trigger when a schedule's timing changes
# How a windowed kind's schedule cuts its jobs' windows (exports.schedules.window_mode).
WINDOW_PER_SLOT = "slot"  # the previous slot up to this slot: each period once
WINDOW_SINCE_SUCCESS = "since_last_success"  # from where the last succeeded job's ended
WINDOW_MODES = (WINDOW_PER_SLOT, WINDOW_SINCE_SUCCESS)


class ScheduleNotFound(Exception):
    """No schedule with that id for this tenant."""


class TooManySchedules(Exception):
    """The owner already has `limit` schedules (EXPORTS_MAX_SCHEDULES_PER_OWNER)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} schedules (limit {limit})")
        self.count = count
        self.limit = limit


class ScheduleIdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different schedule request."""

    def __init__(self, schedule: Schedule) -> None:
        super().__init__(f"idempotency key already used for schedule {schedule.id}")
        self.schedule = schedule


# --- schedules in the database -------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """One row of exports.schedules."""

    id: uuid.UUID
    tenant: str
    owner_id: str
    kind: str
    params: dict[str, Any]
    format: str
    notify_email: str | None
    cron: str
    timezone: str
    enabled: bool
    next_run_at: dt.datetime | None
    last_run_at: dt.datetime | None
    last_job_id: uuid.UUID | None
    last_skip_reason: str | None
    notify_webhook: bool
    idempotency_key: str | None
    request_fingerprint: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    columns: list[str] | None
    csv_options: dict[str, Any] | None
    safe_cells: bool
    max_part_bytes: int
    window_mode: str | None
    ends_at: dt.datetime | None
    max_runs: int | None
    runs: int
    ended_at: dt.datetime | None

    @property
    def state(self) -> str:
        """active, paused (enabled false) or ended (ends_at or max_runs reached)."""
        if self.ended_at is not None:
            return "ended"
        return "active" if self.enabled else "paused"

    @property
    def ends(self) -> ScheduleEnds:
        """Its end conditions."""
        return ScheduleEnds(self.ends_at, self.max_runs)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Schedule:
        """Build from a dict row (notify_email decrypted), ignoring columns this code does
        not know yet."""
        values = {f.name: row[f.name] for f in fields(cls)}
        if values["notify_email"] is not None:
            values["notify_email"] = crypto.vault().decrypt(values["notify_email"])
        return cls(**values)

    @property
    def timing(self) -> Timing:
        """The schedule's cron expression and time zone."""
        return timing_of(self.cron, self.timezone)

    @property
    def export(self) -> ExportRequest:
        """The export each slot queues."""
        return ExportRequest(
            owner_id=self.owner_id,
            kind=self.kind,
            params=self.params,
            format=self.format,
            notify_email=self.notify_email,
            notify_webhook=self.notify_webhook,
            # Its jobs run in the schedule's own time zone.
            options=FileOptions.stored(
                columns=self.columns,
                timezone=self.timezone,
                csv_options=self.csv_options,
                safe_cells=self.safe_cells,
                max_part_bytes=self.max_part_bytes,
            ),
        )

    def upcoming(self, count: int = UPCOMING_RUNS) -> list[dt.datetime]:
        """The next `count` run times (UTC), within ends_at and max_runs; empty while
        paused or ended."""
        if not self.enabled or self.next_run_at is None:
            return []
        if self.max_runs is not None:
            count = min(count, self.max_runs - self.runs)
        if count <= 0:
            return []
        slots = [self.next_run_at]
        if count > 1:
            slots += self.timing.upcoming(self.next_run_at, count - 1)
        return [slot for slot in slots if self.ends_at is None or slot <= self.ends_at]

    def window_for(self, conn: Connection, end: dt.datetime) -> Window | None:
        """The window of a job of this schedule ending at `end` (a slot, or now for
        run-now); None for kinds without windows."""
        if self.window_mode is None:
            return None
        start = self.timing.previous_slot(end)
        if self.window_mode == WINDOW_SINCE_SUCCESS:
            row = fetch_one(conn, "last_success_window_end", schedule_id=self.id)
            if row is not None and row["window_end"] is not None and row["window_end"] < end:
                start = row["window_end"]
        return Window(start, end)


@dataclass(frozen=True)
class ScheduleEnds:
    """When a schedule stops firing: after a date, after a number of jobs (None: never)."""

    ends_at: dt.datetime | None = None
    max_runs: int | None = None

    def reached(self, next_run_at: dt.datetime | None, runs: int) -> bool:
        """No slot is left: the next one is past ends_at, or max_runs jobs were queued."""
        if self.max_runs is not None and runs >= self.max_runs:
            return True
        return self.ends_at is not None and (next_run_at is None or next_run_at > self.ends_at)


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated request for a schedule."""

    export: ExportRequest
    timing: Timing
    enabled: bool = True
    window_mode: str | None = None  # windowed kinds: WINDOW_PER_SLOT or WINDOW_SINCE_SUCCESS
    ends: ScheduleEnds = ScheduleEnds()


# PATCH's "leave as it is" for a field that may also be set to null.
UNCHANGED: Any = object()


@dataclass(frozen=True)
class ScheduleChanges:
    """A partial update (PATCH): None (or UNCHANGED) means "leave as it is"."""

    cron: str | None = None
    timezone: str | None = None
    params: dict[str, Any] | None = None
    enabled: bool | None = None
    ends_at: dt.datetime | None = UNCHANGED  # None: no end date any more
    max_runs: int | None = UNCHANGED  # None: no limit any more


# Why a due slot queued no job (exports.schedules.last_skip_reason).
SKIPPED_OWNER_QUOTA = "owner_quota"


@dataclass(frozen=True)
class Fired:
    """One slot fired: the schedule, the slot and the job it queued, or why it queued none."""

    schedule_id: uuid.UUID
    slot: dt.datetime
    job_id: uuid.UUID | None
    next_run_at: dt.datetime | None  # None: that was its last slot
    skipped: str | None = None
    ended: bool = False  # ends_at or max_runs reached: it fires no more


def create_schedule(
    conn: Connection,
    tenant: str,
    export: ExportRequest,
    timing: Timing,
    *,
    enabled: bool,
    now: dt.datetime,
    idempotency_key: str | None,
    max_per_owner: int = 0,
    window_mode: str | None = None,
    ends: ScheduleEnds = ScheduleEnds(),
) -> tuple[Schedule, bool]:
    """Insert a schedule whose first run is the first slot after `now`; (schedule, created).

    A repeated idempotency key returns the first schedule (created=False) or raises
    ScheduleIdempotencyConflict when the request differs. TooManySchedules when the owner
    has `max_per_owner` schedules already (0: no limit; a replay is never refused).
    """
    fingerprint = _fingerprint(export, timing, enabled, window_mode, ends)
    owner = {"tenant": tenant, "owner_id": export.owner_id}
    first = timing.next_after(now)
    ended = ends.reached(first, 0)
    if max_per_owner:
        # The lock new exports of this owner take too: counts and inserts do not interleave.
        fetch_one(conn, "lock_owner_requests", **owner)
        replay = idempotency_key is not None and fetch_one(
            conn, "get_schedule_by_key", **owner, idempotency_key=idempotency_key
        )
        if not replay:
            count = fetch_one(conn, "count_owner_schedules", **owner)
            assert count is not None
            if count["schedules"] >= max_per_owner:
                raise TooManySchedules(count["schedules"], max_per_owner)
    row, created = insert_or_find(
        conn,
        "insert_schedule",
        "get_schedule_by_key",
        {
            "tenant": tenant,
            "owner_id": export.owner_id,
            "kind": export.kind,
            "params": Jsonb(export.params),
            "format": export.format,
            **export.option_columns(),
            **jobs.sealed_address("notify_email", export.notify_email),
            "notify_webhook": export.notify_webhook,
            "cron": timing.cron,
            "timezone": timing.timezone,
            "enabled": enabled,
            "next_run_at": first if enabled and not ended else None,
            "window_mode": window_mode,
            "ends_at": ends.ends_at,
            "max_runs": ends.max_runs,
            "ended_at": now if ended else None,
            "idempotency_key": idempotency_key,
            "request_fingerprint": fingerprint,
        },
        {"tenant": tenant, "owner_id": export.owner_id, "idempotency_key": idempotency_key},
    )
    schedule = Schedule.from_row(row)
    if not created and schedule.request_fingerprint != fingerprint:
        raise ScheduleIdempotencyConflict(schedule)
    return schedule, created


def get_schedule(conn: Connection, tenant: str, schedule_id: uuid.UUID) -> Schedule:
    """The tenant's schedule; ScheduleNotFound otherwise (also for another tenant's)."""
    row = fetch_one(conn, "get_schedule", tenant=tenant, id=schedule_id)
    if row is None:
        raise ScheduleNotFound(str(schedule_id))
    return Schedule.from_row(row)


def list_schedules(
    conn: Connection,
    tenant: str,
    *,
    owner_id: str | None,
    limit: int,
    before: tuple[dt.datetime, uuid.UUID] | None,
) -> list[Schedule]:
    """Newest first, starting after the keyset position `before` (created_at, id)."""
    rows = fetch_all(
        conn,
        "list_schedules",
        tenant=tenant,
        owner_id=owner_id,
        limit=limit,
        **keyset_after(before),
    )
    return [Schedule.from_row(r) for r in rows]


def update_schedule(
    conn: Connection,
    tenant: str,
    schedule_id: uuid.UUID,
    changes: ScheduleChanges,
    *,
    now: dt.datetime,
) -> Schedule:
    """Apply a partial update; a new cron/time zone, re-enabling or reopening an ended
    schedule (a later ends_at, a higher max_runs) recomputes the next run from `now` (no
    catch-up for slots that passed meanwhile); disabling or reaching an end clears it.

    ScheduleInvalid if the resulting timing is unusable.
    """
    row = fetch_one(conn, "lock_schedule", tenant=tenant, id=schedule_id)
    if row is None:
        raise ScheduleNotFound(str(schedule_id))
    current = Schedule.from_row(row)
    timing = Timing(changes.cron or current.cron, changes.timezone or current.timezone)
    enabled = current.enabled if changes.enabled is None else changes.enabled
    ends = ScheduleEnds(
        current.ends_at if changes.ends_at is UNCHANGED else changes.ends_at,
        current.max_runs if changes.max_runs is UNCHANGED else changes.max_runs,
    )
    keeps_its_slot = (
        enabled and current.enabled and current.ended_at is None and timing == current.timing
    )
    # A new cron/time zone, a resumed or a reopened schedule starts from now: no catch-up.
    candidate = current.next_run_at if keeps_its_slot else timing.next_after(now)
    if ends.reached(candidate, current.runs):
        next_run_at, ended_at = None, current.ended_at or now
    else:
        next_run_at, ended_at = (candidate if enabled else None), None
    updated = fetch_one(
        conn,
        "update_schedule",
        id=schedule_id,
        cron=timing.cron,
        timezone=timing.timezone,
        params=Jsonb(current.params if changes.params is None else changes.params),
        enabled=enabled,
        next_run_at=next_run_at,
        ends_at=ends.ends_at,
        max_runs=ends.max_runs,
        ended_at=ended_at,
    )
    assert updated is not None, "the row is locked by this transaction"
    return Schedule.from_row(updated)


def delete_schedule(conn: Connection, tenant: str, schedule_id: uuid.UUID) -> None:
    """Delete the schedule; its jobs stay (their schedule_id becomes NULL)."""
    if fetch_one(conn, "delete_schedule", tenant=tenant, id=schedule_id) is None:
        raise ScheduleNotFound(str(schedule_id))


# --- firing (the poller's scheduler) -------------------------------------------------------


def fire_due_schedules(
    conn: Connection,
    now: dt.datetime,
    limit: int,
    *,
    max_attempts: int,
    max_active: int = 0,
    priority_max_wait: int = priorities.DEFAULT_MAX_WAIT,
) -> list[Fired]:
    """Queue one export per due schedule (at most `limit`) and move each to its first slot
    after `now`. A slot whose owner has `max_active` exports queued or running already
    (the API's quota, under the same lock) queues nothing and records why. Slot jobs have
    priority "scheduled" (`priority_max_wait`: EXPORTS_PRIORITY_MAX_WAIT).

    In the caller's transaction: due rows are claimed FOR UPDATE SKIP LOCKED (any number
    of pollers may call this at once), and each job, its export.run message and the
    schedule's new next_run_at commit together. The per-slot idempotency key makes "one
    job per slot" hold in the database too. Several missed slots fire once, for the latest.
    Keep `limit` small (the scheduler uses tens): the jobs become visible at commit.
    """
    fired: list[Fired] = []
    for row in fetch_all(conn, "claim_due_schedules", now=now, limit=limit):
        schedule = Schedule.from_row(row)
        assert schedule.next_run_at is not None, "only enabled schedules are due"
        slot, next_run_at = schedule.timing.due_slot(now, floor=schedule.next_run_at)
        skipped = None
        try:
            job_id = _queue_slot(
                conn,
                schedule,
                slot,
                max_attempts=max_attempts,
                max_active=max_active,
                priority_max_wait=priority_max_wait,
            )
        except jobs.QuotaExceeded as exc:
            log.warning(
                "schedule slot skipped: the owner is at the export quota",
                extra={
                    "schedule_id": str(schedule.id),
                    "slot": slot.isoformat(),
                    "active": exc.active,
                    "limit": exc.limit,
                },
            )
            job_id, skipped = None, SKIPPED_OWNER_QUOTA
        runs = schedule.runs + (job_id is not None)
        if schedule.ends.reached(next_run_at, runs):
            log.info("schedule ended", extra={"schedule_id": str(schedule.id), "runs": runs})
            fired.append(Fired(schedule.id, slot, job_id, None, skipped, ended=True))
        else:
            fired.append(Fired(schedule.id, slot, job_id, next_run_at, skipped))
    if fired:  # one statement for the whole batch (and one NOTIFY from its trigger)
        fetch_all(
            conn,
            "advance_schedules",
            ids=[f.schedule_id for f in fired],
            next_run_ats=[f.next_run_at for f in fired],
            last_run_ats=[f.slot for f in fired],
            last_job_ids=[f.job_id for f in fired],
            last_skip_reasons=[f.skipped for f in fired],
            ended=[f.ended for f in fired],
        )
    return fired


def _queue_slot(
    conn: Connection,
    schedule: Schedule,
    slot: dt.datetime,
    *,
    max_attempts: int,
    max_active: int,
    priority_max_wait: int,
) -> uuid.UUID | None:
    """The slot's job (new, or the one its key already names); QuotaExceeded if none may be."""
    key = f"schedule:{schedule.id}:{slot.isoformat()}"
    export = replace(
        schedule.export,
        window=schedule.window_for(conn, slot),
        window_derived=True,
        priority=priorities.SCHEDULED,
    )
    try:
        job, created = jobs.request_export(
            conn,
            schedule.tenant,
            export,
            idempotency_key=key,
            max_attempts=max_attempts,
            max_active=max_active,
            schedule_id=schedule.id,
            priority_max_wait=priority_max_wait,
        )
    except jobs.IdempotencyConflict as exc:
        # Someone sent this schedule's slot key by hand: that job stands for the slot.
        log.warning("slot key already used", extra={"schedule_id": str(schedule.id)})
        return exc.job.id
    if created:
        log.info(
            "schedule fired",
            extra={
                "schedule_id": str(schedule.id),
                "slot": slot.isoformat(),
                "job_id": str(job.id),
            },
        )
    return job.id


def run_now(
    conn: Connection,
    schedule: Schedule,
    *,
    now: dt.datetime,
    idempotency_key: str | None,
    max_attempts: int,
    max_active: int = 0,
) -> tuple[jobs.Job, bool]:
    """Queue one job now with the schedule's settings, its window ending `now`; (job,
    created). A repeated idempotency key returns the job it made (its window was "now" then)
    even if the schedule changed since: the request has no body to differ; a key naming
    another schedule's or a hand-made job is IdempotencyConflict. It is an extra run:
    next_run_at, runs and max_runs are left alone; someone is waiting for it, so its
    priority is interactive, not scheduled."""
    tenant = schedule.tenant
    if idempotency_key is not None:
        earlier = fetch_one(
            conn,
            "get_job_by_key",
            tenant=tenant,
            owner_id=schedule.owner_id,
            idempotency_key=idempotency_key,
        )
        if earlier is not None:
            if earlier["schedule_id"] != schedule.id:
                raise jobs.IdempotencyConflict(jobs.Job.from_row(earlier))
            return jobs.Job.from_row(earlier), False
    export = replace(schedule.export, window=schedule.window_for(conn, now), window_derived=True)
    return jobs.request_export(
        conn,
        tenant,
        export,
        idempotency_key=idempotency_key,
        max_attempts=max_attempts,
        max_active=max_active,
        schedule_id=schedule.id,
    )


def next_due_in(conn: Connection) -> tuple[dt.datetime, dt.datetime | None]:
    """(the database's clock now, the earliest next_run_at of any enabled schedule)."""
    row = fetch_one(conn, "next_due_schedule")
    assert row is not None
    return row["now"], row["next_run_at"]


def database_now(conn: Connection) -> dt.datetime:
    """The database's clock: every poller fires by the same time."""
    return next_due_in(conn)[0]


def _fingerprint(
    export: ExportRequest,
    timing: Timing,
    enabled: bool,
    window_mode: str | None,
    ends: ScheduleEnds,
) -> str:
    fields: dict[str, Any] = {
        **export.fingerprint_fields(),
        "cron": timing.cron,
        "timezone": timing.timezone,
        "enabled": enabled,
    }
    # Left out while unset, so schedules made before these existed keep their fingerprint.
    if window_mode is not None:
        fields["window_mode"] = window_mode
    if ends.ends_at is not None:
        fields["ends_at"] = ends.ends_at.astimezone(dt.UTC).isoformat()
    if ends.max_runs is not None:
        fields["max_runs"] = ends.max_runs
    return request_fingerprint(fields)
