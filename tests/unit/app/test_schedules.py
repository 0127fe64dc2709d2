"""Slots of a schedule: cron read in an IANA time zone, across DST changes and month ends."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from app.schedules.store import Schedule
from app.schedules.timing import ScheduleInvalid, Timing, cron_problem, timezone_problem

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def on_local_day(slots: list[dt.datetime], zone: str, day: dt.date) -> list[dt.datetime]:
    return [s for s in slots if s.astimezone(ZoneInfo(zone)).date() == day]


# --- DST: a daily 02:30 (and 01:30) schedule fires once on the change-over days ----------


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # 02:00 → 03:00 local: 02:30 does not exist; it fires at 03:00, once.
        (NEW_YORK, dt.date(2024, 3, 10), utc(2024, 3, 10, 7, 0)),
        (BERLIN, dt.date(2024, 3, 31), utc(2024, 3, 31, 1, 0)),
        # Fall-back: New York repeats 01:00-02:00 (02:30 happens once), Berlin repeats
        # 02:00-03:00 (02:30 happens twice: it fires at the first, CEST).
        (NEW_YORK, dt.date(2024, 11, 3), utc(2024, 11, 3, 7, 30)),
        (BERLIN, dt.date(2024, 10, 27), utc(2024, 10, 27, 0, 30)),
    ],
)
def test_daily_0230_fires_once_on_dst_days(zone: str, day: dt.date, expected: dt.datetime) -> None:
    timing = Timing("30 2 * * *", zone)
    slots = timing.upcoming(utc(day.year, day.month, day.day - 1, 12), count=3)

    assert on_local_day(slots, zone, day) == [expected]
    assert slots[0] == expected
    # The day after runs at 02:30 local time again.
    after = slots[1].astimezone(ZoneInfo(zone))
    assert (after.date(), after.hour, after.minute) == (day + dt.timedelta(days=1), 2, 30)


def test_repeated_0130_in_new_york_fires_once_at_its_first_occurrence() -> None:
    timing = Timing("30 1 * * *", NEW_YORK)

    slots = timing.upcoming(utc(2024, 11, 2, 12), count=2)

    assert slots == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]  # 01:30 EDT, 01:30 EST


def test_inside_the_repeated_hour_the_second_copy_is_not_a_new_slot() -> None:
    timing = Timing("30 2 * * *", BERLIN)
    # 01:10 UTC is 02:10 CET, the second 02:10 of the night; 02:30 CEST already fired.

    assert timing.next_after(utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 28, 1, 30)


def test_hourly_schedule_fires_every_real_hour_through_fall_back() -> None:
    timing = Timing("0 * * * *", NEW_YORK)

    slots = timing.upcoming(utc(2024, 11, 3, 4, 30), count=4)

    assert slots == [utc(2024, 11, 3, h) for h in (5, 6, 7, 8)]  # 01:00 EDT, 01:00 EST, ...


def test_half_hourly_schedule_skips_the_missing_hour_without_duplicates() -> None:
    timing = Timing("*/30 * * * *", NEW_YORK)

    slots = timing.upcoming(utc(2024, 3, 10, 6, 40), count=3)  # 01:40 EST

    assert slots == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 10, 7, 30), utc(2024, 3, 10, 8, 0)]


def test_monday_0800_follows_local_time_across_the_change() -> None:
    timing = Timing("0 8 * * 1", BERLIN)

    slots = timing.upcoming(utc(2024, 3, 20), count=2)

    assert slots == [utc(2024, 3, 25, 7), utc(2024, 4, 1, 6)]  # 08:00 CET, then 08:00 CEST


# --- month ends ------------------------------------------------------------------------


def test_the_31st_skips_shorter_months() -> None:
    timing = Timing("0 6 31 * *", "UTC")

    slots = timing.upcoming(utc(2024, 1, 31, 7), count=4)

    assert [s.date() for s in slots] == [
        dt.date(2024, 3, 31),
        dt.date(2024, 5, 31),
        dt.date(2024, 7, 31),
        dt.date(2024, 8, 31),
    ]


def test_february_29th_waits_for_the_next_leap_year() -> None:
    timing = Timing("0 8 29 2 *", BERLIN)

    assert timing.next_after(utc(2024, 3, 1)) == utc(2028, 2, 29, 7)


def test_last_day_of_the_month() -> None:
    timing = Timing("0 8 L * *", "UTC")

    assert [s.date() for s in timing.upcoming(utc(2024, 2, 1), count=2)] == [
        dt.date(2024, 2, 29),
        dt.date(2024, 3, 31),
    ]


def test_first_of_the_month_in_local_time() -> None:
    timing = Timing("0 0 1 * *", NEW_YORK)

    assert timing.next_after(utc(2024, 6, 15)) == utc(2024, 7, 1, 4)  # midnight EDT


# --- catch-up after downtime: the most recent missed slot ------------------------------------


def test_catch_up_picks_the_most_recent_missed_slot() -> None:
    timing = Timing("0 8 * * *", BERLIN)

    slot = timing.latest_at_or_before(utc(2024, 6, 5, 12), floor=utc(2024, 6, 1, 6))

    assert slot == utc(2024, 6, 5, 6)


def test_catch_up_exactly_on_a_slot_is_that_slot() -> None:
    timing = Timing("0 8 * * *", BERLIN)

    assert timing.latest_at_or_before(utc(2024, 6, 5, 6), floor=utc(2024, 6, 1, 6)) == utc(
        2024, 6, 5, 6
    )


def test_catch_up_with_nothing_missed_is_the_due_slot() -> None:
    timing = Timing("0 8 * * *", BERLIN)

    assert timing.latest_at_or_before(utc(2024, 6, 1, 6, 0, 1), floor=utc(2024, 6, 1, 6)) == utc(
        2024, 6, 1, 6
    )


def test_catch_up_across_fall_back_ignores_the_repeated_time() -> None:
    timing = Timing("30 2 * * *", BERLIN)

    slot = timing.latest_at_or_before(utc(2024, 10, 27, 1, 45), floor=utc(2024, 10, 25, 0, 30))

    assert slot == utc(2024, 10, 27, 0, 30)


def test_catch_up_over_months_for_a_monthly_schedule() -> None:
    timing = Timing("0 0 1 * *", "UTC")

    assert timing.latest_at_or_before(utc(2024, 9, 20), floor=utc(2024, 2, 1)) == utc(2024, 9, 1)


@pytest.mark.parametrize(
    ("cron", "zone", "floor", "now"),
    [
        ("0 8 * * *", BERLIN, utc(2024, 6, 1, 6), utc(2024, 6, 1, 6)),  # on time
        ("0 8 * * *", BERLIN, utc(2024, 6, 1, 6), utc(2024, 6, 5, 12)),  # missed slots
        ("0 * * * *", BERLIN, utc(2024, 10, 27, 0), utc(2024, 10, 27, 0, 30)),  # both 02:00
        ("0 * * * *", BERLIN, utc(2024, 10, 27, 1), utc(2024, 10, 27, 1, 0, 1)),
        ("30 2 * * *", BERLIN, utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 45)),  # fall back
        ("30 2 * * *", BERLIN, utc(2024, 3, 31, 1), utc(2024, 3, 31, 1, 0, 5)),  # spring fwd
        ("0 0 1 1 *", "UTC", utc(2024, 6, 1, 12, 0, 0, 123000), utc(2024, 6, 1, 12, 0, 1)),
    ],
)
def test_due_slot_is_the_latest_missed_slot_and_the_first_after_now(
    cron: str, zone: str, floor: dt.datetime, now: dt.datetime
) -> None:
    timing = Timing(cron, zone)

    assert timing.due_slot(now, floor=floor) == (
        timing.latest_at_or_before(now, floor=floor),
        timing.next_after(now),
    )


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cron", ["* * * * * *", "@daily", "0 8 * *", "61 * * * *", "0 25 * * *", "x y z a b", ""]
)
def test_unusable_cron_expressions(cron: str) -> None:
    assert cron_problem(cron) is not None
    with pytest.raises(ScheduleInvalid) as raised:
        Timing(cron, "UTC")
    assert set(raised.value.errors) == {"cron"}


@pytest.mark.parametrize("cron", ["R * * * *", "0 R * * *", "r(0-30) * * * *", "R/5 * * * *"])
def test_random_fields_are_refused(cron: str) -> None:
    # croniter re-draws R on every computation: next_runs would change on every read.
    assert "R (random)" in (cron_problem(cron) or "")


@pytest.mark.parametrize(
    "cron",
    ["0 8 * * mon", "0 0 1 * *", "*/15 9-17 * * 1-5", "0 8 L * *", "0 0 * mar fri", "0 0 * * thu"],
)
def test_usable_cron_expressions(cron: str) -> None:
    assert cron_problem(cron) is None


def test_a_cron_that_never_matches_is_refused() -> None:
    with pytest.raises(ScheduleInvalid) as raised:
        Timing("0 0 30 2 *", "UTC")

    assert raised.value.errors == {"cron": "never matches a date"}


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "Europe/Berlin\x00", 5])
def test_unknown_time_zones(zone: object) -> None:
    assert timezone_problem(zone) is not None


def test_both_fields_are_reported_together() -> None:
    with pytest.raises(ScheduleInvalid) as raised:
        Timing("nope", "Nowhere/Town")

    assert set(raised.value.errors) == {"cron", "timezone"}


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Timing("0 8 * * *", "UTC").next_after(dt.datetime(2024, 1, 1))


# --- what the API shows --------------------------------------------------------------------


def schedule(**overrides: object) -> Schedule:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "tenant": "default",
        "owner_id": "user-1",
        "kind": "demo_orders",
        "params": {},
        "format": "csv",
        "notify_email": None,
        "cron": "0 8 * * 1",
        "timezone": BERLIN,
        "enabled": True,
        "next_run_at": utc(2024, 3, 25, 7),
        "last_run_at": None,
        "last_job_id": None,
        "last_skip_reason": None,
        "notify_webhook": True,
        "idempotency_key": None,
        "request_fingerprint": None,
        "created_at": utc(2024, 3, 20),
        "updated_at": utc(2024, 3, 20),
        "columns": None,
        "csv_options": None,
        "safe_cells": True,
        "max_part_bytes": 2**30,
        "window_mode": None,
        "ends_at": None,
        "max_runs": None,
        "runs": 0,
        "ended_at": None,
    }
    values.update(overrides)
    return Schedule(**values)  # type: ignore[arg-type]


def test_upcoming_runs_start_at_the_next_run() -> None:
    assert schedule().upcoming(3) == [utc(2024, 3, 25, 7), utc(2024, 4, 1, 6), utc(2024, 4, 8, 6)]


def test_a_disabled_schedule_has_no_upcoming_runs() -> None:
    assert schedule(enabled=False, next_run_at=None).upcoming() == []
