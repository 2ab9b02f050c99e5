"""check() and prepare(): an unreachable root and a location that cannot work are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from fileshare_tree import TZ, Share, connector

from connectors.base import ScannedItem, ScanRequest
from sweeper.errors import LocationInvalid, SystemUnreachable
from sweeper.ropa.model import (
    Clock,
    ColumnClock,
    EventClock,
    FileLocation,
    PathDateClock,
    SqlLocation,
)


def test_check_passes_for_a_readable_root(share: Share) -> None:
    """check() returns quietly for an existing, readable root."""
    connector(share.root).check()


def test_check_refuses_a_missing_root(tmp_path: Path) -> None:
    """check() raises SystemUnreachable naming the root when it does not exist."""
    missing = tmp_path / "not-mounted"
    with pytest.raises(SystemUnreachable, match="not-mounted"):
        connector(missing).check()


def test_check_refuses_a_file_as_root(tmp_path: Path) -> None:
    """check() raises SystemUnreachable when the root is a file, not a directory."""
    file = tmp_path / "share"
    file.write_text("")
    with pytest.raises(SystemUnreachable, match="not a readable directory"):
        connector(file).check()


def test_relative_root_resolves_against_the_ropa_folder(tmp_path: Path) -> None:
    """A relative root is taken from the RoPA file's folder, not the working directory."""
    (tmp_path / "data" / "share").mkdir(parents=True)
    (tmp_path / "data" / "share" / "a.txt").write_text("")
    share = connector("share", base_dir=tmp_path / "data")
    share.check()
    request = ScanRequest(location=FileLocation(system="share"), clock="modified", tz=TZ)
    assert [out.key for out in share.scan(request) if isinstance(out, ScannedItem)] == ["a.txt"]


def test_scan_of_missing_root_raises(tmp_path: Path) -> None:
    """Scanning a root that does not exist raises SystemUnreachable, not an empty scan."""
    request = ScanRequest(location=FileLocation(system="share"), clock="modified", tz=TZ)
    with pytest.raises(SystemUnreachable):
        list(connector(tmp_path / "gone").scan(request))


@pytest.mark.parametrize(
    ("location", "clock", "message"),
    [
        (FileLocation(system="share"), ColumnClock(column="created_at"), "column clock"),
        (
            FileLocation(system="share", path_regex=r"^exports/(?P<date>[^/]+)/"),
            PathDateClock(path_date="day"),
            "no such named group",
        ),
        (FileLocation(system="share"), PathDateClock(path_date="day"), "no such named group"),
        (
            FileLocation(system="share", path_regex=r"^(?P<day>\d+)/"),
            PathDateClock(path_date="day", format="%Q"),
            "cannot read a date",
        ),
        (
            FileLocation(system="share", path_regex=r"^(?P<day>\d+)/"),
            PathDateClock(path_date="day", format="2019"),
            "no % directive",
        ),
        (
            FileLocation(system="share", path_regex=r"^homes/(?P<student>\d+)/"),
            EventClock(event="student_left"),
            "'subject'",
        ),
        (
            SqlLocation(system="share", table="students", key="id"),
            "modified",
            "not by a table",
        ),
    ],
    ids=[
        "column-clock",
        "path-date-group-missing",
        "path-date-without-regex",
        "bad-format-directive",
        "format-without-directive",
        "event-without-subject-group",
        "sql-location",
    ],
)
def test_prepare_refuses_what_cannot_work(
    share: Share, location: FileLocation | SqlLocation, clock: Clock, message: str
) -> None:
    """prepare() raises LocationInvalid, saying why, for a location that cannot be scanned."""
    with pytest.raises(LocationInvalid, match=message):
        connector(share.root).prepare(location, clock)


def test_scan_refuses_what_prepare_refuses(share: Share) -> None:
    """scan() checks the location too, at once, before walking anything."""
    request = ScanRequest(
        location=FileLocation(system="share"), clock=ColumnClock(column="x"), tz=TZ
    )
    with pytest.raises(LocationInvalid):
        connector(share.root).scan(request)


@pytest.mark.parametrize(
    ("location", "clock"),
    [
        (FileLocation(system="share"), "modified"),
        (FileLocation(system="share"), "created"),
        (
            FileLocation(system="share", path_regex=r"(?P<day>\d{8})"),
            PathDateClock(path_date="day", format="%Y%m%d"),
        ),
        (
            FileLocation(system="share", path_regex=r"^homes/(?P<subject>\d+)/"),
            EventClock(event="student_left"),
        ),
    ],
    ids=["modified", "created", "path-date", "event"],
)
def test_prepare_accepts_a_workable_location(
    share: Share, location: FileLocation, clock: Clock
) -> None:
    """prepare() returns quietly for a location whose clock and groups fit."""
    connector(share.root).prepare(location, clock)
