"""How the walk treats symbolic links, unreadable directories and the tree it scans."""

from __future__ import annotations

import os
import random
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fileshare_tree import TZ, Scan, ScanFn, Share, as_unprivileged, connector, run_scan

from connectors.base import ScanRequest
from sweeper.ropa.model import FileLocation


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the share, holding a file that must never be scanned."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("not in the share")
    return folder


def test_link_to_file_outside_is_reported_not_scanned(
    share: Share, scan: ScanFn, outside: Path
) -> None:
    """A link to a file outside the root is a symlink_outside finding and not an item."""
    share.file("docs/real.txt")
    share.link("docs/passwords.txt", str(outside / "secret.txt"))
    result = scan()
    assert result.keys == {"docs/real.txt"}
    assert [(f.kind, f.where) for f in result.findings] == [
        ("symlink_outside", "docs/passwords.txt")
    ]


def test_link_to_folder_outside_is_reported_not_followed(
    share: Share, scan: ScanFn, outside: Path
) -> None:
    """A link to a folder outside the root is reported and nothing below it is scanned."""
    share.file("a.txt")
    share.link("mnt", str(outside))
    share.link("up/escape", "../..")  # relative, climbing out of the root
    result = scan()
    assert result.keys == {"a.txt"}
    assert sorted((f.kind, f.where) for f in result.findings) == [
        ("symlink_outside", "mnt"),
        ("symlink_outside", "up/escape"),
    ]


def test_dangling_link_outside_is_reported(share: Share, scan: ScanFn) -> None:
    """A link to a path outside the root that does not exist is still reported."""
    share.link("gone", "/nonexistent/folder/file")
    assert [(f.kind, f.where) for f in scan().findings] == [("symlink_outside", "gone")]


def test_link_to_folder_inside_is_not_followed(share: Share, scan: ScanFn) -> None:
    """A link to a folder inside the root is passed over: no duplicate items, no finding."""
    share.file("real/a.txt")
    share.file("real/sub/b.txt")
    share.link("alias", "real")
    share.link("real/sub/top", "../..")
    result = scan()
    assert result.keys == {"real/a.txt", "real/sub/b.txt"}
    assert result.findings == []


@pytest.mark.timeout(30)
def test_link_loops_do_not_hang(share: Share, scan: ScanFn) -> None:
    """Links pointing at each other or themselves end neither the walk nor the check."""
    share.file("a.txt")
    share.link("loop1", "loop2")
    share.link("loop2", "loop1")
    share.link("self", "self")
    share.link("d/back", "..")
    result = scan()
    assert result.keys == {"a.txt"}
    assert result.findings == []


def test_unreadable_folder_is_reported_and_the_walk_goes_on(world_readable_share: Share) -> None:
    """A folder that cannot be listed is an 'unreadable' finding; its siblings are scanned."""
    share = world_readable_share
    share.file("classes/3b/list.csv")
    share.file("classes/3c/list.csv")
    share.file("classes/blocked/secret.csv")
    share.file("z.txt")
    os.chmod(share.path("classes/blocked"), 0)

    def scan_unprivileged() -> list[Scan]:
        try:
            os.listdir(share.path("classes/blocked"))
        except PermissionError:
            pass
        else:
            raise AssertionError("could not make a folder unreadable: permissions do not apply")
        return [run_scan(share.root, workers) for workers in (0, 1, 2)]

    for result in as_unprivileged(scan_unprivileged):
        assert result.keys == {"classes/3b/list.csv", "classes/3c/list.csv", "z.txt"}
        assert [(f.kind, f.where) for f in result.findings] == [("unreadable", "classes/blocked")]
        assert "Permission denied" in result.findings[0].message


def test_listable_but_unsearchable_folder_is_reported(world_readable_share: Share) -> None:
    """A folder whose names can be read but whose entries cannot be examined is reported."""
    share = world_readable_share
    share.file("ok/a.txt")
    share.file("listonly/b.txt")
    share.file("listonly/inner/c.txt")
    os.chmod(share.path("listonly"), 0o444)

    def scan_unprivileged() -> list[Scan]:
        try:
            os.stat(share.path("listonly/b.txt"))
        except PermissionError:
            pass
        else:
            raise AssertionError("could not make a folder unsearchable: permissions do not apply")
        return [run_scan(share.root, workers) for workers in (0, 2)]

    for result in as_unprivileged(scan_unprivileged):
        assert result.keys == {"ok/a.txt"}
        assert {(f.kind, f.where) for f in result.findings} == {
            ("unreadable", "listonly"),
            ("unreadable", "listonly/inner"),
        }


def entries(root: Path) -> list[bytes]:
    """Return every path under root, and root, as bytes (listing updates folders' atimes)."""
    found = [os.fsencode(root)]
    for folder, dirs, files in os.walk(os.fsencode(root)):
        found.extend(os.path.join(folder, name) for name in [*dirs, *files])
    return sorted(found)


def times(paths: list[bytes]) -> list[tuple[bytes, int, int, int, int, int]]:
    """Return each path's lstat mode, size, mtime, atime and ctime, without listing anything."""
    stats = [(path, os.lstat(path)) for path in paths]
    return [
        (path, st.st_mode, st.st_size, st.st_mtime_ns, st.st_atime_ns, st.st_ctime_ns)
        for path, st in stats
    ]


def test_scan_changes_nothing_in_the_tree(share: Share, scan: ScanFn, outside: Path) -> None:
    """Paths, modes, sizes and mtime, atime and ctime of every entry are the same afterwards."""
    past = datetime(2020, 1, 1, tzinfo=UTC)
    share.file("a/b/c.txt", size=5, mtime=past + timedelta(days=1), atime=past)
    share.file(b"a/bad\xff", size=1, mtime=past + timedelta(days=1), atime=past)
    share.link("a/out", str(outside))
    paths = entries(share.root)
    # Folder atimes older than their mtimes: a plain listing would update them (relatime),
    # so only a scan that opens folders with O_NOATIME leaves them alone.
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            os.utime(path, (past.timestamp(), (past + timedelta(days=2)).timestamp()))
    before = times(paths)
    scan()
    scan(include=["**/*.txt"], exclude=["x/**"], cutoff=datetime.now(TZ))
    assert times(paths) == before
    assert entries(share.root) == paths


def test_abandoned_scan_leaves_no_worker_behind(share: Share) -> None:
    """Closing a scan early stops and reaps its worker processes."""
    for index in range(50):
        share.file(f"d{index}/f.txt")
    request = ScanRequest(location=FileLocation(system="share"), clock="modified", tz=TZ)
    with connector(share.root, workers=2) as share_connector:
        outputs = share_connector.scan(request)
        assert isinstance(outputs, Generator)
        next(outputs)
        outputs.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_closing_the_connector_stops_its_scans(share: Share) -> None:
    """A scan left half-read is stopped, and its workers reaped, when the connector closes."""
    for index in range(50):
        share.file(f"d{index}/f.txt")
    request = ScanRequest(location=FileLocation(system="share"), clock="modified", tz=TZ)
    with connector(share.root, workers=2) as share_connector:
        outputs = share_connector.scan(request)
        next(outputs)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
    with pytest.raises(StopIteration):
        next(outputs)


def test_workers_yield_what_the_single_walk_yields_in_its_order(
    share: Share, outside: Path
) -> None:
    """Split over workers, a scan yields the same outputs in the same order as in-process."""
    rng = random.Random(7)
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for index in range(400):
        folder = "/".join(f"d{rng.randrange(6)}" for _ in range(rng.randrange(1, 4)))
        share.file(f"{folder}/f{index}", size=index, mtime=start + timedelta(days=index * 9))
    share.link("d1/out", str(outside))
    share.link("d2/d3/out", "/")
    cutoff = datetime(2019, 1, 1, tzinfo=TZ)
    results = [run_scan(share.root, workers, cutoff=cutoff).outputs for workers in (0, 1, 2, 3)]
    single = results[0]
    assert 50 < len(single) < 400
    for result in results[1:]:
        assert result == single
