"""The daemon's timetable: when each job runs, written the way a sysadmin says it.

A timing is one of::

    never                                   (the job does not run on a timetable)
    every 30 seconds | every 15 minutes | every 2 hours | every day | every week
    every hour | hourly            every hour at :15 | hourly at :15
    daily at 02:00 | every day at 02:00
    weekly on monday at 03:00 | every monday at 03:00

Wall-clock times (``at``) are in the daemon's timezone and follow its daylight-saving
changes: a time that does not exist that night (02:30 when the clocks go from 02:00 to 03:00)
runs as late as the gap is long (03:30), and a time that happens twice (when the clocks go
back) runs once, at the first. Intervals are elapsed time, unaffected by clock changes. The
next run is always counted from *now*, after the previous run finished: a job that overran
its next slot is not started twice, and slots it overran are not caught up.

``Timing`` places the runs; the daemon's ``schedule.Scheduler`` holds the jobs and runs
those that are due (see ``sweeper.daemon``). schedule's own ``.at(time, tz)`` is not used:
schedule 1.2.2 misplaces a daily time on the night after the clocks go forward (it runs the
job an hour early there and again at the right time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_EXAMPLES = (
    "'daily at 02:00', 'every hour', 'every 15 minutes', 'hourly at :30', "
    "'weekly on monday at 03:00' or 'never'"
)
_INTERVAL = re.compile(r"every (?:(?P<n>\d+) )?(?P<unit>second|minute|hour|day|week)s?")
_HOURLY = re.compile(r"(?:hourly|every hour) at :(?P<minute>\d\d)")
_DAILY = re.compile(r"(?:daily|every day) at (?P<at>\d{1,2}:\d\d(?::\d\d)?)")
_WEEKLY = re.compile(
    r"(?:weekly on|every) (?P<day>" + "|".join(WEEKDAYS) + r") at (?P<at>\d{1,2}:\d\d(?::\d\d)?)"
)


@dataclass(frozen=True)
class Timing:
    """When a job runs: an interval, a time of day, a time of the week, a minute of the hour,
    or never. Create it with ``Timing.parse``."""

    text: str
    interval: timedelta | None = None
    at: time | None = None
    weekday: int | None = None
    minute: int | None = None

    @classmethod
    def parse(cls, text: Any) -> Timing:
        """Given a timing as written, return it. Raise ValueError naming the fix if invalid."""
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not a timing: write e.g. {_EXAMPLES}")
        clean = " ".join(text.strip().lower().split())
        if clean in ("never", "off"):
            return cls("never")
        if clean == "hourly":
            clean = "every hour"
        if match := _INTERVAL.fullmatch(clean):
            count = int(match["n"] or 1)
            if count < 1:
                raise ValueError(f"{text!r}: the interval must be at least 1")
            seconds = count * _UNITS[match["unit"]]
            return cls(clean, interval=timedelta(seconds=seconds))
        if match := _HOURLY.fullmatch(clean):
            minute = int(match["minute"])
            if minute > 59:
                raise ValueError(f"{text!r}: the minute must be 00 to 59")
            return cls(clean, minute=minute)
        if match := _DAILY.fullmatch(clean):
            return cls(clean, at=_clock_time(text, match["at"]))
        if match := _WEEKLY.fullmatch(clean):
            at = _clock_time(text, match["at"])
            return cls(clean, at=at, weekday=WEEKDAYS.index(match["day"]))
        raise ValueError(f"{text!r} is not a timing: write e.g. {_EXAMPLES}")

    @property
    def never(self) -> bool:
        return self.text == "never"

    def next_after(self, now: datetime, tz: tzinfo) -> datetime:
        """Given an aware now and the timezone of wall-clock times, return the first run
        strictly after now (aware, UTC). Raise ValueError for ``never`` or a naive now."""
        if now.tzinfo is None:
            raise ValueError("the timetable needs an aware datetime")
        now = now.astimezone(UTC)
        if self.interval is not None:
            return now + self.interval
        if self.minute is not None:
            hour = now.replace(minute=0, second=0, microsecond=0)
            for step in range(3):  # local minutes are UTC minutes shifted by the zone's offset
                local = (hour + timedelta(hours=step)).astimezone(tz)
                candidate = local.replace(minute=self.minute, second=0).astimezone(UTC)
                if candidate > now:
                    return candidate
            raise AssertionError("unreachable: some minute of the next hours is after now")
        if self.at is None:
            raise ValueError("a job timed 'never' has no next run")
        day = now.astimezone(tz).date()
        for offset in range(9):
            date = day + timedelta(days=offset)
            if self.weekday is not None and date.weekday() != self.weekday:
                continue
            # fold=0: a time that happens twice is its first; one that does not exist is
            # read with the offset before the change, i.e. as late as the gap is long.
            candidate = datetime.combine(date, self.at, tzinfo=tz).astimezone(UTC)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable: a weekday comes within eight days")

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Timing:
            return value if isinstance(value, Timing) else cls.parse(value)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "description": f"When the job runs, e.g. {_EXAMPLES}",
            "examples": ["daily at 02:00", "every hour", "weekly on monday at 03:00", "never"],
        }


def _clock_time(text: str, value: str) -> time:
    parts = [int(p) for p in value.split(":")]
    hour, minute, second = (*parts, 0)[:3]
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{text!r}: {value} is not a time of day (00:00 to 23:59)")
    return time(hour, minute, second)
