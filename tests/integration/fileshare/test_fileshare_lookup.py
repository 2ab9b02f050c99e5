"""Looking items up again before acting: the same item as a scan gives, or absent."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fileshare_tree import NAMES, TZ, Share, connector, run_scan

from connectors.base import ScannedItem
from connectors.fileshare import encode_key
from sweeper.errors import LocationInvalid
from sweeper.ropa.model import Clock, ColumnClock, EventClock, FileLocation, PathDateClock

OLD = datetime(2015, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)


def lookup(
    share: Share,
    keys: Sequence[str],
    clock: Clock = "modified",
    **settings: Any,
) -> dict[str, ScannedItem]:
    """Look the keys up with a read-only connector and a location made of ``settings``."""
    location = FileLocation(system="share", **settings)
    with connector(share.root) as share_connector:
        return share_connector.lookup(location, clock, TZ, keys)


def key_of(rel: bytes) -> str:
    return encode_key(rel)


@pytest.mark.parametrize(
    ("clock", "settings"),
    [
        ("modified", {}),
        ("accessed", {}),
        ("ctime", {}),
        (
            PathDateClock(path_date="day"),
            {"path_regex": r"^(?P<subject>\d+)/(?P<day>\d{4}-\d{2}-\d{2})"},
        ),
        (EventClock(event="left"), {"path_regex": r"^(?P<subject>\d+)/"}),
    ],
    ids=["modified", "accessed", "ctime", "path-date", "event"],
)
def test_lookup_gives_the_item_a_scan_gives(share: Share, clock: Clock, settings: Any) -> None:
    """An unchanged file is looked up as exactly the item the scan yielded."""
    share.file("123456/2019-05-01 cijfers.xlsx", size=10, mtime=OLD, atime=OLD)
    share.file("234567/2020-01-31/notes.txt", size=3, mtime=OLD)
    share.file("no-subject.txt", size=1)
    scanned = run_scan(share.root, 0, clock, **settings).items
    assert lookup(share, list(scanned), clock, **settings) == scanned


def test_event_clock_is_none_with_the_subject(share: Share) -> None:
    """With an event clock the item has no clock but the subject from path_regex."""
    share.file("123456/a.txt", mtime=OLD)
    [item] = lookup(
        share, ["123456/a.txt"], EventClock(event="left"), path_regex=r"^(?P<subject>\d+)/"
    ).values()
    assert (item.clock, item.subject) == (None, "123456")


def test_fingerprint_changes_after_a_write(share: Share) -> None:
    """Writing to the file (a new size and mtime) gives a new fingerprint."""
    share.file("a.txt", size=5, mtime=OLD)
    before = run_scan(share.root).items["a.txt"].fingerprint
    with open(share.path("a.txt"), "ab") as out:
        out.write(b"more")
    assert lookup(share, ["a.txt"])["a.txt"].fingerprint != before


def test_fingerprint_changes_with_the_mtime_alone(share: Share) -> None:
    """A new mtime at the same size gives a new fingerprint."""
    share.file("a.txt", size=5, mtime=OLD)
    before = run_scan(share.root).items["a.txt"].fingerprint
    os.utime(share.path("a.txt"), ns=(0, 10**18))
    assert lookup(share, ["a.txt"])["a.txt"].fingerprint != before


def test_replaced_file_gets_a_new_fingerprint(share: Share) -> None:
    """A file replaced by another of the same size and mtime differs by its inode."""
    share.file("a.txt", size=5, mtime=OLD)
    before = run_scan(share.root).items["a.txt"].fingerprint
    share.file("a.new", size=5, mtime=OLD)
    os.rename(share.path("a.new"), share.path("a.txt"))
    assert lookup(share, ["a.txt"])["a.txt"].fingerprint != before


def test_missing_files_are_absent(share: Share) -> None:
    """A deleted file, and one below a deleted folder, are absent; the others are found."""
    share.file("keep.txt")
    share.file("gone/a.txt")
    share.file("gone.txt")
    os.remove(share.path("gone/a.txt"))
    os.rmdir(share.path("gone"))
    os.remove(share.path("gone.txt"))
    assert set(lookup(share, ["keep.txt", "gone/a.txt", "gone.txt"])) == {"keep.txt"}


def test_entries_that_are_not_regular_files_are_absent(share: Share) -> None:
    """A folder, a link and a FIFO at a key are absent from the result."""
    share.file("target.txt")
    share.dir("a folder")
    share.link("link.txt", "target.txt")
    os.mkfifo(share.path("fifo"))
    assert lookup(share, ["a folder", "link.txt", "fifo"]) == {}


def test_folder_swapped_for_a_link_to_outside_is_unverifiable(share: Share, tmp_path: Path) -> None:
    """A key whose folder became a link to outside the root after planning is not followed:
    it comes back unverifiable, neither found nor taken for gone."""
    share.file("homes/jan/cv.docx")
    planned = set(run_scan(share.root).keys)
    outside = tmp_path / "outside" / "jan"
    outside.mkdir(parents=True)
    (outside / "cv.docx").write_bytes(b"not in the share")
    os.rename(share.path("homes/jan"), share.path("homes/jan.old"))
    os.symlink(outside, share.path("homes/jan"))
    assert planned == {"homes/jan/cv.docx"}
    found = lookup(share, ["homes/jan/cv.docx"])
    assert found["homes/jan/cv.docx"].refused == "unverifiable"
    assert found["homes/jan/cv.docx"].reason == (
        "homes/jan in the share is a symbolic link, not a folder; not followed"
    )


def test_link_to_a_folder_inside_the_root_is_not_followed(share: Share) -> None:
    """A folder on the path that is a link, even one within the root, is not followed."""
    share.file("real/a.txt")
    share.link("alias", "real")
    found = lookup(share, ["alias/a.txt", "real/a.txt"])
    assert found["real/a.txt"].refused is None
    assert found["alias/a.txt"].refused == "unverifiable"


@pytest.mark.parametrize("raw", list(NAMES.values()), ids=list(NAMES))
def test_any_name_is_looked_up(share: Share, raw: bytes) -> None:
    """Every file name a scan finds, '!b64:' keys included, is found again by its key."""
    share.file(raw, size=2)
    scanned = run_scan(share.root).items
    assert lookup(share, list(scanned)) == scanned


@pytest.mark.parametrize(
    "key",
    [
        "../share/a.txt",
        "x/../a.txt",
        "./a.txt",
        "/a.txt",
        "x//a.txt",
        "x/",
        "",
        "!b64:YS50eHQ=",  # 'a.txt' escaped, which encode_key never does
        "!b64:not base64!",
        key_of(b"x/\x00/a.txt"),
    ],
)
def test_keys_no_scan_makes_are_absent(share: Share, key: str) -> None:
    """A key that is not in the form a scan gives (dot segments, escaped text) is absent."""
    share.file("x/a.txt")
    share.file("a.txt")
    assert lookup(share, [key]) == {}


def test_files_the_patterns_no_longer_cover_are_absent(share: Share) -> None:
    """A key the location's include or exclude patterns do not cover is absent."""
    share.file("docs/a.pdf")
    share.file("docs/tmp/b.pdf")
    share.file("docs/c.txt")
    found = lookup(
        share,
        ["docs/a.pdf", "docs/tmp/b.pdf", "docs/c.txt"],
        include=["**/*.pdf"],
        exclude=["**/tmp"],
    )
    assert set(found) == {"docs/a.pdf"}


def test_many_folders_in_one_call(share: Share) -> None:
    """Keys in more folders than the connector keeps open are all found; no fd stays open."""
    keys = [f"d{i % 150}/sub/f{i}.txt" for i in range(600)]
    for key in keys:
        share.file(key)
    fds = len(os.listdir("/proc/self/fd"))
    assert set(lookup(share, keys)) == set(keys)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_hard_links_are_named_in_details(share: Share) -> None:
    """A file with two names says so in details, as in the scan."""
    share.file("a.txt")
    os.link(share.path("a.txt"), share.path("b.txt"))
    assert lookup(share, ["a.txt"])["a.txt"].details == {"hard_links": 2}


def test_a_column_clock_is_refused(share: Share) -> None:
    """A location that does not fit a file share raises LocationInvalid, as prepare does."""
    with pytest.raises(LocationInvalid):
        lookup(share, ["a.txt"], ColumnClock(column="left_on"))
