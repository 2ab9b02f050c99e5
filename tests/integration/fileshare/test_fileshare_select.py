"""Which files a location selects: include and exclude patterns, and directory pruning."""

from __future__ import annotations

import os
import socket

from fileshare_tree import ScanFn, Share

TREE = [
    "report.pdf",
    "homes/123456/cv.pdf",
    "homes/123456/notes.txt",
    "homes/123456/cache/thumb.pdf",
    "homes/654321/deep/er/cache/x.tmp",
    "exports/2019/list.csv",
    "exports/2019/sub/old.pdf",
    "tmp/scratch.pdf",
    ".hidden/secret.pdf",
]


def make_tree(share: Share) -> None:
    for rel in TREE:
        share.file(rel)


def test_default_include_selects_every_file(share: Share, scan: ScanFn) -> None:
    """Without patterns every regular file at any depth is an item."""
    make_tree(share)
    assert scan().keys == set(TREE)


def test_double_star_at_start_matches_any_depth(share: Share, scan: ScanFn) -> None:
    """'**/*.pdf' selects PDFs in the root and at every depth."""
    make_tree(share)
    assert scan(include=["**/*.pdf"]).keys == {
        "report.pdf",
        "homes/123456/cv.pdf",
        "homes/123456/cache/thumb.pdf",
        "exports/2019/sub/old.pdf",
        "tmp/scratch.pdf",
        ".hidden/secret.pdf",
    }


def test_double_star_in_middle_matches_zero_or_more_directories(share: Share, scan: ScanFn) -> None:
    """'homes/**/cache/*' selects cache files directly under a home and deeper down."""
    make_tree(share)
    assert scan(include=["homes/**/cache/*"]).keys == {
        "homes/123456/cache/thumb.pdf",
        "homes/654321/deep/er/cache/x.tmp",
    }


def test_double_star_at_end_matches_everything_below(share: Share, scan: ScanFn) -> None:
    """'exports/**' selects every file below exports, however deep."""
    make_tree(share)
    assert scan(include=["exports/**"]).keys == {
        "exports/2019/list.csv",
        "exports/2019/sub/old.pdf",
    }


def test_several_includes_are_a_union(share: Share, scan: ScanFn) -> None:
    """A file is selected when any include pattern matches it."""
    make_tree(share)
    assert scan(include=["*.pdf", "exports/*/*.csv"]).keys == {
        "report.pdf",
        "exports/2019/list.csv",
    }


def test_exclude_removes_matching_files(share: Share, scan: ScanFn) -> None:
    """An exclude pattern drops the files it matches from the included ones."""
    make_tree(share)
    assert scan(include=["homes/**"], exclude=["**/*.txt"]).keys == {
        "homes/123456/cv.pdf",
        "homes/123456/cache/thumb.pdf",
        "homes/654321/deep/er/cache/x.tmp",
    }


def test_excluded_directory_is_not_entered(share: Share, scan: ScanFn) -> None:
    """A directory matched by an exclude is pruned: nothing inside it is even looked at."""
    make_tree(share)
    # A link out of the share inside the excluded folder would be reported if it were walked.
    share.link("homes/123456/cache/escape", "/etc")
    result = scan(exclude=["**/cache"])
    assert "homes/123456/cache/thumb.pdf" not in result.keys
    assert "homes/654321/deep/er/cache/x.tmp" not in result.keys
    assert "homes/123456/cv.pdf" in result.keys
    assert result.findings == []


def test_exclude_of_everything_below_prunes_the_directory(share: Share, scan: ScanFn) -> None:
    """'tmp/**' prunes the tmp directory itself: a link inside it is never met."""
    make_tree(share)
    share.link("tmp/escape", "/etc")
    result = scan(exclude=["tmp/**"])
    assert "tmp/scratch.pdf" not in result.keys
    assert result.findings == []


def test_directories_no_include_can_match_below_are_not_entered(share: Share, scan: ScanFn) -> None:
    """With include 'exports/**', the walk never enters homes (its link is never met)."""
    make_tree(share)
    share.link("homes/escape", "/etc")
    result = scan(include=["exports/**"])
    assert result.keys == {"exports/2019/list.csv", "exports/2019/sub/old.pdf"}
    assert result.findings == []


def test_only_regular_files_are_items(share: Share, scan: ScanFn) -> None:
    """A FIFO, a socket and an empty directory are passed over; the file beside them is found."""
    share.file("a/file.txt")
    os.mkfifo(share.path("a/fifo"))
    share.dir("a/empty")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(share.path("a/sock"))
        assert scan().keys == {"a/file.txt"}
