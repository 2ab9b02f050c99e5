"""Discovery on real file trees: folders to a depth, samples of their files, what locations
cover, and folders that cannot be read."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from fileshare_tree import Share, as_unprivileged, connector

from connectors.base import (
    FULL,
    NONE,
    PARTIAL,
    DiscoveredStore,
    DiscoverRequest,
    Sample,
    SampleRequest,
    ScanFinding,
)
from sweeper.ropa.model import FileLocation

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=3 * 365)


def _discover(
    root: Path, workers: int = 0, **kw: Any
) -> tuple[dict[str, DiscoveredStore], list[ScanFinding]]:
    with connector(root, workers) as share:
        out = list(share.discover(DiscoverRequest(now=NOW, **kw)))
    stores = {o.where: o for o in out if isinstance(o, DiscoveredStore)}
    return stores, [o for o in out if isinstance(o, ScanFinding)]


@pytest.mark.parametrize("workers", [0, 2])
def test_folders_to_the_depth_are_stores_with_counts_bytes_and_age(
    share: Share, workers: int
) -> None:
    """Folders down to the depth holding files are stores; deeper files count in their
    ancestor at the depth; a folder above the depth counts its own files only."""
    share.file("readme.txt", size=5)
    share.file("exports/all.csv", size=10, mtime=OLD)
    share.file("exports/2019/a.csv", size=100, mtime=OLD)
    share.file("exports/2019/deep/b.csv", size=1000, mtime=NOW - timedelta(days=2))
    share.file("courses/math/week1.pdf", size=7)
    share.dir("empty/inner")
    stores, findings = _discover(share.root, workers, depth=2)
    assert findings == []
    assert set(stores) == {".", "exports", "exports/2019", "courses/math"}
    deep = stores["exports/2019"]
    assert (deep.items, deep.size, deep.stale) == (2, 1100, 1)
    assert deep.oldest is not None and abs(deep.oldest - OLD) < timedelta(seconds=1)
    assert deep.newest is not None and deep.newest > NOW - timedelta(days=3)
    assert (deep.details or {})["extent"] == "subtree"
    assert (stores["exports"].items, (stores["exports"].details or {})["extent"]) == (1, "files")
    assert stores["."].items == 1


def test_depth_zero_is_the_whole_share_as_one_store(share: Share) -> None:
    """With depth 0 the root is one store counting every file below it."""
    share.file("a/b/c.txt", size=3)
    share.file("d.txt", size=4)
    stores, _ = _discover(share.root, depth=0)
    assert list(stores) == ["."]
    assert (stores["."].items, stores["."].size) == (2, 7)


def test_excluded_and_skipped_folders_are_not_entered(share: Share) -> None:
    """exclude patterns and places other systems discover leave folders out of the walk."""
    share.file("keep/a.txt")
    share.file("tmp/b.txt")
    share.file("other system/c.txt")
    with connector(share.root) as c:
        skip = (*c.scope(DiscoverRequest(now=NOW)), "other system")
        stores = {
            o.where
            for o in c.discover(DiscoverRequest(now=NOW, exclude=("tmp/**",), skip=(skip,)))
            if isinstance(o, DiscoveredStore)
        }
    assert stores == {"keep"}


@pytest.mark.parametrize("workers", [0, 2])
def test_a_long_walk_reports_the_files_it_lists_as_it_goes(share: Share, workers: int) -> None:
    """listed hears of every file, a thousand at a time while the walk goes on, so that a
    daemon's watchdog sees progress before any store is done."""
    for i in range(2500):
        share.file(f"exports/{i:04d}.txt", size=1)
    heard: list[tuple[int, int]] = []  # (files, stores yielded so far)
    yielded = 0

    def listed(count: int) -> None:
        heard.append((count, yielded))

    with connector(share.root, workers) as c:
        for out in c.discover(DiscoverRequest(now=NOW, listed=listed)):
            yielded += isinstance(out, DiscoveredStore)
    assert sum(count for count, _ in heard) == 2500
    assert [count for count, before in heard if before == 0][:2] == [1000, 1000]


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_raised_by_listed_ends_the_walk(share: Share, workers: int) -> None:
    """A stop raised from listed (as the daemon's job does on SIGTERM) ends discovery in the
    middle of the walk: it reaches the caller and no store is given."""
    for i in range(1500):
        share.file(f"a/{i:04d}.txt", size=1)

    class Stop(Exception):
        pass

    def listed(count: int) -> None:
        raise Stop

    given: list[object] = []
    with connector(share.root, workers) as c, pytest.raises(Stop):
        given.extend(c.discover(DiscoverRequest(now=NOW, listed=listed)))
    assert given == []


def test_base_narrows_discovery_to_a_folder(share: Share) -> None:
    """A base folder is discovered on its own; store names stay relative to the root."""
    share.file("afdelingen/admin/x.csv")
    share.file("afdelingen/y.txt")
    share.file("elders/z.txt")
    stores, _ = _discover(share.root, base="afdelingen", depth=1)
    assert set(stores) == {"afdelingen", "afdelingen/admin"}
    assert (stores["afdelingen"].details or {})["extent"] == "files"


def test_an_unreadable_folder_is_a_finding_and_the_rest_is_counted(
    world_readable_share: Share,
) -> None:
    """A folder that cannot be listed is an 'uninspectable' finding; discovery goes on."""
    share = world_readable_share
    share.file("open/a.txt")
    share.file("closed/secret.csv")
    os.chmod(share.path("closed"), 0)

    def discover_unprivileged() -> tuple[set[str], list[tuple[str, str]]]:
        stores, findings = _discover(share.root, depth=1)
        return set(stores), [(f.kind, f.where) for f in findings]

    stores, findings = as_unprivileged(discover_unprivileged)
    assert stores == {"open"}
    assert findings == [("uninspectable", "closed")]


def _pupils_xlsx(path: bytes) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["naam", "bsn"])
    for n in range(30):
        sheet.append([f"Leerling {n}", "123456782"])
    book.save(os.fsdecode(path))


def test_a_sample_reads_csv_xlsx_and_text_and_names_the_rest(share: Share) -> None:
    """CSV, XLSX and text files are read within the bounds; other files are named only."""
    share.file("exports/pupils.csv")
    Path(os.fsdecode(share.path("exports/pupils.csv"))).write_text(
        "naam;bsn\n" + "".join(f"Leerling {n};123456782\n" for n in range(100)), encoding="utf-8"
    )
    share.file("exports/list.xlsx")
    _pupils_xlsx(share.path("exports/list.xlsx"))
    Path(os.fsdecode(share.path("exports/notes.txt"))).write_text("BSN 123456782\n" * 100)
    share.file("exports/scan.pdf", size=50)
    stores, _ = _discover(share.root, depth=1)
    with connector(share.root) as c:
        c._discovery_samples.update(_samples_of(share.root))
        request = SampleRequest(store=stores["exports"], rows=5, bytes=1024)
        samples = [s for s in c.sample(request) if isinstance(s, Sample)]
    by_name = {(s.name, s.sheet): s for s in samples}
    csv_sample = by_name[("pupils.csv", None)]
    assert csv_sample.rows[0] == ["naam", "bsn"]
    assert len(csv_sample.rows) == 6  # the header and five rows
    assert all(len(row) == 2 for row in csv_sample.rows)
    xlsx = by_name[("list.xlsx", 1)]
    assert xlsx.rows[0] == ["naam", "bsn"] and len(xlsx.rows) == 6
    assert by_name[("notes.txt", None)].text == "BSN 123456782\n" * 73  # 1,024 bytes: whole lines
    assert by_name[("scan.pdf", None)].skipped == "judged by name and size only"
    assert by_name[("scan.pdf", None)].size == 50


def _samples_of(root: Path) -> dict[str, Any]:
    """Discover again in a fresh connector and return what it kept to sample."""
    with connector(root) as c:
        list(c.discover(DiscoverRequest(now=NOW, depth=1)))
        return dict(c._discovery_samples)


def test_sampling_leaves_access_times_alone(share: Share) -> None:
    """Reading a sample does not change the file's access time (O_NOATIME)."""
    share.file("data/a.csv", atime=OLD, mtime=OLD)
    before = os.stat(share.path("data/a.csv")).st_atime_ns
    with connector(share.root) as c:
        stores = [o for o in c.discover(DiscoverRequest(now=NOW)) if isinstance(o, DiscoveredStore)]
        samples = list(c.sample(SampleRequest(store=stores[0])))
    assert [s.skipped for s in samples if isinstance(s, Sample)] == [None]
    assert os.stat(share.path("data/a.csv")).st_atime_ns == before


def test_a_file_whose_access_time_would_change_is_not_read(world_readable_share: Share) -> None:
    """Where O_NOATIME is refused (another user's file), the file is named, not read."""
    share = world_readable_share
    share.file("data/a.csv", atime=OLD, mtime=OLD)
    os.chmod(share.path("data/a.csv"), 0o644)

    def sample_unprivileged() -> list[str | None]:
        with connector(share.root) as c:
            stores = [
                o for o in c.discover(DiscoverRequest(now=NOW)) if isinstance(o, DiscoveredStore)
            ]
            return [s.skipped for s in c.sample(SampleRequest(store=stores[0]))]  # type: ignore[union-attr]

    skipped = as_unprivileged(sample_unprivileged)
    assert len(skipped) == 1 and "access time" in (skipped[0] or "")


@pytest.mark.parametrize(
    ("include", "exclude", "where", "extent", "expected"),
    [
        (["**"], [], "exports/2019", "subtree", FULL),
        (["**"], [], ".", "files", FULL),
        (["exports/**"], [], "exports/2019", "subtree", FULL),
        (["exports/**"], [], "exports", "files", FULL),
        (["exports/**"], [], "homes/jan", "subtree", NONE),
        (["exports/*"], [], "exports", "files", FULL),
        (["exports/*"], [], "exports/2019", "subtree", NONE),
        (["exports/2019/**"], [], "exports", "files", NONE),
        (["**/*.pdf"], [], "courses/math", "subtree", PARTIAL),
        (["exports/**/x.csv"], [], "exports", "files", PARTIAL),
        (["**"], ["**/tmp"], "exports/2019", "subtree", PARTIAL),
        (["**"], ["exports/**"], "exports/2019", "subtree", NONE),
        (["homes/*/**"], [], "homes/jan", "subtree", FULL),
        (["homes/*/**"], [], "homes", "files", NONE),
    ],
)
def test_what_a_location_covers(
    share: Share, include: list[str], exclude: list[str], where: str, extent: str, expected: str
) -> None:
    """A location's patterns cover a folder fully, partly or not at all."""
    location = FileLocation(system="share", include=include, exclude=exclude)
    store = DiscoveredStore("folder", where, details={"extent": extent})
    with connector(share.root) as c:
        assert c.coverage(location, c.locate(store), store) == expected


def test_a_location_of_a_share_covers_folders_a_wider_share_discovered(share: Share) -> None:
    """A folder found by discovering a share root is covered by a location of a system whose
    root is a sub-folder of it: places are compared by real path."""
    share.file("leerlingen/klas3/list.csv")
    with connector(share.root) as server, connector(share.root / "leerlingen") as pupils:
        store = DiscoveredStore("folder", "leerlingen/klas3", details={"extent": "subtree"})
        place = server.locate(store)
        everything = FileLocation(system="pupils", include=["**"])
        assert pupils.coverage(everything, place, store) == FULL
        assert server.coverage(FileLocation(system="s", include=["x/**"]), place, store) == NONE
        file = DiscoveredStore("file", "leerlingen/klas3/list.csv")
        csv_only = FileLocation(system="pupils", include=["**/*.csv"])
        assert pupils.coverage(csv_only, server.locate(file), file) == FULL
