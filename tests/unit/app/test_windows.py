"""Windows: the period a slot covers (DST, month ends), end conditions, windowed kinds."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from app.exports.catalog import CatalogError, parse_kind
from app.exports.windows import Window
from app.schedules.store import ScheduleEnds
from app.schedules.timing import Timing

UTC = dt.UTC


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


NEW_YORK_0130 = Timing("30 1 * * *", "America/New_York")


@pytest.mark.parametrize(
    ("timing", "slot", "previous"),
    [
        # Every Monday 08:00 in Berlin: the week with the spring change is 167 hours long,
        # the autumn one 169; both windows run Monday 08:00 to Monday 08:00 local.
        (Timing("0 8 * * mon", "Europe/Berlin"), utc(2024, 4, 1, 6), utc(2024, 3, 25, 7)),
        (Timing("0 8 * * mon", "Europe/Berlin"), utc(2024, 11, 4, 7), utc(2024, 10, 28, 7)),
        (Timing("0 8 * * mon", "Europe/Berlin"), utc(2024, 10, 28, 7), utc(2024, 10, 21, 6)),
        # New York changes on other dates (10 March, 3 November 2024).
        (NEW_YORK_0130, utc(2024, 3, 11, 5, 30), utc(2024, 3, 10, 6, 30)),
        (NEW_YORK_0130, utc(2024, 11, 4, 6, 30), utc(2024, 11, 3, 5, 30)),
        # Month ends: 1 March after a leap February; the last day of each month.
        (Timing("0 0 1 * *", "America/New_York"), utc(2024, 3, 1, 5), utc(2024, 2, 1, 5)),
        (Timing("0 0 1 * *", "America/New_York"), utc(2024, 12, 1, 5), utc(2024, 11, 1, 4)),
        (Timing("0 8 L * *", "Europe/Berlin"), utc(2024, 3, 31, 6), utc(2024, 2, 29, 7)),
        # A window that ends between slots (run now) starts at the slot before it.
        (Timing("0 8 * * mon", "Europe/Berlin"), utc(2024, 4, 3, 12), utc(2024, 4, 1, 6)),
        (Timing("* * * * *", "UTC"), utc(2024, 1, 1), utc(2023, 12, 31, 23, 59)),
    ],
)
def test_a_slots_window_starts_at_the_slot_before_it_in_its_zone(
    timing: Timing, slot: dt.datetime, previous: dt.datetime
) -> None:
    assert timing.previous_slot(slot) == previous


def test_the_monday_window_is_a_local_week_across_the_spring_change() -> None:
    timing = Timing("0 8 * * mon", "Europe/Berlin")
    slot = utc(2024, 4, 1, 6)
    window = Window(timing.previous_slot(slot), slot)

    berlin = ZoneInfo("Europe/Berlin")
    assert window.start is not None and window.end is not None
    assert window.start.astimezone(berlin).strftime("%a %H:%M") == "Mon 08:00"
    assert window.end.astimezone(berlin).strftime("%a %H:%M") == "Mon 08:00"
    assert window.end - window.start == dt.timedelta(hours=167)
    assert window.describe(berlin) == "from 25 Mar 2024 08:00 to 1 Apr 2024 08:00 (Europe/Berlin)"


def test_a_window_must_be_ordered_and_aware() -> None:
    with pytest.raises(ValueError, match="before"):
        Window(utc(2024, 1, 2), utc(2024, 1, 1))
    with pytest.raises(ValueError, match="before"):
        Window(utc(2024, 1, 1), utc(2024, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        Window(dt.datetime(2024, 1, 1), None)
    assert Window(None, utc(2024, 1, 1)).describe(UTC).startswith("until 1 Jan 2024")


@pytest.mark.parametrize(
    ("ends", "next_run_at", "runs", "reached"),
    [
        (ScheduleEnds(), utc(2030, 1, 1), 10**6, False),
        (ScheduleEnds(max_runs=3), utc(2024, 1, 1), 2, False),
        (ScheduleEnds(max_runs=3), utc(2024, 1, 1), 3, True),
        (ScheduleEnds(ends_at=utc(2024, 1, 1)), utc(2024, 1, 1), 0, False),  # inclusive
        (ScheduleEnds(ends_at=utc(2024, 1, 1)), utc(2024, 1, 1, 0, 1), 0, True),
        (ScheduleEnds(utc(2024, 6, 1), 5), utc(2024, 1, 1), 5, True),
    ],
)
def test_end_conditions(
    ends: ScheduleEnds, next_run_at: dt.datetime, runs: int, reached: bool
) -> None:
    assert ends.reached(next_run_at, runs) == reached


KIND = """/*---
description = "x"
{header}
---*/
SELECT 1 AS n FROM t WHERE owner_id = %(owner_id)s {where}
"""
WINDOWED = "AND at >= %(window_start)s AND at < %(window_end)s"


def test_a_windowed_kind_binds_the_window_from_the_job() -> None:
    header = "window = true\nwindow_default_days = 7"
    kind = parse_kind("k", KIND.format(header=header, where=WINDOWED))

    assert kind.window and kind.window_default == dt.timedelta(days=7)
    window = Window(utc(2024, 1, 1), utc(2024, 1, 8))
    assert kind.bind("u", {}, window) == {
        "owner_id": "u",
        "window_start": window.start,
        "window_end": window.end,
    }
    assert kind.bind("u", {})["window_start"] is None  # an open window


@pytest.mark.parametrize(
    ("header", "where", "words"),
    [
        ("window = true", "AND at >= %(window_start)s", "must use"),
        ("", WINDOWED, "declare window = true"),
        ("window = 1", WINDOWED, "true or false"),
        ("window_default_days = 7", "", "needs window = true"),
        ("window = true\nwindow_default_days = 0", WINDOWED, "whole number"),
        ('window = true\n[params.window_start]\ntype = "date"', WINDOWED, "cannot be params"),
    ],
)
def test_window_mistakes_in_a_kind_are_catalog_errors(
    header: str, where: str, words: str
) -> None:
    with pytest.raises(CatalogError, match=words):
        parse_kind("k", KIND.format(header=header, where=where))
