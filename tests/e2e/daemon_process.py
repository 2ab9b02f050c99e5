"""`sweeper daemon` as systemd runs it: a subprocess with its own NOTIFY_SOCKET (an abstract
socket the test listens on), WATCHDOG_USEC, a fast timetable and JSON logs on stderr."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NEVER = {
    f"SWEEPER_SCHEDULE__{job.upper()}": "never" for job in ("plan", "execute", "discover", "prune")
}


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a sweeper process: no settings from the caller, a state dir of its
    own, every job off the timetable unless ``extra`` schedules it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SWEEPER_", "NOTIFY_", "WATCHDOG_")) and k != "CREDENTIALS_DIRECTORY"
    }
    env.update(NEVER)
    env["SWEEPER_STATE_DIR"] = str(tmp_path / "state")
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


class Notifications:
    """Listens on an abstract AF_UNIX datagram socket, as systemd does, and keeps every
    message with the time it arrived."""

    def __init__(self) -> None:
        self.name = f"@sweeper-test-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            fields["_at"] = str(time.monotonic())
            self.messages.append(fields)

    def wait_for(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = 30
    ) -> dict[str, str]:
        """Return the first message (old or new) that matches, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if predicate(message):
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no such notification within {timeout}s; got {self.messages}")

    def statuses(self) -> list[str]:
        return [m["STATUS"] for m in self.messages if "STATUS" in m]

    def close(self) -> None:
        self._done.set()
        self.sock.close()
        self._thread.join(timeout=2)


class Daemon:
    """A running `sweeper daemon`; stop() sends SIGTERM and returns the exit code."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str],
        *args: str,
        watchdog_usec: int | None = 1_000_000,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.notify = Notifications()
        self.stderr_path = cwd / f"daemon-{secrets.token_hex(3)}.log"
        env = {**env, "NOTIFY_SOCKET": self.notify.name}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "sweeper", "daemon", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def ready(self, timeout: float = 60) -> dict[str, str]:
        return self.notify.wait_for(lambda m: m.get("READY") == "1", timeout)

    def status(self, text: str, timeout: float = 60) -> dict[str, str]:
        """Wait for a STATUS= line containing text."""
        return self.notify.wait_for(lambda m: text in m.get("STATUS", ""), timeout)

    def log(self) -> list[dict[str, Any]]:
        """The daemon's log so far, one JSON object per line."""
        lines = self.stderr_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def wait_log(self, event: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log():
                if record.get("event") == event:
                    return record
            time.sleep(0.1)
        raise AssertionError(f"no log event {event!r} within {timeout}s: {self.log()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
        self.notify.close()


def job_runs(state_dir: Path, job: str | None = None) -> list[dict[str, Any]]:
    """The job_runs rows of a SQLite state store, oldest first."""
    db = sqlite3.connect(state_dir / "state.db")
    db.row_factory = sqlite3.Row
    try:
        query = "SELECT * FROM job_runs" + (" WHERE job = ?" if job else "") + " ORDER BY id"
        return [dict(r) for r in db.execute(query, (job,) if job else ())]
    finally:
        db.close()


def free_port() -> int:
    """Return a loopback port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
