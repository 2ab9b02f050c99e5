"""Retention arithmetic: ISO 8601 periods and due dates.

A period is calendar-aware. Years and months are added on the calendar, in the wall-clock time
of the datetime they are added to, and a day that does not exist in the target month is
clamped to the end of the month's last day (23:59:59.999999, so that a later start never gets
an earlier due date):

* ``P1M`` from 31 January gives 28 February (29 February in a leap year), end of that day;
* ``P1M`` from 30 April gives 30 May (nothing is clamped, so months do not "drift" to the end);
* ``P1Y`` from 29 February gives 28 February of the next year, end of that day;
* ``P4Y`` from 29 February gives 29 February four years later;
* ``P1Y6M`` adds the year and the months together (29 Feb 2024 + P1Y6M = 29 Aug 2025).

Weeks and days are then added as calendar days (``P1D`` across a daylight-saving change is the
same wall-clock time on the next day, 23 or 25 hours later), and hours, minutes and seconds
as elapsed time. Due date = clock start + period (+ grace). Only timezone-aware datetimes are
accepted; a naive one raises ``ValueError``, because a retention clock without a timezone is a
bug waiting for a daylight-saving night.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC as _UTC
from datetime import datetime, timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_PERIOD = re.compile(
    r"P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.ASCII,
)
_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")


@functools.lru_cache(maxsize=4096)
def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar-aware ISO 8601 duration such as ``P2Y``, ``P6M``, ``P4W`` or ``P1Y6M``.

    Fractions and negative periods are not accepted: a retention period is whole units.
    """

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        """Given an ISO 8601 duration string, return the Period. Raise ValueError if invalid."""
        if not isinstance(text, str):
            raise ValueError(f"{text!r} is not an ISO 8601 duration such as P2Y, P6M or P4W")
        match = _PERIOD.fullmatch(text.strip().upper())
        if match is None:
            raise ValueError(
                f"{text!r} is not an ISO 8601 duration: write P, then whole numbers with "
                "Y (years), M (months), W (weeks), D (days), e.g. P2Y, P6M, P4W, P1Y6M; "
                "times follow a T, e.g. PT12H"
            )
        return cls(**{k: int(v) for k, v in match.groupdict().items() if v is not None})

    def __str__(self) -> str:
        date = "".join(
            f"{getattr(self, f)}{u}"
            for f, u in (("years", "Y"), ("months", "M"), ("weeks", "W"), ("days", "D"))
            if getattr(self, f)
        )
        time = "".join(
            f"{getattr(self, f)}{u}"
            for f, u in (("hours", "H"), ("minutes", "M"), ("seconds", "S"))
            if getattr(self, f)
        )
        if not date and not time:
            return "P0D"
        return "P" + date + ("T" + time if time else "")

    @property
    def is_zero(self) -> bool:
        return not any(getattr(self, f) for f in _FIELDS)

    def approx_days(self) -> float:
        """Return the period's length in days, months counted as 30.44 days (for sorting)."""
        return (
            self.years * 365.25
            + self.months * 30.44
            + self.weeks * 7
            + self.days
            + (self.hours * 3600 + self.minutes * 60 + self.seconds) / 86400
        )

    def add_to(self, start: datetime) -> datetime:
        """Given an aware datetime, return it plus this period. Raise ValueError if naive."""
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"retention arithmetic needs a timezone-aware datetime, got {start}")
        result = start
        if self.years or self.months:
            total = start.year * 12 + (start.month - 1) + self.years * 12 + self.months
            year, month = divmod(total, 12)
            month += 1
            last = _days_in_month(year, month)
            if start.day <= last:
                result = result.replace(year=year, month=month)
            else:
                # The day does not exist in the target month: the period ends at the end of the
                # month's last day (as Regulation 1182/71 art. 3(2)(c) counts it). Keeping the
                # start's time instead would make add_to non-monotone, and cutoff relies on it:
                # 30 Jan 23:00 + P1M would fall after 31 Jan 01:00 + P1M.
                result = result.replace(year=year, month=month, day=last).replace(
                    hour=23, minute=59, second=59, microsecond=999_999
                )
        if self.weeks or self.days:
            result = result + timedelta(days=self.weeks * 7 + self.days)
        if self.hours or self.minutes or self.seconds:
            # Elapsed time: go through UTC so a daylight-saving change does not shift it.
            tz = result.tzinfo
            elapsed = timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)
            result = (result.astimezone(_UTC) + elapsed).astimezone(tz)
        return result

    def subtract_from(self, end: datetime) -> datetime:
        """Given an aware datetime, return a start whose due date is close to ``end``.

        Calendar subtraction is not the exact inverse of addition (31 Mar - P1M = 28 Feb,
        and 28 Feb + P1M = 28 Mar); use ``cutoff`` when an exact bound is needed.
        """
        if end.tzinfo is None or end.utcoffset() is None:
            raise ValueError(f"retention arithmetic needs a timezone-aware datetime, got {end}")
        result = end
        if self.hours or self.minutes or self.seconds:
            tz = result.tzinfo
            elapsed = timedelta(hours=self.hours, minutes=self.minutes, seconds=self.seconds)
            result = (result.astimezone(_UTC) - elapsed).astimezone(tz)
        if self.weeks or self.days:
            result = result - timedelta(days=self.weeks * 7 + self.days)
        if self.years or self.months:
            total = result.year * 12 + (result.month - 1) - self.years * 12 - self.months
            year, month = divmod(total, 12)
            month += 1
            result = result.replace(
                year=year, month=month, day=min(result.day, _days_in_month(year, month))
            )
        return result

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Period:
            if isinstance(value, Period):
                return value
            return cls.parse(value)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$",
            "description": "ISO 8601 duration in whole units, e.g. P2Y, P6M, P4W, P1Y6M",
            "examples": ["P2Y", "P6M", "P4W"],
        }


def due_date(start: datetime, period: Period, grace: Period | None = None) -> datetime:
    """Given an aware clock start, return the due date: start + period (+ grace)."""
    due = period.add_to(start)
    return grace.add_to(due) if grace is not None else due


def cutoff(now: datetime, period: Period, grace: Period | None = None) -> datetime:
    """Given now and a period, return a bound X such that every start with a due date at or
    before ``now`` is at or before X.

    Scans use it to push ``clock <= X`` into the data source; the exact due date of each
    returned start is then computed with ``due_date``, so X may include a few starts that are
    not yet due, but never excludes one that is. Since ``due_date`` is monotone in its start,
    any start after X is not due once ``due_date(X) > now``.
    """
    candidate = period.subtract_from(grace.subtract_from(now) if grace else now)
    step = timedelta(days=1)
    candidate += step * 4
    while due_date(candidate, period, grace) <= now:
        candidate += step
    return candidate
