"""What an item says: its clock (stat times, a date in the path, an event), subject, size."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from fileshare_tree import TZ, ScanFn, Share

from sweeper.ropa.model import EventClock, PathDateClock

OLD = datetime(2015, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
NEWER = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("clock", ["modified", "mtime"])
def test_modified_clock_is_the_mtime(share: Share, scan: ScanFn, clock: str) -> None:
    """'modified' and 'mtime' start the clock at the file's modification time, in the tz."""
    share.file("a.txt", mtime=OLD, atime=NEWER)
    item = scan(clock).items["a.txt"]
    assert item.clock == OLD
    assert item.clock is not None and item.clock.tzinfo is TZ


@pytest.mark.parametrize("clock", ["accessed", "atime"])
def test_accessed_clock_is_the_atime(share: Share, scan: ScanFn, clock: str) -> None:
    """'accessed' and 'atime' start the clock at the file's access time."""
    share.file("a.txt", mtime=NEWER, atime=OLD)
    assert scan(clock).items["a.txt"].clock == OLD


def test_ctime_clock_is_the_inode_change_time(share: Share, scan: ScanFn) -> None:
    """'ctime' starts the clock at st_ctime, not at the (older) mtime set by utime."""
    share.file("a.txt", mtime=OLD, atime=OLD)
    ctime_ns = os.stat(share.path("a.txt")).st_ctime_ns
    clock = scan("ctime").items["a.txt"].clock
    assert clock == datetime.fromtimestamp(ctime_ns // 1000 / 1e6, UTC)
    assert clock != OLD


def test_created_clock_is_birth_time_else_ctime(share: Share, scan: ScanFn) -> None:
    """'created' is the birth time where stat gives one, else (Linux) st_ctime."""
    share.file("a.txt", mtime=OLD, atime=OLD)
    st = os.stat(share.path("a.txt"))
    birth = getattr(st, "st_birthtime", None)
    expected_ns = int(birth * 1e9) if birth is not None else st.st_ctime_ns
    assert scan("created").items["a.txt"].clock == datetime.fromtimestamp(
        expected_ns // 1000 / 1e6, UTC
    )


def test_path_date_is_midnight_in_the_timezone(share: Share, scan: ScanFn) -> None:
    """A date read from 'exports/2019-05-01/...' starts the clock at that midnight in the tz."""
    share.file("exports/2019-05-01/leerlingen.csv", mtime=NEWER)
    result = scan(
        PathDateClock(path_date="day"), path_regex=r"^exports/(?P<day>\d{4}-\d{2}-\d{2})/"
    )
    item = result.items["exports/2019-05-01/leerlingen.csv"]
    assert item.clock == datetime(2019, 5, 1, tzinfo=TZ)
    assert item.problem is None


def test_path_date_with_compact_format(share: Share, scan: ScanFn) -> None:
    """A '%Y%m%d' date in a file name is parsed with that format."""
    share.file("scans/20190501_klas3b.pdf")
    result = scan(PathDateClock(path_date="day", format="%Y%m%d"), path_regex=r"(?P<day>\d{8})_")
    item = result.items["scans/20190501_klas3b.pdf"]
    assert item.clock == datetime(2019, 5, 1, tzinfo=TZ)


def test_path_date_with_time_and_zone_keeps_them(share: Share, scan: ScanFn) -> None:
    """A format that reads a time and an offset gives that instant, shown in the tz."""
    share.file("logs/2019-05-01T2330+0000.log")
    result = scan(
        PathDateClock(path_date="at", format="%Y-%m-%dT%H%M%z"), path_regex=r"^logs/(?P<at>[^.]+)"
    )
    clock = result.items["logs/2019-05-01T2330+0000.log"].clock
    assert clock == datetime(2019, 5, 1, 23, 30, tzinfo=UTC)
    assert clock is not None and clock.tzinfo is TZ


def test_unparsable_path_date_is_a_problem(share: Share, scan: ScanFn) -> None:
    """A path date that does not parse leaves the clock empty, naming the file and value."""
    share.file("exports/2019-13-45/x.csv")
    result = scan(PathDateClock(path_date="day"), path_regex=r"^exports/(?P<day>[^/]+)/")
    item = result.items["exports/2019-13-45/x.csv"]
    assert item.clock is None
    assert item.problem is not None
    assert "exports/2019-13-45/x.csv" in item.problem and "'2019-13-45'" in item.problem


def test_path_without_a_date_is_a_problem(share: Share, scan: ScanFn) -> None:
    """A file whose path path_regex does not match has no clock and a problem naming it."""
    share.file("exports/misc/readme.txt")
    result = scan(
        PathDateClock(path_date="day"), path_regex=r"^exports/(?P<day>\d{4}-\d{2}-\d{2})/"
    )
    item = result.items["exports/misc/readme.txt"]
    assert item.clock is None
    assert item.problem is not None and "exports/misc/readme.txt" in item.problem


def test_event_clock_leaves_the_clock_to_the_lifecycle(share: Share, scan: ScanFn) -> None:
    """With an event clock an item has its subject, no clock and no problem."""
    share.file("homes/123456/cv.docx", mtime=OLD)
    result = scan(EventClock(event="student_left"), path_regex=r"^homes/(?P<subject>\d{6})/")
    item = result.items["homes/123456/cv.docx"]
    assert (item.subject, item.clock, item.problem) == ("123456", None, None)


def test_event_clock_without_subject_is_a_problem(share: Share, scan: ScanFn) -> None:
    """With an event clock, a file without a subject in its path is yielded with a problem."""
    share.file("homes/shared/rooster.xlsx")
    result = scan(EventClock(event="student_left"), path_regex=r"^homes/(?P<subject>\d{6})/")
    item = result.items["homes/shared/rooster.xlsx"]
    assert item.subject is None and item.clock is None
    assert item.problem is not None and "homes/shared/rooster.xlsx" in item.problem


def test_cutoff_yields_due_files_and_counts_the_rest(share: Share, scan: ScanFn) -> None:
    """With a cutoff, files at or before it are items; later ones are one summary."""
    cutoff = datetime(2020, 1, 1, tzinfo=TZ)
    share.file("old/a", size=1, mtime=datetime(2016, 1, 1, tzinfo=UTC))
    share.file("old/b", size=2, mtime=datetime(2019, 1, 1, tzinfo=UTC))
    share.file("edge", size=3, mtime=cutoff)
    share.file("new/c", size=10, mtime=datetime(2023, 5, 5, tzinfo=UTC))
    share.file("new/deeper/d", size=20, mtime=datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC))
    result = scan(cutoff=cutoff)
    assert result.keys == {"old/a", "old/b", "edge"}
    assert sum(s.count for s in result.summaries) == 2
    assert sum(s.size for s in result.summaries) == 30
    earliest = min(s.earliest_clock for s in result.summaries if s.earliest_clock)
    assert earliest == datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert earliest.tzinfo is TZ


def test_cutoff_with_nothing_late_counts_zero(share: Share, scan: ScanFn) -> None:
    """When every file is due, the summary counts none and has no earliest clock."""
    share.file("a", mtime=OLD)
    result = scan(cutoff=datetime(2020, 1, 1, tzinfo=TZ))
    assert result.keys == {"a"}
    assert [(s.count, s.earliest_clock) for s in result.summaries] == [(0, None)]


def test_without_cutoff_every_file_is_yielded(share: Share, scan: ScanFn) -> None:
    """Without a cutoff every file is an item and no summary is yielded."""
    share.file("a", mtime=OLD)
    share.file("b", mtime=datetime.now(UTC) + timedelta(days=365))
    result = scan()
    assert result.keys == {"a", "b"}
    assert result.summaries == []


def test_cutoff_applies_to_path_dates(share: Share, scan: ScanFn) -> None:
    """With a path-date clock, files dated after the cutoff are counted; problems are items."""
    share.file("exports/2018-01-01/a.csv", mtime=NEWER)
    share.file("exports/2030-01-01/b.csv", mtime=OLD)
    share.file("exports/undated/c.csv")
    result = scan(
        PathDateClock(path_date="day"),
        path_regex=r"^exports/(?P<day>\d{4}-\d{2}-\d{2})/",
        cutoff=datetime(2020, 1, 1, tzinfo=TZ),
    )
    assert result.keys == {"exports/2018-01-01/a.csv", "exports/undated/c.csv"}
    assert result.not_due == 1
    assert result.summaries[-1].earliest_clock == datetime(2030, 1, 1, tzinfo=TZ)


def test_cutoff_is_ignored_for_event_clocks(share: Share, scan: ScanFn) -> None:
    """An event clock's start is unknown to the scan, so every file is yielded."""
    share.file("homes/123456/a", mtime=datetime.now(UTC))
    result = scan(
        EventClock(event="student_left"),
        path_regex=r"^homes/(?P<subject>\d{6})/",
        cutoff=datetime(2000, 1, 1, tzinfo=TZ),
    )
    assert result.keys == {"homes/123456/a"}
    assert result.summaries == []


def test_subject_from_named_group(share: Share, scan: ScanFn) -> None:
    """The subject is the path_regex group named by subject_group."""
    share.file("homes/123456/cv.docx")
    share.file("homes/shared/rooster.xlsx")
    result = scan(path_regex=r"^homes/(?P<student>\d{6})/", subject_group="student")
    assert result.items["homes/123456/cv.docx"].subject == "123456"
    assert result.items["homes/shared/rooster.xlsx"].subject is None


def test_fingerprint_changes_with_the_file(share: Share, scan: ScanFn) -> None:
    """A file's fingerprint is stable between scans and changes when its content changes."""
    share.file("a.txt", size=3, mtime=OLD)
    first = scan().items["a.txt"].fingerprint
    assert scan().items["a.txt"].fingerprint == first
    share.file("a.txt", size=4, mtime=OLD)
    assert scan().items["a.txt"].fingerprint != first


def test_item_size_is_the_file_size(share: Share, scan: ScanFn) -> None:
    """An item's size is the file's size in bytes."""
    share.file("a.bin", size=1234)
    assert scan().items["a.bin"].size == 1234


def test_hard_links_are_named_in_details(share: Share, scan: ScanFn) -> None:
    """A file with several hard links says so: deleting one name does not free its data."""
    share.file("a/one.txt", size=3)
    share.file("plain.txt")
    os.link(share.path("a/one.txt"), share.path("two.txt"))
    items = scan().items
    assert items["a/one.txt"].details == {"hard_links": 2}
    assert items["two.txt"].details == {"hard_links": 2}
    assert items["plain.txt"].details is None
