"""The daemon's timetable: timings parse or say how to fix them, wall-clock times follow the
daylight-saving changes of their timezone, and a job that overruns is not started twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import schedule
from hypothesis import given
from hypothesis import strategies as st

from sweeper.daemon import _Job
from sweeper.timetable import Timing

AMS = ZoneInfo("Europe/Amsterdam")


class FakeClock:
    """A clock the test moves; the scheduler reads it instead of the system's."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def runs(text: str, start: datetime, hours: int, tz: ZoneInfo = AMS) -> list[datetime]:
    """Return when a job timed by text runs over the hours after start, minute by minute."""
    clock = FakeClock(start)
    scheduler = schedule.Scheduler()
    ran: list[datetime] = []
    _Job("job", Timing.parse(text), tz, clock, scheduler).do(lambda: ran.append(clock.now))
    for _ in range(hours * 60):
        clock.now += timedelta(minutes=1)
        scheduler.run_pending()
    return ran


def local(moments: list[datetime]) -> list[str]:
    return [m.astimezone(AMS).strftime("%Y-%m-%d %H:%M %Z") for m in moments]


def test_daily_time_in_the_spring_gap_runs_once_after_it() -> None:
    """On the night the clocks go forward, 02:30 (which does not exist) runs at 03:30 CEST."""
    ran = runs("daily at 02:30", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), 72)
    assert local(ran) == [
        "2026-03-29 03:30 CEST",
        "2026-03-30 02:30 CEST",
        "2026-03-31 02:30 CEST",
    ]


def test_daily_time_on_the_night_after_the_spring_change_runs_once() -> None:
    """The night after the clocks went forward, 02:00 runs once, at 02:00 CEST."""
    ran = runs("daily at 02:00", datetime(2026, 3, 28, 12, 0, tzinfo=UTC), 72)
    assert local(ran) == [
        "2026-03-29 03:00 CEST",
        "2026-03-30 02:00 CEST",
        "2026-03-31 02:00 CEST",
    ]


def test_daily_time_in_the_repeated_autumn_hour_runs_once() -> None:
    """When the clocks go back, 02:30 happens twice; the job runs at the first only."""
    ran = runs("daily at 02:30", datetime(2026, 10, 24, 12, 0, tzinfo=UTC), 72)
    assert local(ran) == [
        "2026-10-25 02:30 CEST",
        "2026-10-26 02:30 CET",
        "2026-10-27 02:30 CET",
    ]


def test_daily_time_keeps_its_wall_clock_time_across_the_change() -> None:
    """A daily 12:00 stays at 12:00 local time: 10:00 UTC in summer, 11:00 UTC in winter."""
    ran = runs("daily at 12:00", datetime(2026, 10, 24, 0, 0, tzinfo=UTC), 72)
    assert [m.strftime("%H:%M") for m in ran] == ["10:00", "11:00", "11:00"]


def test_interval_is_elapsed_time_across_the_autumn_change() -> None:
    """'every hour' runs every 60 minutes through the repeated hour, without a gap."""
    ran = runs("every hour", datetime(2026, 10, 24, 22, 30, tzinfo=UTC), 6)
    gaps = {b - a for a, b in pairwise(ran)}
    assert len(ran) == 6 and gaps == {timedelta(hours=1)}


def test_hourly_at_a_minute_runs_every_hour_across_the_spring_change() -> None:
    """'hourly at :15' runs at a quarter past every hour, 60 minutes apart, across the gap."""
    ran = runs("hourly at :15", datetime(2026, 3, 28, 22, 0, tzinfo=UTC), 6)
    assert {m.minute for m in ran} == {15}
    assert {b - a for a, b in pairwise(ran)} == {timedelta(hours=1)}


def test_weekly_runs_on_its_weekday_at_local_time() -> None:
    """'weekly on monday at 03:00' runs on Mondays at 03:00 local, before and after the change."""
    ran = runs("weekly on monday at 03:00", datetime(2026, 3, 20, 12, 0, tzinfo=UTC), 24 * 20)
    assert local(ran) == [
        "2026-03-23 03:00 CET",
        "2026-03-30 03:00 CEST",
        "2026-04-06 03:00 CEST",
    ]


def test_job_that_overruns_its_next_slots_is_not_started_twice() -> None:
    """A job running past its next two slots runs once; the next run is a slot after it ends."""
    clock = FakeClock(datetime(2026, 5, 1, 8, 0, tzinfo=UTC))
    scheduler = schedule.Scheduler()
    ran: list[datetime] = []

    def slow() -> None:
        ran.append(clock.now)
        clock.now += timedelta(minutes=25)  # the job takes 25 minutes; it runs every 10

    job = _Job("execute", Timing.parse("every 10 minutes"), AMS, clock, scheduler)
    job.do(slow)
    for _ in range(14):
        clock.now += timedelta(minutes=1)
        scheduler.run_pending()
    assert ran == [datetime(2026, 5, 1, 8, 10, tzinfo=UTC)]
    assert job.next_at == datetime(2026, 5, 1, 8, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("dayly at 02:00", "is not a timing: write e.g. 'daily at 02:00'"),
        ("daily at 25:00", "25:00 is not a time of day"),
        ("hourly at :75", "the minute must be 00 to 59"),
        ("every 0 minutes", "the interval must be at least 1"),
        ("weekly on funday at 03:00", "is not a timing"),
        ("", "is not a timing"),
    ],
)
def test_invalid_timing_says_how_to_write_one(text: str, fix: str) -> None:
    """An invalid timing is refused with what to write instead."""
    with pytest.raises(ValueError, match=fix.replace("(", r"\(")):
        Timing.parse(text)


def test_never_has_no_run() -> None:
    """'never' parses and has no next run."""
    timing = Timing.parse("Never")
    assert timing.never
    with pytest.raises(ValueError, match="no next run"):
        timing.next_after(datetime(2026, 1, 1, tzinfo=UTC), AMS)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(
        ["daily at 02:30", "weekly on sunday at 02:00", "hourly at :30", "every 7 hours"]
    ),
    st.sampled_from(["Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_next_run_is_after_now_and_within_its_period(now: datetime, text: str, zone: str) -> None:
    """The next run is always strictly after now and no later than one period after it."""
    timing = Timing.parse(text)
    after = timing.next_after(now, ZoneInfo(zone))
    limit = {"d": timedelta(days=1, hours=2), "w": timedelta(days=7, hours=2)}.get(
        text.split()[0][0], timedelta(hours=7)
    )
    assert now < after <= now + limit
