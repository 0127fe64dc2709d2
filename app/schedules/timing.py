"""When a schedule fires: slots of a cron expression read in an IANA time zone, in UTC.

A slot is a local wall-clock time the cron expression matches, converted to UTC:

- a time skipped by spring-forward (02:30 on the day clocks jump 02:00 → 03:00) fires once,
  at the first minute after the jump (03:00 local);
- a time that happens twice at fall-back fires once, at its first occurrence, unless the
  cron's hour field is `*` (then the schedule runs by elapsed time, like cron: an hourly
  schedule fires in both copies of the repeated hour).

Missed slots (downtime) fire once, for the most recent one; the next run is always the first
slot strictly after "now". Every function that needs the time takes `now` (timezone-aware),
so tests never wait; the poller passes the database's clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

UTC = dt.UTC
UPCOMING_RUNS = 5  # how many future slots the API shows
MAX_TIMEZONE = 64
MAX_CRON = 200
# croniter's random field: R, R(0-30), R/5 (any case).
_RANDOM_FIELD = re.compile(r"(?i)r(?:\(|/|$)")
_SCAN_LIMIT = 10_000  # slots walked at most in one computation (cron's densest is 1/minute)


class ScheduleInvalid(Exception):
    """The cron expression or time zone is unusable; `errors` maps field → what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k} {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a 5-field cron expression read in an IANA time zone."""

    cron: str
    timezone: str

    def __post_init__(self) -> None:
        errors = {}
        if problem := cron_problem(self.cron):
            errors["cron"] = problem
        if problem := timezone_problem(self.timezone):
            errors["timezone"] = problem
        if errors:
            raise ScheduleInvalid(errors)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The time zone the cron expression is read in."""
        return zoneinfo.ZoneInfo(self.timezone)

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first slot strictly after `after`, in UTC."""
        return self._forward(after, 1)[0]

    def upcoming(self, after: dt.datetime, count: int = UPCOMING_RUNS) -> list[dt.datetime]:
        """The next `count` slots strictly after `after`, in UTC."""
        return self._forward(after, count)

    def latest_at_or_before(self, now: dt.datetime, *, floor: dt.datetime) -> dt.datetime:
        """The most recent slot at or before `now`, and not before `floor` (a due slot).

        What a schedule fires after downtime: one job for the latest missed slot.
        """
        now = _utc(now)
        candidate = _utc(floor)
        raw = croniter(self.cron, now.astimezone(self.zone)).get_prev(dt.datetime)
        if self._skipped(raw):  # the repeat of an ambiguous time: its first copy counts
            raw = raw.replace(fold=0)
        if candidate < _utc(raw) <= now:
            candidate = _utc(raw)
        # Walk forward from there: corrects croniter's get_prev around DST transitions.
        for _ in range(_SCAN_LIMIT):
            following = self.next_after(candidate)
            if following > now:
                return candidate
            candidate = following
        return candidate

    def previous_slot(self, before: dt.datetime) -> dt.datetime:
        """The latest slot strictly before `before`, in UTC: where a slot's window starts.

        croniter's get_prev lands near it; walking forward from a few hours earlier (the
        forward walk is the one that handles DST changes) finds it exactly.
        """
        before = _utc(before)
        near = croniter(self.cron, before.astimezone(self.zone)).get_prev(dt.datetime)
        anchor = _utc(near) - _DST_MARGIN
        earlier = [slot for slot in self._forward(anchor, _BACK_SCAN) if slot < before]
        return earlier[-1] if earlier else self.previous_slot(anchor)

    def due_slot(self, now: dt.datetime, *, floor: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(the slot to fire at `now` for a schedule due since `floor`, the next slot after `now`).

        The usual case, fired on time, costs one slot computation: when no slot lies in
        (floor, now], floor is the slot and the one after it is the next run.
        """
        following = self.next_after(floor)
        if following > _utc(now):
            return _utc(floor), following
        return self.latest_at_or_before(now, floor=floor), self.next_after(now)

    def _forward(self, after: dt.datetime, count: int) -> list[dt.datetime]:
        after = _utc(after)
        slots: list[dt.datetime] = []
        iterator = croniter(self.cron, after.astimezone(self.zone))
        for _ in range(_SCAN_LIMIT):
            local = iterator.get_next(dt.datetime)
            slot = _utc(local)
            # Strictly increasing: two skipped times can land on the same instant (03:00).
            if self._skipped(local) or slot <= (slots[-1] if slots else after):
                continue
            slots.append(slot)
            if len(slots) == count:
                return slots
        raise CroniterBadDateError(f"no slot of {self.cron!r} found after {after}")

    def _skipped(self, local: dt.datetime) -> bool:
        """The second copy of a repeated wall-clock time, for a schedule with fixed hours."""
        if local.fold != 1 or local.utcoffset() == local.replace(fold=0).utcoffset():
            return False
        return croniter(self.cron).expanded[1] != ["*"]


# previous_slot: how far before croniter's answer the forward walk starts (more than any
# DST shift), and how many slots it may look at (a per-minute cron has 240 in 4 hours).
_DST_MARGIN = dt.timedelta(hours=3)
_BACK_SCAN = 300


def cron_problem(cron: Any) -> str | None:
    """What is wrong with a cron expression, or None: 5 fields that croniter accepts."""
    if not isinstance(cron, str):
        return "must be a string"
    if len(cron) > MAX_CRON:
        return f"must be at most {MAX_CRON} characters"
    if len(cron.split()) != 5:
        return "must have exactly 5 fields: minute hour day-of-month month day-of-week"
    if any(_RANDOM_FIELD.match(field) for field in cron.split()):
        # croniter draws R anew on every computation: next_runs would change on every read
        # and the schedule would fire at a random time each hour (issue 12, item 7).
        return "must not use R (random): pick the minute or hour yourself"
    try:
        croniter(cron)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        return f"is not a valid cron expression ({exc})"
    try:  # a valid expression may still never match a date (0 0 30 2 *), in any zone
        croniter(cron, dt.datetime(2000, 1, 1, tzinfo=UTC)).get_next(dt.datetime)
    except CroniterBadDateError:
        return "never matches a date"
    return None


def timezone_problem(name: Any) -> str | None:
    """What is wrong with a time zone name, or None: an IANA name zoneinfo knows."""
    if not isinstance(name, str):
        return "must be a string"
    if not name or len(name) > MAX_TIMEZONE or "\x00" in name:
        return "is not a known IANA time zone (like Europe/Berlin)"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return "is not a known IANA time zone (like Europe/Berlin)"
    return None


@functools.lru_cache(maxsize=4096)
def timing_of(cron: str, timezone: str) -> Timing:
    """Timing(cron, timezone), validated once per distinct pair (firing reads it per slot)."""
    return Timing(cron, timezone)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return value.astimezone(UTC)
