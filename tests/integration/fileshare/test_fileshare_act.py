"""Acting on files: delete, quarantine, restore and purge, checked on the real file system."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fileshare_tree import (
    NAMES,
    TZ,
    Share,
    as_unprivileged,
    connector,
    ns,
    run_scan,
)

from connectors import fileshare
from connectors.base import ActRequest, Outcome
from connectors.fileshare import encode_key
from sweeper.errors import ActionUnsupported, LocationInvalid, SystemUnreachable
from sweeper.ropa.model import FileLocation

OLD = datetime(2015, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def quarantine(tmp_path: Path) -> Path:
    root = tmp_path / "quarantine"
    root.mkdir()
    return root


@pytest.fixture
def other_fs_quarantine(tmp_path: Path) -> Iterator[Path]:
    """A quarantine root on another file system than the share (tmpfs in /dev/shm)."""
    if not os.path.isdir("/dev/shm"):
        pytest.fail("no /dev/shm: the cross-file-system quarantine test needs a tmpfs there")
    base = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="quarantine-"))
    if os.stat(base).st_dev == os.stat(tmp_path).st_dev:
        shutil.rmtree(base)
        pytest.fail(
            "/dev/shm is on the same file system as the temporary folder: this test "
            "needs a quarantine root on another file system"
        )
    yield base
    shutil.rmtree(base)


def act(
    share: Share,
    action: str,
    keys: Sequence[str],
    quarantine: Path | None = None,
    **settings: Any,
) -> dict[str, Outcome]:
    """Act on the keys with a writing connector; return the outcomes by key."""
    location = FileLocation(system="share", **settings)
    options = {} if quarantine is None else {"quarantine_root": quarantine}
    with connector(share.root, read_only=False) as share_connector:
        outcomes = list(share_connector.act(ActRequest(location, action, keys, options)))
    assert [o.key for o in outcomes] == list(dict.fromkeys(keys))
    return {o.key: o for o in outcomes}


def statuses(outcomes: dict[str, Outcome]) -> dict[str, str]:
    return {key: outcome.status for key, outcome in outcomes.items()}


def files(root: Path) -> set[bytes]:
    """Return the relative paths of every non-folder entry below root, as bytes."""
    found = set()
    base = os.fsencode(root)
    for folder, _, names in os.walk(base):
        for name in names:
            found.add(os.path.relpath(os.path.join(folder, name), base))
    return found


def folders(root: Path) -> set[bytes]:
    base = os.fsencode(root)
    return {
        os.path.relpath(os.path.join(folder, name), base)
        for folder, names, _ in os.walk(base)
        for name in names
    }


# -- refusals before any change -----------------------------------------------------------


def test_read_only_connector_refuses(share: Share) -> None:
    """A read-only (dry-run) connector raises ActionUnsupported and the file stays."""
    share.file("a.txt")
    location = FileLocation(system="share")
    with (
        connector(share.root) as share_connector,
        pytest.raises(ActionUnsupported, match="read-only"),
    ):
        share_connector.act(ActRequest(location, "delete", ["a.txt"]))
    assert files(share.root) == {b"a.txt"}


@pytest.mark.parametrize("action", ["anonymise", "disable", "review"])
def test_other_actions_are_unsupported(share: Share, action: str) -> None:
    """Files cannot be anonymised or disabled: ActionUnsupported, nothing changed."""
    share.file("a.txt")
    with pytest.raises(ActionUnsupported, match="cannot"):
        act(share, action, ["a.txt"])
    assert files(share.root) == {b"a.txt"}


def test_quarantine_root_inside_the_share_is_refused(share: Share) -> None:
    """A quarantine root below the share root raises LocationInvalid; nothing moves."""
    share.file("a.txt")
    inside = Path(os.fsdecode(share.dir(".quarantine")))
    with pytest.raises(LocationInvalid, match="inside the share root"):
        act(share, "quarantine", ["a.txt"], inside)
    assert files(share.root) == {b"a.txt"}


def test_quarantine_root_reached_by_a_link_into_the_share_is_refused(
    share: Share, tmp_path: Path
) -> None:
    """A quarantine root that is a link into the share is inside it all the same."""
    share.file("a.txt")
    share.dir("q")
    os.symlink(share.path("q"), tmp_path / "q-link")
    with pytest.raises(LocationInvalid):
        act(share, "quarantine", ["a.txt"], tmp_path / "q-link")


@pytest.mark.parametrize("action", ["quarantine", "restore", "purge"])
def test_quarantine_root_holding_the_share_is_refused(
    share: Share, tmp_path: Path, action: str
) -> None:
    """A quarantine root above the share root (or the root itself) is refused for every
    quarantine action: a purge there would delete the share's own files.
    """
    share.file("a.txt")
    for root in (tmp_path, share.root):
        with pytest.raises(LocationInvalid):
            act(share, action, ["a.txt"], root)
    assert files(share.root) == {b"a.txt"}


def test_quarantine_without_a_quarantine_root_is_unsupported(share: Share) -> None:
    """Without a quarantine root the quarantine actions raise ActionUnsupported."""
    share.file("a.txt")
    with pytest.raises(ActionUnsupported, match="quarantine_root"):
        act(share, "quarantine", ["a.txt"])


def test_missing_quarantine_root_is_unreachable(share: Share, tmp_path: Path) -> None:
    """A quarantine root that does not exist (an unmounted disk) is not created: the act
    raises SystemUnreachable and the file stays.
    """
    share.file("a.txt")
    with pytest.raises(SystemUnreachable, match="must exist"):
        act(share, "quarantine", ["a.txt"], tmp_path / "not-mounted")
    assert files(share.root) == {b"a.txt"}
    assert not (tmp_path / "not-mounted").exists()


# -- delete -------------------------------------------------------------------------------


def test_delete_removes_exactly_the_listed_files(share: Share) -> None:
    """Only the listed files are removed; their neighbours and other folders stay."""
    for rel in ("a/1.txt", "a/2.txt", "a/3.txt", "b/1.txt", "top.txt"):
        share.file(rel)
    outcomes = act(share, "delete", ["a/1.txt", "a/3.txt", "top.txt"])
    assert set(statuses(outcomes).values()) == {"done"}
    assert files(share.root) == {b"a/2.txt", b"b/1.txt"}


def test_delete_of_a_missing_file_is_gone(share: Share) -> None:
    """A file that no longer exists, or a folder that does not, is 'gone'; twice is harmless."""
    share.file("a.txt")
    assert statuses(act(share, "delete", ["a.txt", "x/b.txt"])) == {
        "a.txt": "done",
        "x/b.txt": "gone",
    }
    assert statuses(act(share, "delete", ["a.txt"])) == {"a.txt": "gone"}


def test_duplicate_keys_get_one_outcome(share: Share) -> None:
    """A key listed twice is acted on once, with one outcome."""
    share.file("a.txt")
    assert statuses(act(share, "delete", ["a.txt", "a.txt"])) == {"a.txt": "done"}


def test_delete_through_a_swapped_link_does_not_leave_the_share(
    share: Share, tmp_path: Path
) -> None:
    """A folder replaced by a link to outside after planning: the file outside survives,
    the outcome is 'failed', and lookup answers that the key cannot be checked.
    """
    share.file("homes/jan/cv.docx")
    planned = list(run_scan(share.root).keys)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "cv.docx").write_bytes(b"someone else's")
    shutil.rmtree(share.path("homes/jan"))
    os.symlink(outside, share.path("homes/jan"))
    outcome = act(share, "delete", planned)["homes/jan/cv.docx"]
    assert outcome.status == "failed"
    assert outcome.message is not None and "symbolic link" in outcome.message
    assert (outside / "cv.docx").read_bytes() == b"someone else's"
    with connector(share.root) as reader:
        found = reader.lookup(FileLocation(system="share"), "modified", TZ, planned)
    assert [(k, i.refused) for k, i in found.items()] == [("homes/jan/cv.docx", "unverifiable")]


def test_delete_through_a_swapped_root_link(share: Share, tmp_path: Path) -> None:
    """A top-level folder swapped for a link to '/' is not followed either."""
    share.file("etc/passwd-copy")
    shutil.rmtree(share.path("etc"))
    os.symlink("/etc", share.path("etc"))
    assert act(share, "delete", ["etc/passwd"])["etc/passwd"].status == "failed"
    assert os.path.exists("/etc/passwd")


def test_delete_never_removes_a_folder_or_a_link_target(share: Share) -> None:
    """A folder or a link at a key is left alone ('failed'); a link's target stays."""
    share.dir("was-a-file")
    share.file("target.txt")
    share.link("link.txt", "target.txt")
    outcomes = act(share, "delete", ["was-a-file", "link.txt"])
    assert statuses(outcomes) == {"was-a-file": "failed", "link.txt": "failed"}
    assert os.path.isdir(share.path("was-a-file"))
    assert os.path.islink(share.path("link.txt"))
    assert files(share.root) == {b"target.txt", b"link.txt"}


def test_delete_removes_folders_it_emptied(share: Share) -> None:
    """Folders left empty by the deletes go, up to but not including the root; a folder
    that still holds something, and an empty folder not on a deleted path, stay.
    """
    share.file("homes/jan/2019/cv.docx")
    share.file("homes/jan/2019/photo.jpg")
    share.file("homes/piet/keep.txt")
    share.file("homes/piet/old/a.txt")
    share.dir("empty-already")
    act(
        share,
        "delete",
        ["homes/jan/2019/cv.docx", "homes/jan/2019/photo.jpg", "homes/piet/old/a.txt"],
    )
    assert folders(share.root) == {b"homes", b"homes/piet", b"empty-already"}
    assert share.root.is_dir()


def test_delete_of_the_last_file_keeps_the_root(share: Share) -> None:
    """Deleting every file leaves the share root itself in place."""
    share.file("a/b.txt")
    act(share, "delete", ["a/b.txt"])
    assert share.root.is_dir() and not os.listdir(share.root)


def test_delete_names_other_hard_links(share: Share) -> None:
    """Deleting one name of a file with two says in the outcome that its data stays."""
    share.file("a.txt")
    os.link(share.path("a.txt"), share.path("b.txt"))
    outcome = act(share, "delete", ["a.txt"])["a.txt"]
    assert outcome.status == "done" and outcome.details == {"hard_links": 2}
    assert files(share.root) == {b"b.txt"}


def test_delete_refuses_files_the_patterns_do_not_cover(share: Share) -> None:
    """A key outside the location's include or inside its exclude is 'failed' and stays."""
    share.file("docs/a.pdf")
    share.file("docs/b.txt")
    share.file("docs/tmp/c.pdf")
    outcomes = act(
        share,
        "delete",
        ["docs/a.pdf", "docs/b.txt", "docs/tmp/c.pdf"],
        include=["**/*.pdf"],
        exclude=["**/tmp"],
    )
    assert statuses(outcomes) == {
        "docs/a.pdf": "done",
        "docs/b.txt": "failed",
        "docs/tmp/c.pdf": "failed",
    }
    assert files(share.root) == {b"docs/b.txt", b"docs/tmp/c.pdf"}


@pytest.mark.parametrize("key", ["../outside.txt", "a/../../outside.txt", "/outside.txt", "a//b"])
def test_keys_no_scan_makes_are_refused(share: Share, tmp_path: Path, key: str) -> None:
    """A key with '..', an absolute path or an empty segment is 'failed'; nothing goes."""
    (tmp_path / "outside.txt").write_bytes(b"x")
    share.file("a/b")
    assert act(share, "delete", [key])[key].status == "failed"
    assert (tmp_path / "outside.txt").exists()
    assert files(share.root) == {b"a/b"}


def test_permission_error_fails_one_item_and_the_rest_go_on(world_readable_share: Share) -> None:
    """A file in a folder the sweeper may not write is 'failed'; the next is deleted."""
    share = world_readable_share
    share.file("locked/a.txt")
    share.file("open/b.txt")
    os.chmod(share.path("open"), 0o777)
    os.chmod(share.path("locked"), 0o555)

    def run() -> dict[str, tuple[str, str | None]]:
        return {
            k: (o.status, o.message)
            for k, o in act(share, "delete", ["locked/a.txt", "open/b.txt"]).items()
        }

    outcomes = as_unprivileged(run)
    assert outcomes["locked/a.txt"][0] == "failed"
    assert "Permission denied" in (outcomes["locked/a.txt"][1] or "")
    assert outcomes["open/b.txt"] == ("done", None)
    assert files(share.root) == {b"locked/a.txt"}


# -- quarantine ---------------------------------------------------------------------------


def test_quarantine_keeps_path_content_and_times(share: Share, quarantine: Path) -> None:
    """The file moves to quarantine/<relative path> with its bytes, mtime and mode."""
    share.file("homes/jan/cv.docx", size=100, mtime=OLD)
    os.chmod(share.path("homes/jan/cv.docx"), 0o640)
    outcome = act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)["homes/jan/cv.docx"]
    assert outcome.status == "done"
    assert outcome.details is not None and outcome.details["quarantined_to"] == "homes/jan/cv.docx"
    moved = quarantine / "homes/jan/cv.docx"
    assert moved.read_bytes() == b"x" * 100
    assert moved.stat().st_mtime_ns == ns(OLD)
    assert stat.S_IMODE(moved.stat().st_mode) == 0o640
    assert files(share.root) == set()


def test_quarantine_makes_private_folders(share: Share, quarantine: Path) -> None:
    """Folders made in the quarantine have mode 0700."""
    share.file("homes/jan/cv.docx")
    act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)
    for folder in ("homes", "homes/jan"):
        assert stat.S_IMODE((quarantine / folder).stat().st_mode) == 0o700


def test_quarantine_leaves_the_share_folders_for_a_restore(share: Share, quarantine: Path) -> None:
    """The emptied folder stays in the share (with its permissions) until the purge."""
    share.file("homes/jan/cv.docx")
    act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)
    assert folders(share.root) == {b"homes", b"homes/jan"}


def test_quarantine_across_file_systems(share: Share, other_fs_quarantine: Path) -> None:
    """To another file system the file is copied (bytes, mtime, mode), then removed; no
    partial copy is left.
    """
    share.file("a/b.bin", size=3 << 20, mtime=OLD)
    os.chmod(share.path("a/b.bin"), 0o604)
    outcome = act(share, "quarantine", ["a/b.bin"], other_fs_quarantine)["a/b.bin"]
    assert outcome.status == "done"
    assert outcome.details is not None and outcome.details["moved"] == "copied"
    moved = other_fs_quarantine / "a/b.bin"
    assert moved.read_bytes() == b"x" * (3 << 20)
    assert moved.stat().st_mtime_ns == ns(OLD)
    assert stat.S_IMODE(moved.stat().st_mode) == 0o604
    assert files(other_fs_quarantine) == {b"a/b.bin"}
    assert files(share.root) == set()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_quarantine_across_file_systems_keeps_the_owner(
    share: Share, other_fs_quarantine: Path
) -> None:
    """Running as root, the copy keeps the file's owner and group."""
    share.file("a.txt", size=1)
    os.chown(share.path("a.txt"), 65534, 65534)
    act(share, "quarantine", ["a.txt"], other_fs_quarantine)
    st = (other_fs_quarantine / "a.txt").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)


def test_quarantine_root_from_the_system_settings(share: Share, quarantine: Path) -> None:
    """Without the option, the system's connection.quarantine_root is used."""
    share.file("a.txt")
    location = FileLocation(system="share")
    with connector(share.root, read_only=False, quarantine_root=quarantine) as writer:
        [outcome] = writer.act(ActRequest(location, "quarantine", ["a.txt"]))
    assert outcome.status == "done"
    assert files(quarantine) == {b"a.txt"}


def test_quarantine_does_not_overwrite(share: Share, quarantine: Path) -> None:
    """Something already in quarantine at the path: 'failed', both files unchanged."""
    share.file("a.txt", size=1)
    (quarantine / "a.txt").write_bytes(b"earlier")
    outcome = act(share, "quarantine", ["a.txt"], quarantine)["a.txt"]
    assert outcome.status == "failed"
    assert outcome.message is not None and "already in the quarantine" in outcome.message
    assert (quarantine / "a.txt").read_bytes() == b"earlier"
    assert (share.root / "a.txt").read_bytes() == b"x"


def test_quarantine_does_not_overwrite_across_file_systems(
    share: Share, other_fs_quarantine: Path
) -> None:
    """Across file systems too, an existing quarantined file is not replaced."""
    share.file("a.txt", size=1)
    (other_fs_quarantine / "a.txt").write_bytes(b"earlier")
    assert act(share, "quarantine", ["a.txt"], other_fs_quarantine)["a.txt"].status == "failed"
    assert (other_fs_quarantine / "a.txt").read_bytes() == b"earlier"
    assert files(other_fs_quarantine) == {b"a.txt"}


def test_quarantine_completes_an_interrupted_move(share: Share, quarantine: Path) -> None:
    """The same file already in quarantine under a second name (a crash between link and
    unlink) completes: 'done', and the share's name is removed.
    """
    share.file("a.txt", size=4)
    os.link(share.path("a.txt"), quarantine / "a.txt")
    outcome = act(share, "quarantine", ["a.txt"], quarantine)["a.txt"]
    assert outcome.status == "done"
    assert outcome.details is not None and outcome.details["moved"] == "completed"
    assert files(share.root) == set() and files(quarantine) == {b"a.txt"}


def test_quarantine_completes_an_interrupted_copy(share: Share, other_fs_quarantine: Path) -> None:
    """An exact copy already in a quarantine on another file system (a crash before the
    unlink) completes: the share's file is removed.
    """
    share.file("a.txt", size=4, mtime=OLD)
    shutil.copy2(share.path("a.txt"), other_fs_quarantine / "a.txt")
    assert act(share, "quarantine", ["a.txt"], other_fs_quarantine)["a.txt"].status == "done"
    assert files(share.root) == set()


def test_quarantine_replaces_a_partial_copy_left_by_a_crash(
    share: Share, other_fs_quarantine: Path
) -> None:
    """A partial copy that a killed run left behind is replaced, not kept beside the file."""
    share.file("a.txt", size=10)
    partial = other_fs_quarantine / os.fsdecode(fileshare._partial_name(b"a.txt"))
    partial.write_bytes(b"xxx")
    assert act(share, "quarantine", ["a.txt"], other_fs_quarantine)["a.txt"].status == "done"
    assert files(other_fs_quarantine) == {b"a.txt"}


def test_quarantine_folder_swapped_for_a_link_is_not_followed(
    share: Share, quarantine: Path, tmp_path: Path
) -> None:
    """A folder in the quarantine that is a link to elsewhere: 'failed', nothing written
    there, the file stays in the share.
    """
    share.file("homes/jan/cv.docx")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, quarantine / "homes")
    outcome = act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)["homes/jan/cv.docx"]
    assert outcome.status == "failed"
    assert outcome.message is not None and "symbolic link" in outcome.message
    assert not os.listdir(elsewhere)
    assert files(share.root) == {b"homes/jan/cv.docx"}


def test_failed_move_leaves_no_new_folders_and_the_rest_go_on(
    share: Share, quarantine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move that fails (EBUSY) is 'failed' with the reason, the folders made for it in
    the quarantine are removed again, and the next key is still moved.
    """
    real_rename = fileshare._renameat2

    def busy_for_b(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> None:
        if src == b"b.txt":
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real_rename(src_dir, src, dst_dir, dst)

    monkeypatch.setattr(fileshare, "_RENAMES", (busy_for_b,))
    share.file("x/y/b.txt")
    share.file("z/a.txt")
    outcomes = act(share, "quarantine", ["x/y/b.txt", "z/a.txt"], quarantine)
    assert statuses(outcomes) == {"x/y/b.txt": "failed", "z/a.txt": "done"}
    assert "busy" in (outcomes["x/y/b.txt"].message or "")
    assert folders(quarantine) == {b"z"}
    assert files(share.root) == {b"x/y/b.txt"}


def test_quarantine_of_a_missing_file_is_gone(share: Share, quarantine: Path) -> None:
    """A file gone from the share is 'gone'; nothing is made in the quarantine."""
    assert act(share, "quarantine", ["a/b.txt"], quarantine)["a/b.txt"].status == "gone"
    assert not os.listdir(quarantine)


@pytest.mark.parametrize("way", ["renameat2", "link", "check"])
def test_every_way_of_moving_refuses_to_overwrite(
    share: Share, quarantine: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """Each way of renaming (renameat2, link then unlink, check then rename) moves a file
    and refuses to replace one.
    """
    ways = {
        "renameat2": fileshare._renameat2,
        "link": fileshare._link_then_unlink,
        "check": fileshare._check_then_rename,
    }
    monkeypatch.setattr(fileshare, "_RENAMES", (ways[way],))
    share.file("new.txt", size=3)
    share.file("taken.txt", size=2)
    (quarantine / "taken.txt").write_bytes(b"earlier")
    outcomes = act(share, "quarantine", ["new.txt", "taken.txt"], quarantine)
    assert statuses(outcomes) == {"new.txt": "done", "taken.txt": "failed"}
    assert (quarantine / "new.txt").read_bytes() == b"xxx"
    assert (quarantine / "taken.txt").read_bytes() == b"earlier"
    assert files(share.root) == {b"taken.txt"}


# -- restore ------------------------------------------------------------------------------


def test_restore_puts_the_file_back(share: Share, quarantine: Path) -> None:
    """Restore moves the file back to its path with its bytes and mtime; the emptied
    quarantine folders go.
    """
    share.file("homes/jan/cv.docx", size=7, mtime=OLD)
    act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)
    assert statuses(act(share, "restore", ["homes/jan/cv.docx"], quarantine)) == {
        "homes/jan/cv.docx": "done"
    }
    restored = share.root / "homes/jan/cv.docx"
    assert restored.read_bytes() == b"x" * 7
    assert restored.stat().st_mtime_ns == ns(OLD)
    assert not os.listdir(quarantine)


def test_restore_across_file_systems(share: Share, other_fs_quarantine: Path) -> None:
    """From a quarantine on another file system the file is copied back with its mtime."""
    share.file("a/b.txt", size=5, mtime=OLD)
    act(share, "quarantine", ["a/b.txt"], other_fs_quarantine)
    assert act(share, "restore", ["a/b.txt"], other_fs_quarantine)["a/b.txt"].status == "done"
    assert (share.root / "a/b.txt").stat().st_mtime_ns == ns(OLD)
    assert files(share.root) == {b"a/b.txt"} and files(other_fs_quarantine) == set()


def test_restore_refuses_to_overwrite(share: Share, quarantine: Path) -> None:
    """A new file at the original path: 'failed', neither file changes."""
    share.file("a.txt", size=3)
    act(share, "quarantine", ["a.txt"], quarantine)
    (share.root / "a.txt").write_bytes(b"new work")
    outcome = act(share, "restore", ["a.txt"], quarantine)["a.txt"]
    assert outcome.status == "failed"
    assert outcome.message is not None and "a file exists at the original path" in outcome.message
    assert (share.root / "a.txt").read_bytes() == b"new work"
    assert (quarantine / "a.txt").read_bytes() == b"xxx"


def test_restore_refuses_to_overwrite_across_file_systems(
    share: Share, other_fs_quarantine: Path
) -> None:
    """Across file systems too, a new file at the original path is kept."""
    share.file("a.txt", size=3)
    act(share, "quarantine", ["a.txt"], other_fs_quarantine)
    (share.root / "a.txt").write_bytes(b"new work")
    assert act(share, "restore", ["a.txt"], other_fs_quarantine)["a.txt"].status == "failed"
    assert (share.root / "a.txt").read_bytes() == b"new work"
    assert files(share.root) == {b"a.txt"}


def test_restore_of_a_missing_file_is_gone(share: Share, quarantine: Path) -> None:
    """A key that is not in the quarantine is 'gone'."""
    assert act(share, "restore", ["a/b.txt"], quarantine)["a/b.txt"].status == "gone"


def test_restore_remakes_a_missing_folder(share: Share, quarantine: Path) -> None:
    """A share folder removed meanwhile is made again (0700) and the outcome says so."""
    share.file("homes/jan/cv.docx")
    act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)
    shutil.rmtree(share.path("homes"))
    outcome = act(share, "restore", ["homes/jan/cv.docx"], quarantine)["homes/jan/cv.docx"]
    assert outcome.status == "done"
    assert outcome.message is not None and "0700" in outcome.message
    assert files(share.root) == {b"homes/jan/cv.docx"}


def test_restore_through_a_share_link_is_refused(
    share: Share, quarantine: Path, tmp_path: Path
) -> None:
    """A share folder replaced by a link to elsewhere: 'failed', nothing written there."""
    share.file("homes/jan/cv.docx")
    act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(share.path("homes/jan"))
    os.symlink(elsewhere, share.path("homes/jan"))
    assert (
        act(share, "restore", ["homes/jan/cv.docx"], quarantine)["homes/jan/cv.docx"].status
        == "failed"
    )
    assert not os.listdir(elsewhere)
    assert files(quarantine) == {b"homes/jan/cv.docx"}


# -- purge --------------------------------------------------------------------------------


def test_purge_removes_only_from_quarantine(share: Share, quarantine: Path) -> None:
    """Purge unlinks the quarantined file; a new file at the same path in the share stays."""
    share.file("homes/jan/cv.docx")
    share.file("homes/jan/other.txt")
    act(share, "quarantine", ["homes/jan/cv.docx"], quarantine)
    (share.root / "homes/jan/cv.docx").write_bytes(b"new")
    assert statuses(act(share, "purge", ["homes/jan/cv.docx"], quarantine)) == {
        "homes/jan/cv.docx": "done"
    }
    assert files(quarantine) == set() and not os.listdir(quarantine)
    assert files(share.root) == {b"homes/jan/cv.docx", b"homes/jan/other.txt"}


def test_purge_removes_the_share_folders_left_for_a_restore(share: Share, quarantine: Path) -> None:
    """Once purged, the share folders that quarantine emptied and left go too, if empty."""
    share.file("homes/jan/2019/cv.docx")
    share.file("homes/piet/keep.txt")
    act(share, "quarantine", ["homes/jan/2019/cv.docx"], quarantine)
    act(share, "purge", ["homes/jan/2019/cv.docx"], quarantine)
    assert folders(share.root) == {b"homes", b"homes/piet"}


def test_purge_of_a_missing_file_is_gone(share: Share, quarantine: Path) -> None:
    """A key that is not in the quarantine is 'gone', twice as well."""
    share.file("a.txt")
    act(share, "quarantine", ["a.txt"], quarantine)
    assert act(share, "purge", ["a.txt"], quarantine)["a.txt"].status == "done"
    assert act(share, "purge", ["a.txt"], quarantine)["a.txt"].status == "gone"


def test_purge_works_while_the_share_is_unreachable(
    share: Share, quarantine: Path, tmp_path: Path
) -> None:
    """With the share root gone (unmounted), purge still empties the quarantine."""
    share.file("a.txt")
    act(share, "quarantine", ["a.txt"], quarantine)
    share.root.rename(tmp_path / "unmounted")
    assert act(share, "purge", ["a.txt"], quarantine)["a.txt"].status == "done"
    assert not os.listdir(quarantine)


# -- any name -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", list(NAMES.values()), ids=list(NAMES))
def test_any_name_is_deleted(share: Share, raw: bytes) -> None:
    """Every name a scan finds ('!b64:' keys too) is deleted by its key; a neighbour stays."""
    share.file(raw)
    share.file(b"neighbour")
    key = encode_key(raw)
    assert key in run_scan(share.root).keys
    assert act(share, "delete", [key])[key].status == "done"
    assert files(share.root) == {b"neighbour"}


@pytest.mark.parametrize("raw", list(NAMES.values()), ids=list(NAMES))
def test_any_name_is_quarantined_restored_and_purged(
    share: Share, quarantine: Path, raw: bytes
) -> None:
    """Every name goes through quarantine, restore, quarantine again and purge."""
    share.file(raw, size=3)
    key = encode_key(raw)
    assert act(share, "quarantine", [key], quarantine)[key].status == "done"
    assert files(quarantine) == {raw} and files(share.root) == set()
    assert act(share, "restore", [key], quarantine)[key].status == "done"
    assert files(share.root) == {raw} and files(quarantine) == set()
    assert act(share, "quarantine", [key], quarantine)[key].status == "done"
    assert act(share, "purge", [key], quarantine)[key].status == "done"
    assert files(quarantine) == set() and files(share.root) == set()


def test_acting_opens_no_lasting_files(share: Share, quarantine: Path) -> None:
    """After acting on files in many folders, no file descriptor stays open."""
    keys = [f"d{i}/f.txt" for i in range(200)]
    for key in keys:
        share.file(key)
    fds = len(os.listdir("/proc/self/fd"))
    act(share, "quarantine", keys[:100], quarantine)
    act(share, "delete", keys[100:])
    act(share, "purge", keys[:100], quarantine)
    assert len(os.listdir("/proc/self/fd")) == fds
    assert files(share.root) == set() and files(quarantine) == set()
