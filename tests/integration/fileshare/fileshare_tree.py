"""Helpers for the file-share connector's tests: build trees, run scans, drop privileges."""

from __future__ import annotations

import os
import pickle
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from connectors.base import (
    ConnectorContext,
    NotDueSummary,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from connectors.fileshare import FileShareConnector
from sweeper.ropa.model import Clock, FileLocation, FileShareConnection, FileShareSystem

TZ = ZoneInfo("Europe/Amsterdam")
NOBODY = 65534
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# File names that every action must handle: bytes on POSIX, anything but '/' and NUL.
NAMES = {
    "space": b"homes/jan de vries/cv 2019.docx",
    "nfc": unicodedata.normalize("NFC", "caf\u00e9.txt").encode(),
    "nfd": unicodedata.normalize("NFD", "caf\u00e9.txt").encode(),
    "newline": b"two\nlines.txt",
    "tab-and-backslash": b"a\tb\\c.txt",
    "invalid-utf8": b"oud-\xff\xfe-latin1-\xe9.txt",
    "invalid-utf8-folder": b"map-\xe9/inner.txt",
    "looks-escaped": b"!b64:aGVsbG8=",
    "emoji": "\U0001f4da boeken.txt".encode(),
    "bidi-override": "invoice\u202egpj.exe".encode(),
    "leading-dash-and-dot": b"-rf/.profile",
    "longest": b"n" * 255,
}


def ns(moment: datetime) -> int:
    """Given an aware datetime, return exact nanoseconds since the epoch."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


def no_credentials(name: str) -> SecretStr:
    raise AssertionError(f"a file share needs no credential, asked for {name!r}")


def connector(
    root: str | Path,
    workers: int = 0,
    base_dir: Path | None = None,
    *,
    read_only: bool = True,
    quarantine_root: str | Path | None = None,
) -> FileShareConnector:
    """Return a connector for a share at ``root`` (relative roots resolve in ``base_dir``);
    with ``read_only=False`` one that may act.
    """
    system = FileShareSystem(
        id="share",
        name="File server",
        kind="fileshare",
        connection=FileShareConnection(
            root=str(root),
            quarantine_root=None if quarantine_root is None else str(quarantine_root),
        ),
    )
    context = ConnectorContext(
        base_dir=base_dir or Path("/"),
        credential=no_credentials,
        read_only=read_only,
        options={"walk_workers": workers},
    )
    return FileShareConnector(system, context)


@dataclass
class Share:
    """A share root in a temporary folder, with helpers that create entries by path."""

    root: Path

    def path(self, rel: str | bytes) -> bytes:
        raw = rel.encode("utf-8") if isinstance(rel, str) else rel
        return os.fsencode(self.root) + b"/" + raw

    def file(
        self,
        rel: str | bytes,
        *,
        size: int = 0,
        mtime: datetime | None = None,
        atime: datetime | None = None,
    ) -> bytes:
        """Create a file (and its folders) with ``size`` bytes; set its times; return its
        path relative to the root, as bytes.
        """
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as out:
            out.write(b"x" * size)
        if mtime is not None or atime is not None:
            st = os.stat(path)
            os.utime(
                path,
                ns=(
                    ns(atime) if atime else st.st_atime_ns,
                    ns(mtime) if mtime else st.st_mtime_ns,
                ),
            )
        return path[len(os.fsencode(self.root)) + 1 :]

    def dir(self, rel: str | bytes) -> bytes:
        path = self.path(rel)
        os.makedirs(path, exist_ok=True)
        return path

    def link(self, rel: str | bytes, target: str | bytes) -> bytes:
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
        return path


@dataclass
class Scan:
    """What one scan yielded, sorted by kind."""

    outputs: list[ScanOutput]
    items: dict[str, ScannedItem] = field(default_factory=dict)
    findings: list[ScanFinding] = field(default_factory=list)
    summaries: list[NotDueSummary] = field(default_factory=list)

    def __post_init__(self) -> None:
        for out in self.outputs:
            if isinstance(out, ScannedItem):
                assert out.key not in self.items, f"item {out.key!r} yielded twice"
                self.items[out.key] = out
            elif isinstance(out, ScanFinding):
                self.findings.append(out)
            else:
                self.summaries.append(out)

    @property
    def keys(self) -> set[str]:
        return set(self.items)

    @property
    def not_due(self) -> int:
        return sum(s.count for s in self.summaries)


ScanFn = Callable[..., Scan]


def run_scan(
    root: str | Path,
    workers: int = 0,
    clock: Clock = "modified",
    *,
    include: Sequence[str] = ("**",),
    exclude: Sequence[str] = (),
    path_regex: str | None = None,
    subject_group: str = "subject",
    cutoff: datetime | None = None,
    tz: tzinfo = TZ,
) -> Scan:
    """Scan a share with a location made of the given settings and collect the outputs."""
    location = FileLocation(
        system="share",
        include=list(include),
        exclude=list(exclude),
        path_regex=path_regex,
        subject_group=subject_group,
    )
    request = ScanRequest(location=location, clock=clock, tz=tz, cutoff=cutoff)
    with connector(root, workers) as share_connector:
        return Scan(list(share_connector.scan(request)))


def as_unprivileged(task: Callable[[], Any]) -> Any:
    """Run ``task`` as a user for whom file permissions count, and return its result.

    As root (who reads any folder whatever its mode) the task runs in a forked child that
    has dropped to uid/gid 65534 (nobody); as another user it runs here. An exception in the
    task is raised here as AssertionError with the child's message.
    """
    if os.geteuid() != 0:
        return task()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            result: tuple[str, Any] = ("ok", task())
        except BaseException as err:  # noqa: BLE001  (the parent fails the test with it)
            result = ("error", f"{type(err).__name__}: {err}")
        try:
            with os.fdopen(write_fd, "wb") as out:
                out.write(pickle.dumps(result))
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    assert data, f"the unprivileged child died without an answer (status {status})"
    outcome, value = pickle.loads(data)
    if outcome != "ok":
        raise AssertionError(f"in the unprivileged child: {value}")
    return value
