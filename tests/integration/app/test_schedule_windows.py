"""Schedules that cover their period, on real PostgreSQL with the time injected: slot
windows, since_last_success after failures and outages, end conditions, run now."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from flask.testing import FlaskClient

from app.exports.jobs import ExportRequest
from app.schedules import store
from app.schedules.store import (
    WINDOW_PER_SLOT,
    WINDOW_SINCE_SUCCESS,
    ScheduleChanges,
    ScheduleEnds,
)
from app.schedules.timing import Timing

WINDOWED = ExportRequest("user-1", "demo_orders_window", {"status": None}, "csv", None)
DAILY_0800 = Timing("0 8 * * *", "UTC")
CREATED = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
NO_END = ScheduleEnds()


def at(day: int, hour: int = 8, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 6, day, hour, minute, tzinfo=dt.UTC)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as connection:
        yield connection


def create(
    conn: psycopg.Connection,
    *,
    timing: Timing = DAILY_0800,
    window_mode: str | None = WINDOW_PER_SLOT,
    ends: ScheduleEnds = NO_END,
    export: ExportRequest = WINDOWED,
) -> uuid.UUID:
    schedule, _ = store.create_schedule(
        conn,
        "default",
        export,
        timing,
        enabled=True,
        now=CREATED,
        idempotency_key=None,
        window_mode=window_mode,
        ends=ends,
    )
    conn.commit()
    return schedule.id


def fire(conn: psycopg.Connection, now: dt.datetime) -> list[store.Fired]:
    fired = store.fire_due_schedules(conn, now, 100, max_attempts=5)
    conn.commit()
    return fired


def windows(db: psycopg.Connection, schedule_id: uuid.UUID) -> list[tuple]:
    rows = db.execute(
        "SELECT window_start, window_end FROM exports.jobs WHERE schedule_id = %s"
        " ORDER BY created_at, window_end",
        (schedule_id,),
    ).fetchall()
    return [(r["window_start"], r["window_end"]) for r in rows]


def end_job(db: psycopg.Connection, job_id: uuid.UUID, state: str) -> None:
    """What the poller would do: the job ends (succeeded or failed)."""
    db.execute(
        "UPDATE exports.jobs SET state = %s, finished_at = now(),"
        " result_key = CASE WHEN %s = 'succeeded' THEN 'k' END WHERE id = %s",
        (state, state, job_id),
    )


def test_each_slot_exports_the_period_since_the_slot_before(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)

    for day in (1, 2, 3):
        fire(conn, at(day))

    assert windows(db, schedule_id) == [
        (at(1) - dt.timedelta(days=1), at(1)),
        (at(1), at(2)),
        (at(2), at(3)),
    ]


def test_a_monday_schedule_in_berlin_exports_monday_to_monday_across_dst(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule, _ = store.create_schedule(
        conn,
        "default",
        WINDOWED,
        Timing("0 8 * * mon", "Europe/Berlin"),
        enabled=True,
        now=dt.datetime(2024, 3, 20, tzinfo=dt.UTC),
        idempotency_key=None,
        window_mode=WINDOW_PER_SLOT,
    )
    conn.commit()

    fire(conn, dt.datetime(2024, 3, 25, 7, tzinfo=dt.UTC))  # 08:00 CET
    fire(conn, dt.datetime(2024, 4, 1, 6, tzinfo=dt.UTC))  # 08:00 CEST

    spring = windows(db, schedule.id)[1]
    assert spring == (
        dt.datetime(2024, 3, 25, 7, tzinfo=dt.UTC),
        dt.datetime(2024, 4, 1, 6, tzinfo=dt.UTC),
    )
    job = db.execute(
        "SELECT timezone FROM exports.jobs WHERE schedule_id = %s LIMIT 1", (schedule.id,)
    ).fetchone()
    assert job["timezone"] == "Europe/Berlin"


def test_since_last_success_covers_a_failed_run_and_an_outage_of_three_slots(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn, window_mode=WINDOW_SINCE_SUCCESS)

    [first] = fire(conn, at(1))  # the first run: one period
    end_job(db, first.job_id, "succeeded")
    [second] = fire(conn, at(2))
    end_job(db, second.job_id, "failed")  # its period must not be lost
    [third] = fire(conn, at(3))
    end_job(db, third.job_id, "succeeded")
    # An outage: nothing runs on the 4th, 5th and 6th; the poller is back on the 6th at noon.
    fired = fire(conn, at(6, 12))

    assert len(fired) == 1  # catch-up fires once, for the latest missed slot
    assert windows(db, schedule_id) == [
        (at(1) - dt.timedelta(days=1), at(1)),
        (at(1), at(2)),
        (at(1), at(3)),  # from the last success: the failed run's day again
        (at(3), at(6)),  # one job covering all three missed slots
    ]


def test_a_plain_slot_schedule_catches_up_once_for_the_latest_slot(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn)
    fire(conn, at(1))

    fire(conn, at(4, 12))  # slots of the 2nd, 3rd and 4th passed unfired

    assert windows(db, schedule_id)[-1] == (at(3), at(4))  # the latest slot's period only


def test_max_runs_ends_a_schedule_and_a_patch_reopens_it(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn, ends=ScheduleEnds(max_runs=2))

    fire(conn, at(1))
    assert store.get_schedule(conn, "default", schedule_id).upcoming() == [at(2)]  # 1 left
    fire(conn, at(2))
    ended = store.get_schedule(conn, "default", schedule_id)
    assert (ended.state, ended.runs, ended.next_run_at, ended.upcoming()) == ("ended", 2, None, [])
    assert fire(conn, at(3)) == []  # it fires no more

    reopened = store.update_schedule(
        conn, "default", schedule_id, ScheduleChanges(max_runs=3), now=at(3, 9)
    )
    conn.commit()

    assert (reopened.state, reopened.next_run_at) == ("active", at(4))
    assert reopened.upcoming() == [at(4)]
    fire(conn, at(4))
    assert store.get_schedule(conn, "default", schedule_id).state == "ended"
    assert len(windows(db, schedule_id)) == 3


def test_ends_at_ends_a_schedule_after_its_last_slot_and_can_be_extended(
    db: psycopg.Connection, conn: psycopg.Connection
) -> None:
    schedule_id = create(conn, ends=ScheduleEnds(ends_at=at(2, 12)))
    schedule = store.get_schedule(conn, "default", schedule_id)
    assert schedule.upcoming() == [at(1), at(2)]  # next_runs honours ends_at

    fire(conn, at(1))
    fire(conn, at(2))

    assert store.get_schedule(conn, "default", schedule_id).state == "ended"
    extended = store.update_schedule(
        conn, "default", schedule_id, ScheduleChanges(ends_at=None), now=at(2, 13)
    )
    conn.commit()
    assert (extended.state, extended.next_run_at) == ("active", at(3))


def test_ending_before_the_first_slot_is_ended_from_the_start(conn: psycopg.Connection) -> None:
    schedule_id = create(conn, ends=ScheduleEnds(ends_at=at(1, 7)))

    schedule = store.get_schedule(conn, "default", schedule_id)
    assert (schedule.state, schedule.next_run_at, schedule.upcoming()) == ("ended", None, [])


BODY = {
    "owner_id": "user-1",
    "kind": "demo_orders_window",
    "format": "csv",
    "cron": "0 8 * * mon",
    "timezone": "Europe/Berlin",
}


def test_run_now_queues_a_job_whose_window_ends_now_and_honours_a_key(
    client: FlaskClient,
) -> None:
    schedule = client.post("/v1/schedules", json=BODY).get_json()
    run = f"/v1/schedules/{schedule['id']}/run"

    first = client.post(run, headers={"Idempotency-Key": "now-1"})
    again = client.post(run, headers={"Idempotency-Key": "now-1"})
    other = client.post(run)

    assert first.status_code == 202 and again.status_code == 202 and other.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert other.get_json()["id"] != first.get_json()["id"]
    job = first.get_json()
    assert job["schedule_id"] == schedule["id"] and job["timezone"] == "Europe/Berlin"
    assert job["priority"] == "interactive"  # someone is waiting for it
    start = dt.datetime.fromisoformat(job["window"]["start"])
    end = dt.datetime.fromisoformat(job["window"]["end"])
    assert abs(end - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert start.astimezone(dt.timezone(dt.timedelta(hours=1))).weekday() == 0  # a Monday
    listed = client.get(f"/v1/exports?schedule_id={schedule['id']}").get_json()["items"]
    assert {j["id"] for j in listed} == {first.get_json()["id"], other.get_json()["id"]}
    assert client.get("/v1/exports?schedule_id=nope").status_code == 422
    missing = client.post(f"/v1/schedules/{uuid.uuid4()}/run")
    assert missing.status_code == 404


def test_schedule_requests_with_windows_and_ends(client: FlaskClient) -> None:
    made = client.post(
        "/v1/schedules",
        json={
            **BODY,
            "window": "since_last_success",
            "max_runs": 4,
            "ends_at": "2099-01-01T00:00:00Z",
        },
    )
    assert made.status_code == 201, made.get_json()
    shown = made.get_json()
    assert (shown["window"], shown["max_runs"], shown["runs"], shown["state"]) == (
        "since_last_success",
        4,
        0,
        "active",
    )
    assert len(shown["next_runs"]) == 4  # max_runs caps next_runs

    for body, pointer in (
        ({**BODY, "kind": "demo_orders", "window": "slot"}, "/window"),
        ({**BODY, "window": "weekly"}, "/window"),
        ({**BODY, "ends_at": "2001-01-01T00:00:00Z"}, "/ends_at"),
        ({**BODY, "max_runs": 0}, "/max_runs"),
    ):
        refused = client.post("/v1/schedules", json=body)
        assert refused.status_code == 422, body
        assert pointer in [e["pointer"] for e in refused.get_json()["errors"]]

    patched = client.patch(f"/v1/schedules/{shown['id']}", json={"max_runs": None})
    assert patched.get_json()["max_runs"] is None and len(patched.get_json()["next_runs"]) == 5


WEEK_END = "2024-06-08T00:00:00Z"


def test_export_requests_with_windows(client: FlaskClient) -> None:
    def post(**body: object) -> tuple[int, dict]:
        response = client.post(
            "/v1/exports", json={"owner_id": "user-1", "kind": "demo_orders_window", **body}
        )
        return response.status_code, response.get_json()

    status, job = post(window={"start": "2024-06-01T00:00:00+02:00", "end": WEEK_END})
    assert status == 202
    assert job["window"] == {"start": "2024-05-31T22:00:00Z", "end": "2024-06-08T00:00:00Z"}
    status, job = post()  # the kind's default: the last 7 days
    assert status == 202
    span = dt.datetime.fromisoformat(job["window"]["end"]) - dt.datetime.fromisoformat(
        job["window"]["start"]
    )
    assert span == dt.timedelta(days=7)
    status, job = post(window={"start": "2024-06-01T00:00:00Z"})  # open end
    assert status == 202 and job["window"]["end"] is None

    for window in (
        {"start": "2024-06-08T00:00:00Z", "end": "2024-06-01T00:00:00Z"},
        {"start": "2024-06-01"},
        {"from": "2024-06-01T00:00:00Z"},
    ):
        status, problem = post(window=window)
        assert status == 422, window
        assert any(e["pointer"].startswith("/window") for e in problem["errors"])
    plain = {"owner_id": "user-1", "kind": "demo_orders", "window": {"end": WEEK_END}}
    assert client.post("/v1/exports", json=plain).status_code == 422  # not a windowed kind


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_a_time_utc_cannot_hold_is_a_422_not_a_500(client: FlaskClient, moment: str) -> None:
    # Both match RFC 3339, but in UTC they fall in year 0 or year 10000.
    export = client.post(
        "/v1/exports",
        json={"owner_id": "user-1", "kind": "demo_orders_window", "window": {"start": moment}},
    )
    schedule = client.post("/v1/schedules", json={**BODY, "ends_at": moment})
    created = client.post("/v1/schedules", json=BODY).get_json()
    patched = client.patch(f"/v1/schedules/{created['id']}", json={"ends_at": moment})

    assert export.status_code == 422
    assert "start is out of range" in export.get_json()["errors"][0]["detail"]
    for response in (schedule, patched):
        assert response.status_code == 422
        assert [e["pointer"] for e in response.get_json()["errors"]] == ["/ends_at"]
