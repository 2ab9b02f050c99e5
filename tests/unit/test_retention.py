"""Retention arithmetic: ISO 8601 periods, calendar addition, due dates and scan cutoffs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from sweeper.retention import Period, cutoff, due_date

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
ZONES: list[tzinfo] = [
    UTC,
    AMSTERDAM,
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),  # a 30-minute daylight-saving shift
    ZoneInfo("Asia/Kolkata"),
]

zones = st.sampled_from(ZONES)
units = st.integers(min_value=0, max_value=30)

periods = st.builds(
    Period,
    years=units,
    months=st.integers(0, 40),
    weeks=units,
    days=st.integers(0, 400),
    hours=st.integers(0, 48),
    minutes=st.integers(0, 120),
    seconds=st.integers(0, 120),
)
calendar_periods = st.builds(
    Period,
    years=st.integers(0, 10),
    months=st.integers(0, 30),
    weeks=st.integers(0, 10),
    days=st.integers(0, 60),
)
nonzero_calendar_periods = calendar_periods.filter(lambda p: not p.is_zero)
graces = st.none() | calendar_periods


def _last_sunday(year: int, month: int) -> date:
    day = date(year, month, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


@st.composite
def dst_nights(draw: st.DrawFn) -> datetime:
    """A wall-clock time in Amsterdam around a daylight-saving change (or a day before)."""
    year = draw(st.integers(2000, 2040))
    day = _last_sunday(year, draw(st.sampled_from([3, 10]))) - timedelta(
        days=draw(st.integers(0, 1))
    )
    moment = time(draw(st.integers(0, 4)), draw(st.integers(0, 59)), fold=draw(st.integers(0, 1)))
    return datetime.combine(day, moment, tzinfo=AMSTERDAM)


def aware_datetimes(allow_imaginary: bool = True) -> st.SearchStrategy[datetime]:
    """Aware datetimes in several zones, with extra weight on Amsterdam's DST nights."""
    anywhere = st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2060, 12, 31),
        timezones=zones,
        allow_imaginary=allow_imaginary,
    )
    return anywhere | (dst_nights() if allow_imaginary else st.nothing())


@st.composite
def same_zone_pairs(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """Two datetimes in one zone, the first at or before the second."""
    zone = draw(zones)
    moments = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 12, 31))
    a, b = sorted([draw(moments), draw(moments)])
    if draw(st.booleans()):  # close together, where clamping and DST bite
        b = a + draw(st.timedeltas(timedelta(0), timedelta(days=3)))
    return a.replace(tzinfo=zone), b.replace(tzinfo=zone)


def at(*args: int, tz: tzinfo = UTC) -> datetime:
    return datetime(*args, tzinfo=tz)


# -- parsing -------------------------------------------------------------------------------


@given(periods)
def test_str_parses_back_to_the_same_period(period: Period) -> None:
    """str(period) is an ISO 8601 duration that parses back to an equal period."""
    assert Period.parse(str(period)) == period


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P2Y", Period(years=2)),
        ("P6M", Period(months=6)),
        ("P4W", Period(weeks=4)),
        ("P1Y6M", Period(years=1, months=6)),
        ("P1DT12H", Period(days=1, hours=12)),
        ("PT30M", Period(minutes=30)),
    ],
)
def test_parse_reads_each_unit(text: str, expected: Period) -> None:
    """Each unit letter lands in its own field; M is months before T and minutes after it."""
    assert Period.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["P2X", "P", "PT", "-P1Y", "P1.5Y", "", "2Y", "P1Y2", "P1M2Y", "P1YT", "P 1Y"]
)
def test_invalid_duration_is_rejected(text: str) -> None:
    """A string that is not a whole-unit ISO 8601 duration raises ValueError naming it."""
    with pytest.raises(ValueError, match="is not an ISO 8601 duration") as info:
        Period.parse(text)
    assert repr(text) in str(info.value)


def test_zero_period_prints_as_p0d() -> None:
    """The empty period has a printable form that parses back."""
    assert str(Period()) == "P0D"
    assert Period.parse("P0D").is_zero


# -- calendar arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(("year", "last_day"), [(2023, 28), (2024, 29)])
def test_one_month_from_31_january_is_the_last_day_of_february(year: int, last_day: int) -> None:
    """P1M from 31 January ends on 28 February, or 29 in a leap year."""
    assert Period(months=1).add_to(at(year, 1, 31, 10)).date() == date(year, 2, last_day)


def test_clamped_day_ends_at_the_end_of_that_day() -> None:
    """A day clamped to the month's end means the end of that day, never earlier."""
    assert Period(months=1).add_to(at(2023, 1, 31, 10)) == datetime.combine(
        date(2023, 2, 28), time.max, tzinfo=UTC
    )


def test_one_month_from_30_april_keeps_the_day() -> None:
    """P1M from 30 April is 30 May at the same time: nothing drifts to the month's end."""
    assert Period(months=1).add_to(at(2025, 4, 30, 8, 15)) == at(2025, 5, 30, 8, 15)


def test_one_year_from_29_february_is_28_february() -> None:
    """P1Y from 29 February ends on 28 February of the next year."""
    assert Period(years=1).add_to(at(2024, 2, 29)).date() == date(2025, 2, 28)


def test_four_years_from_29_february_is_29_february() -> None:
    """P4Y from 29 February lands on 29 February again."""
    assert Period(years=4).add_to(at(2024, 2, 29, 9)) == at(2028, 2, 29, 9)


@given(aware_datetimes())
def test_twelve_months_equal_one_year(start: datetime) -> None:
    """P12M and P1Y give the same result from every start."""
    assert Period(months=12).add_to(start) == Period(years=1).add_to(start)


@given(aware_datetimes())
def test_one_week_equals_seven_days(start: datetime) -> None:
    """P1W and P7D give the same result from every start."""
    assert Period(weeks=1).add_to(start) == Period(days=7).add_to(start)


def test_one_day_across_spring_forward_keeps_the_wall_clock_time() -> None:
    """P1D over Amsterdam's spring-forward night is 12:00 the next day, 23 hours later."""
    start = at(2024, 3, 30, 12, tz=AMSTERDAM)
    due = Period(days=1).add_to(start)
    assert due == at(2024, 3, 31, 12, tz=AMSTERDAM)
    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)


def test_one_day_across_fall_back_keeps_the_wall_clock_time() -> None:
    """P1D over Amsterdam's fall-back night is 12:00 the next day, 25 hours later."""
    start = at(2024, 10, 26, 12, tz=AMSTERDAM)
    due = Period(days=1).add_to(start)
    assert due == at(2024, 10, 27, 12, tz=AMSTERDAM)
    assert due.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=25)


def test_hours_are_elapsed_time_across_a_dst_change() -> None:
    """PT24H over the spring-forward night is 24 real hours: 13:00 the next day."""
    due = Period(hours=24).add_to(at(2024, 3, 30, 12, tz=AMSTERDAM))
    assert due == at(2024, 3, 31, 13, tz=AMSTERDAM)


@pytest.mark.parametrize(
    "call",
    [
        lambda naive: Period(years=1).add_to(naive),
        lambda naive: Period(years=1).subtract_from(naive),
        lambda naive: due_date(naive, Period(days=1)),
        lambda naive: cutoff(naive, Period(days=1)),
    ],
    ids=["add_to", "subtract_from", "due_date", "cutoff"],
)
def test_naive_datetime_raises(call: Callable[[datetime], object]) -> None:
    """Every entry point refuses a naive datetime with ValueError."""
    with pytest.raises(ValueError, match="timezone-aware"):
        call(datetime(2025, 1, 1))


@given(aware_datetimes(), periods)
def test_result_is_aware_in_the_start_zone(start: datetime, period: Period) -> None:
    """Adding a period returns an aware datetime in the start's own zone."""
    due = period.add_to(start)
    assert due.tzinfo is start.tzinfo
    assert due.utcoffset() is not None


@settings(deadline=None)
@given(same_zone_pairs(), calendar_periods)
@example((at(2023, 1, 30, 23), at(2023, 1, 31, 1)), Period(months=1))
@example((at(2024, 1, 28, 23, 59), at(2024, 1, 29, 0, 1)), Period(months=1))
@example(
    (at(2024, 3, 30, 1, 59, tz=AMSTERDAM), at(2024, 3, 30, 2, 30, tz=AMSTERDAM)), Period(days=1)
)
def test_adding_a_calendar_period_is_monotone(
    pair: tuple[datetime, datetime], period: Period
) -> None:
    """A later start never gets an earlier result (compared on the zone's wall clock)."""
    a, b = pair
    assert period.add_to(a) <= period.add_to(b)


@settings(deadline=None)
@given(aware_datetimes(allow_imaginary=False), aware_datetimes(allow_imaginary=False), periods)
def test_adding_elapsed_time_is_monotone_in_real_time(
    a: datetime, b: datetime, period: Period
) -> None:
    """For hours, minutes and seconds alone, a later instant never gets an earlier result."""
    elapsed = Period(hours=period.hours, minutes=period.minutes, seconds=period.seconds)
    a, b = sorted([a, b], key=lambda moment: moment.astimezone(UTC))
    assert elapsed.add_to(a).astimezone(UTC) <= elapsed.add_to(b).astimezone(UTC)


@settings(deadline=None)
@given(aware_datetimes(allow_imaginary=False), periods.filter(lambda p: not p.is_zero))
def test_non_zero_period_moves_forward(start: datetime, period: Period) -> None:
    """A non-zero period ends strictly after its start, in real time."""
    assert period.add_to(start).astimezone(UTC) > start.astimezone(UTC)


# -- due dates and cutoffs -----------------------------------------------------------------


def test_due_date_adds_the_period_then_the_grace() -> None:
    """31 Jan + P1M is the end of 28 Feb; two weeks' grace on top makes it 14 March."""
    due = due_date(at(2023, 1, 31), Period(months=1), Period(weeks=2))
    assert due.date() == date(2023, 3, 14)


def test_grace_after_the_period_differs_from_grace_before() -> None:
    """31 Jan + P1D + P1M is 1 March: the grace is added to the period's end, not the start."""
    assert due_date(at(2023, 1, 31, 9), Period(days=1), Period(months=1)) == at(2023, 3, 1, 9)


@given(aware_datetimes(), calendar_periods)
def test_due_date_without_grace_is_start_plus_period(start: datetime, period: Period) -> None:
    """With no grace, the due date is exactly start + period."""
    assert due_date(start, period) == period.add_to(start)


@settings(max_examples=300, deadline=None)
@given(
    start=aware_datetimes(),
    period=calendar_periods,
    grace=graces,
    after=st.timedeltas(timedelta(0), timedelta(hours=2))
    | st.timedeltas(timedelta(0), timedelta(days=3)),
    now_zone=st.sampled_from([UTC, AMSTERDAM]),
)
@example(
    start=at(2024, 1, 31, 1),
    period=Period(months=1),
    grace=None,
    after=timedelta(0),
    now_zone=UTC,
)
@example(  # Amsterdam's 31 Jan is still 30 Jan in UTC: the cutoff must allow for the zones
    start=at(2023, 1, 31, 0, 30, tz=AMSTERDAM),
    period=Period(months=1),
    grace=None,
    after=timedelta(minutes=30, microseconds=1),
    now_zone=UTC,
)
@example(
    start=at(2024, 3, 31, 2, 30, tz=AMSTERDAM),
    period=Period(years=1),
    grace=Period(days=1),
    after=timedelta(0),
    now_zone=AMSTERDAM,
)
def test_cutoff_never_excludes_a_start_that_is_due(
    start: datetime, period: Period, grace: Period | None, after: timedelta, now_zone: tzinfo
) -> None:
    """Every start whose due date is at or before now is at or before cutoff(now)."""
    now = (due_date(start, period, grace).astimezone(UTC) + after).astimezone(now_zone)
    assert due_date(start, period, grace) <= now
    assert start <= cutoff(now, period, grace)


@settings(max_examples=150, deadline=None)
@given(
    start=aware_datetimes(),
    now=aware_datetimes(),
    period=calendar_periods,
    grace=graces,
)
def test_cutoff_holds_for_any_now(
    start: datetime, now: datetime, period: Period, grace: Period | None
) -> None:
    """For arbitrary starts and nows, being due implies being within the cutoff."""
    assume(due_date(start, period, grace) <= now)
    assert start <= cutoff(now, period, grace)


@settings(deadline=None)
@given(now=aware_datetimes(), period=calendar_periods, grace=graces)
def test_cutoff_itself_is_not_yet_due(now: datetime, period: Period, grace: Period | None) -> None:
    """The cutoff is past the last due start: its own due date is after now."""
    assert due_date(cutoff(now, period, grace), period, grace) > now


@settings(deadline=None)
@given(now=aware_datetimes(), period=calendar_periods, grace=graces)
def test_cutoff_is_not_far_beyond_now(now: datetime, period: Period, grace: Period | None) -> None:
    """The cutoff admits starts that fall due within weeks of now, not months."""
    assert due_date(cutoff(now, period, grace), period, grace) <= now + timedelta(days=40)
