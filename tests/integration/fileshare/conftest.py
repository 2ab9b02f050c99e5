"""Fixtures for the file-share connector: real file trees in temporary folders.

Every scan test runs three times: walked in the test process, in one worker process, and
split over two worker processes (the connector option ``walk_workers``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fileshare_tree import Scan, ScanFn, Share, run_scan

from sweeper.ropa.model import Clock


@pytest.fixture
def share(tmp_path: Path) -> Share:
    root = tmp_path / "share"
    root.mkdir()
    return Share(root)


@pytest.fixture(params=[0, 1, 2], ids=["in-process", "one-worker", "two-workers"])
def walk_workers(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def scan(share: Share, walk_workers: int) -> ScanFn:
    """Scan the ``share`` fixture's tree: ``scan(clock, include=..., cutoff=...)``."""

    def run(clock: Clock = "modified", **settings: Any) -> Scan:
        return run_scan(share.root, walk_workers, clock, **settings)

    return run


@pytest.fixture
def world_readable_share() -> Iterator[Share]:
    """A share in a folder that the unprivileged user 'nobody' can reach (pytest's own
    temporary folders are private to root).
    """
    base = Path(tempfile.mkdtemp(prefix="fileshare-test-"))
    base.chmod(0o755)
    root = base / "share"
    root.mkdir(mode=0o755)
    old_umask = os.umask(0o022)
    try:
        yield Share(root)
    finally:
        os.umask(old_umask)
        for folder, dirs, _ in os.walk(base):
            for name in dirs:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o755)
        shutil.rmtree(base)
