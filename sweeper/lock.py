"""The execution lock: two executions (daemon or CLI, on one host or several) never overlap.

Whoever acts on systems or removes the sweeper's own records (``sweeper execute``, ``sweeper
restore``, the daemon's execute and prune jobs) takes the lock first:

* a file lock (``flock``) on ``execution.lock`` in the state directory, which also holds who
  took it (pid, host, command, since) for whoever finds it taken;
* when the state store is PostgreSQL, also a session advisory lock in that database, so that
  several agents sharing one store never overlap either; who holds it is kept in the store's
  ``lock_holders`` table.

Both are released by the kernel or the database when the holder dies (even by kill -9), so a
crash never leaves a stale lock behind; a stale *description* of the holder is harmless, it is
only shown while the lock is really taken. When the lock is taken, ``lock.on_busy`` decides:
``wait`` (up to ``lock.wait_timeout``, saying who holds it) or ``refuse`` at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog

from sweeper.errors import SweeperError
from sweeper.settings import Settings
from sweeper.store import Store, lock_holders

log = structlog.get_logger("sweeper.lock")

LOCK_NAME = "execution"
# A fixed 64-bit key for pg_advisory_lock, the same in every agent and every release.
ADVISORY_KEY = int.from_bytes(
    hashlib.sha256(b"ropa-sweeper execution lock").digest()[:8], "big", signed=True
)
POLL_SECONDS = 1.0


class LockBusy(SweeperError):
    """Another execution holds the lock; the message says who."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@dataclass(frozen=True)
class Holder:
    """Who holds the lock."""

    pid: int
    host: str
    command: str
    since: datetime

    def __str__(self) -> str:
        return (
            f"{self.command} (pid {self.pid} on {self.host}, since "
            f"{self.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "host": self.host,
                "command": self.command,
                "since": self.since.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]),
                str(data["host"]),
                str(data["command"]),
                datetime.fromisoformat(data["since"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _never() -> bool:
    return False


@contextmanager
def execution_lock(
    settings: Settings,
    store: Store,
    command: str,
    *,
    stop: Callable[[], bool] = _never,
    waiting: Callable[[object], None] | None = None,
) -> Iterator[Holder]:
    """Hold the execution lock for the ``with`` block; yield this process as the holder.

    Args:
        settings: ``lock.on_busy`` and ``lock.wait_timeout``, and the state directory.
        store: the state store; on PostgreSQL an advisory lock is taken there too.
        command: what this process is doing, shown to whoever finds the lock taken.
        stop: polled while waiting; when it returns True, waiting ends with LockBusy.
        waiting: called once a second while waiting, with who holds the lock (its str()
            says who, or that it is not known yet).

    Raise LockBusy if the lock is taken and on_busy is refuse, or the wait timed out or was
    stopped; SweeperError if the lock file cannot be created.
    """
    me = Holder(os.getpid(), socket.gethostname(), command, datetime.now(UTC))
    lock = _Lock(settings.state_dir / "execution.lock", store)
    start = time.monotonic()
    timeout = _seconds(settings)
    said = False
    while True:
        holder = lock.try_acquire(me)
        if holder is None:
            break
        if settings.lock.on_busy == "refuse":
            raise LockBusy(f"another execution holds the lock: {holder}; try again later")
        if stop():
            raise LockBusy(f"stopped while waiting for the lock held by {holder}")
        if time.monotonic() - start >= timeout:
            raise LockBusy(
                f"gave up after waiting {settings.lock.wait_timeout} for the lock held by "
                f"{holder} (setting lock.wait_timeout)"
            )
        if waiting is not None:
            waiting(holder)
        if not said:
            said = True
            log.info("waiting for the execution lock", holder=str(holder), command=command)
        time.sleep(POLL_SECONDS)
    log.debug("execution lock taken", command=command)
    try:
        yield me
    finally:
        lock.release()


def current_holder(settings: Settings, store: Store) -> Holder | None:
    """Return who holds the execution lock now, as far as can be told without taking it
    (a holder on this host that is no longer running is not reported), or None."""
    found: list[Holder] = []
    try:
        text = (settings.state_dir / "execution.lock").read_text(encoding="utf-8")
    except OSError:
        text = ""
    if holder := Holder.from_json(text):
        found.append(holder)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            # A bigint advisory key shows in pg_locks as its high and low 32 bits.
            held = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND objsubid = 1 AND classid::bigint = :hi AND objid::bigint = :lo"
                ),
                {"hi": (ADVISORY_KEY >> 32) & 0xFFFFFFFF, "lo": ADVISORY_KEY & 0xFFFFFFFF},
            ).scalar_one()
            row = (
                conn.execute(sa.select(lock_holders).where(lock_holders.c.name == LOCK_NAME))
                .mappings()
                .first()
            )
        if held and row is not None:
            return Holder(row["pid"], row["host"], row["command"], row["since"])
    host = socket.gethostname()
    for holder in found:
        if holder.host != host or Path(f"/proc/{holder.pid}").exists():
            return holder
    return None


class _Unknown:
    def __str__(self) -> str:
        return "another process (it has not said who it is yet)"


class _Lock:
    def __init__(self, path: Path, store: Store) -> None:
        self.path = path
        self.store = store
        self.fd: int | None = None
        self.conn: sa.Connection | None = None

    def try_acquire(self, me: Holder, *, describe: bool = True) -> Any:
        """Take both locks and return None, or return who holds them (Holder or _Unknown)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as err:
            raise SweeperError(
                f"cannot create the execution lock {self.path}: {err.strerror}; the state "
                "directory must be writable by the sweeper's user"
            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            finally:
                os.close(fd)
            return Holder.from_json(text) or _Unknown()
        self.fd = fd
        if self.store.engine.dialect.name == "postgresql":
            holder = self._advisory(me, describe)
            if holder is not None:
                self._release_file()
                return holder
        if describe:
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.to_json().encode(), 0)
        return None

    def _advisory(self, me: Holder, describe: bool) -> Any:
        conn = self.store.engine.connect()
        try:
            taken = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
            ).scalar_one()
            conn.commit()  # a session lock outlives the transaction
        except sa.exc.SQLAlchemyError as err:
            conn.close()
            raise SweeperError(f"cannot take the execution lock in the state store: {err}") from err
        if not taken:
            row = (
                conn.execute(sa.select(lock_holders).where(lock_holders.c.name == LOCK_NAME))
                .mappings()
                .first()
            )
            conn.close()
            if row is None:
                return _Unknown()
            return Holder(row["pid"], row["host"], row["command"], row["since"])
        self.conn = conn
        if describe:
            conn.execute(lock_holders.delete().where(lock_holders.c.name == LOCK_NAME))
            conn.execute(
                lock_holders.insert().values(
                    name=LOCK_NAME, host=me.host, pid=me.pid, command=me.command, since=me.since
                )
            )
            conn.commit()
        return None

    def release(self, *, describe: bool = True) -> None:
        if self.conn is not None:
            try:
                if describe:
                    self.conn.execute(lock_holders.delete().where(lock_holders.c.name == LOCK_NAME))
                    self.conn.commit()
                self.conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                self.conn.commit()
            except sa.exc.SQLAlchemyError as err:  # closing the session releases it anyway
                log.warning("releasing the advisory lock failed", error=str(err))
            finally:
                self.conn.close()
                self.conn = None
        if describe and self.fd is not None:
            os.ftruncate(self.fd, 0)
        self._release_file()

    def _release_file(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def _seconds(settings: Settings) -> float:
    now = datetime.now(UTC)
    return (settings.lock.wait_timeout.add_to(now) - now).total_seconds()
