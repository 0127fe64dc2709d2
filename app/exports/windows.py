"""Time windows: the half-open period [start, end) a windowed kind's query exports.

A windowed kind (`window = true` in its header) filters on `%(window_start)s` and
`%(window_end)s`; like `%(owner_id)s` they are always bound by the service, from the job.
Either end may be open (NULL): the query decides what an open end means, typically
`(%(window_start)s::timestamptz IS NULL OR placed_at >= %(window_start)s)`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

WINDOW_PARAMS = ("window_start", "window_end")


@dataclass(frozen=True)
class Window:
    """[start, end): start inclusive, end exclusive; None is an open end."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def __post_init__(self) -> None:
        for value in (self.start, self.end):
            if value is not None and value.tzinfo is None:
                raise ValueError("window ends must be timezone-aware")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")

    def bound(self) -> dict[str, dt.datetime | None]:
        """The query parameters that carry it."""
        return {"window_start": self.start, "window_end": self.end}

    def to_json(self) -> dict[str, str | None]:
        """ISO 8601 in UTC, for fingerprints (the API renders its own timestamps)."""
        return {
            "start": self.start.astimezone(dt.UTC).isoformat() if self.start else None,
            "end": self.end.astimezone(dt.UTC).isoformat() if self.end else None,
        }

    @classmethod
    def last(cls, period: dt.timedelta, now: dt.datetime) -> Window:
        """The `period` that ends at `now`."""
        return cls(now - period, now)

    def describe(self, zone: Any) -> str:
        """For people: "from 1 Dec 08:00 to 8 Dec 08:00 (Europe/Berlin)"."""

        def moment(value: dt.datetime) -> str:
            local = value.astimezone(zone)
            return f"{local.day} {local:%b %Y %H:%M}"

        if self.start and self.end:
            text = f"from {moment(self.start)} to {moment(self.end)}"
        elif self.start:
            text = f"from {moment(self.start)} on"
        elif self.end:
            text = f"until {moment(self.end)}"
        else:
            return "all of it"
        return f"{text} ({getattr(zone, 'key', str(zone))})"
