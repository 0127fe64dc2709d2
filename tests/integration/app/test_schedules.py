"""Schedules on real PostgreSQL, with the time injected: one job per slot, however it races."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from app.exports.jobs import ExportRequest
from app.schedules import store, timing
from app.schedules.store import ScheduleChanges
from app.schedules.timing import Timing

EXPORT = ExportRequest("user-1", "demo_orders", {"since": None}, "csv", None)
DAILY_0800 = Timing("0 8 * * *", "UTC")
CREATED = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 6, day, hour, minute, second, tzinfo=dt.UTC)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A transactional connection, like the API's and the poller's pool hands out."""
    with psycopg.connect(database_url) as connection:
        yield connection


def create(conn: psycopg.Connection, timing: Timing = DAILY_0800, **kwargs) -> uuid.UUID:
    schedule, _ = store.create_schedule(
        conn,
        kwargs.pop("tenant", "default"),
        kwargs.pop("export", EXPORT),
        timing,
        enabled=kwargs.pop("enabled", True),
        now=kwargs.pop("now", CREATED),
        idempotency_key=kwargs.pop("idempotency_key", None),
    )
    conn.commit()
    return schedule.id


def fire(conn: psycopg.Connection, now: dt.datetime, limit: int = 100) -> list[store.Fired]:
    fired = store.fire_due_schedules(conn, now, limit, max_attempts=5)
    conn.commit()
    return fired


def jobs_of(db: psycopg.Connection, schedule_id: uuid.UUID) -> list[dict]:
    return db.execute(
        "SELECT * FROM exports.jobs WHERE schedule_id = %s ORDER BY created_at", (schedule_id,)
    ).fetchall()


def schedule_row(db: psycopg.Connection, schedule_id: uuid.UUID) -> dict:
    return db.execute("SELECT * FROM exports.schedules WHERE id = %s", (schedule_id,)).fetchone()


def test_a_new_schedule_waits_for_its_first_slot(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)

    assert schedule_row(db, schedule_id)["next_run_at"] == at(1, 8)
    assert fire(conn, at(1, 7, 59, 59)) == []
    assert jobs_of(db, schedule_id) == []


def test_a_due_slot_fires_once_with_its_job_and_export_message(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)

    fired = fire(conn, at(1, 8))
    again = fire(conn, at(1, 8, 0, 30))

    assert [(f.schedule_id, f.slot, f.next_run_at) for f in fired] == [
        (schedule_id, at(1, 8), at(2, 8))
    ]
    assert again == []
    (job,) = jobs_of(db, schedule_id)
    assert job["id"] == fired[0].job_id and job["state"] == "queued"
    assert (job["owner_id"], job["kind"], job["format"]) == ("user-1", "demo_orders", "csv")
    assert job["idempotency_key"] == f"schedule:{schedule_id}:2024-06-01T08:00:00+00:00"
    messages = db.execute(
        "SELECT topic, priority, priority_wait_seconds FROM exports.outbox WHERE job_id = %s",
        (job["id"],),
    ).fetchall()
    # A slot's export gives way to people waiting for theirs (for at most 5 of the 10 min).
    assert job["priority"] == "scheduled"
    assert messages == [
        {"topic": "export.run", "priority": "scheduled", "priority_wait_seconds": 300}
    ]
    row = schedule_row(db, schedule_id)
    assert (row["next_run_at"], row["last_run_at"], row["last_job_id"]) == (
        at(2, 8),
        at(1, 8),
        job["id"],
    )


def test_downtime_catch_up_fires_once_for_the_latest_missed_slot(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)  # due 1 June 08:00; nothing ran until 5 June 12:00

    fired = fire(conn, at(5, 12))

    assert [(f.slot, f.next_run_at) for f in fired] == [(at(5, 8), at(6, 8))]
    assert len(jobs_of(db, schedule_id)) == 1
    assert fire(conn, at(5, 12, 0, 1)) == []


def test_the_same_slot_cannot_make_a_second_job_even_if_next_run_at_is_wound_back(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)
    (first,) = fire(conn, at(1, 8))
    db.execute(
        "UPDATE exports.schedules SET next_run_at = %s WHERE id = %s", (at(1, 8), schedule_id)
    )

    (second,) = fire(conn, at(1, 8, 0, 5))

    assert second.job_id == first.job_id
    assert len(jobs_of(db, schedule_id)) == 1


def test_a_disabled_schedule_does_not_fire_and_re_enabling_does_not_catch_up(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)

    paused = store.update_schedule(
        conn, "default", schedule_id, ScheduleChanges(enabled=False), now=at(1, 6)
    )
    conn.commit()
    assert (paused.enabled, paused.next_run_at, paused.upcoming()) == (False, None, [])
    assert fire(conn, at(9, 12)) == []

    resumed = store.update_schedule(
        conn, "default", schedule_id, ScheduleChanges(enabled=True), now=at(10, 12)
    )
    conn.commit()
    assert resumed.next_run_at == at(11, 8)  # the days paused are not fired
    assert fire(conn, at(10, 12, 0, 1)) == []
    assert [f.slot for f in fire(conn, at(11, 8))] == [at(11, 8)]
    assert len(jobs_of(db, schedule_id)) == 1


def test_a_schedule_created_disabled_has_no_next_run(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn, enabled=False)

    assert schedule_row(db, schedule_id)["next_run_at"] is None
    assert fire(conn, at(30, 0)) == []


def test_patch_recomputes_the_next_run_from_now(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)

    retimed = store.update_schedule(
        conn, "default", schedule_id, ScheduleChanges(cron="30 9 * * *"), now=at(1, 9)
    )
    assert retimed.next_run_at == at(1, 9, 30)
    moved = store.update_schedule(
        conn, "default", schedule_id, ScheduleChanges(timezone="America/New_York"), now=at(1, 9)
    )
    assert moved.next_run_at == at(1, 13, 30)  # 09:30 EDT
    reparametrised = store.update_schedule(
        conn,
        "default",
        schedule_id,
        ScheduleChanges(params={"since": "2024-01-01"}),
        now=at(1, 10),
    )
    conn.commit()

    assert reparametrised.next_run_at == at(1, 13, 30)  # unchanged: the timing is the same
    assert reparametrised.params == {"since": "2024-01-01"}
    (fired,) = fire(conn, at(1, 13, 30))
    assert jobs_of(db, schedule_id)[0]["params"] == {"since": "2024-01-01"}
    assert fired.next_run_at == at(2, 13, 30)


def test_patch_to_a_cron_that_never_matches_is_refused(conn: psycopg.Connection) -> None:
    schedule_id = create(conn)

    with pytest.raises(timing.ScheduleInvalid):
        store.update_schedule(
            conn, "default", schedule_id, ScheduleChanges(cron="0 0 31 2 *"), now=at(1, 9)
        )


def test_another_tenants_schedule_is_not_found(conn: psycopg.Connection) -> None:
    schedule_id = create(conn, tenant="other")

    with pytest.raises(store.ScheduleNotFound):
        store.get_schedule(conn, "default", schedule_id)
    with pytest.raises(store.ScheduleNotFound):
        store.delete_schedule(conn, "default", schedule_id)


def test_deleting_a_schedule_keeps_its_jobs(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)
    (fired,) = fire(conn, at(1, 8))

    store.delete_schedule(conn, "default", schedule_id)
    conn.commit()

    job = db.execute("SELECT * FROM exports.jobs WHERE id = %s", (fired.job_id,)).fetchone()
    assert job is not None and job["schedule_id"] is None


def test_three_firers_racing_over_500_due_schedules_make_exactly_500_jobs(
    db: psycopg.Connection, conn: psycopg.Connection, database_url: str
) -> None:
    for i in range(500):
        store.create_schedule(
            conn,
            "default",
            ExportRequest(f"user-{i % 7}", "demo_orders", {}, "csv", None),
            DAILY_0800,
            enabled=True,
            now=CREATED,
            idempotency_key=None,
        )
    conn.commit()
    now = at(1, 8)
    start = threading.Barrier(3)
    fired_by: list[list[store.Fired]] = [[], [], []]
    errors: list[BaseException] = []

    def firer(index: int) -> None:
        try:
            with psycopg.connect(database_url) as own:
                start.wait()
                while batch := fire(own, now, limit=25):
                    fired_by[index].extend(batch)
        except BaseException as exc:  # reported below: a thread's failure fails the test
            errors.append(exc)

    threads = [threading.Thread(target=firer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    fired = [f for batch in fired_by for f in batch]
    assert len(fired) == 500
    assert len({f.schedule_id for f in fired}) == 500
    assert sum(1 for batch in fired_by if batch) >= 2, "the firers did not race"
    counts = db.execute(
        """SELECT count(*) AS jobs, count(DISTINCT schedule_id) AS schedules,
                  count(*) FILTER (WHERE schedule_id IS NULL) AS unscheduled
           FROM exports.jobs"""
    ).fetchone()
    assert counts == {"jobs": 500, "schedules": 500, "unscheduled": 0}
    messages = db.execute(
        "SELECT count(*) AS n FROM exports.outbox WHERE topic = 'export.run'"
    ).fetchone()
    assert messages["n"] == 500
    pending = db.execute(
        "SELECT count(*) AS n FROM exports.schedules WHERE next_run_at <= %s", (now,)
    ).fetchone()
    assert pending["n"] == 0
    assert fire(conn, now) == []
