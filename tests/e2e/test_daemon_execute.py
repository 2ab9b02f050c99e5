"""The daemon's execute job on a real file tree, with the state store in SQLite or PostgreSQL:
SIGTERM stops it cleanly between batches and a later run finishes the plan, acting once per
item; two executions at once never overlap (the second waits or is refused, per setting)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from daemon_process import Daemon, base_env, wait_until
from test_execute_crash import FILES_ROPA

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The state store: SQLite in the state dir, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'state.db'}"
        return
    name = f"sweeper_daemon_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is not answering ({err}); start it: {PG_START}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Share:
    """A file tree with due and kept files, a RoPA for it, and a plan approved for it."""

    def __init__(self, root: Path, state_url: str, files: int) -> None:
        self.root = root
        self.env = base_env(root, SWEEPER_STATE_URL=state_url, SWEEPER_ROPA=str(root / "ropa.yaml"))
        old = time.time() - 3 * 365 * 86400
        self.due: set[Path] = set()
        self.kept: set[Path] = set()
        for n in range(files):
            path = root / "share" / f"dept{n % 5}" / f"export {n:04d}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("id;name\n")
            if n % 4:
                os.utime(path, (old, old))
                self.due.add(path)
            else:
                self.kept.add(path)
        (root / "ropa.yaml").write_text(FILES_ROPA)
        planned = self.run("plan")
        assert planned.returncode == 0, planned.stderr
        [report] = (root / "state" / "reports").glob("plan-*.json")
        plan = json.loads(report.read_text())
        self.plan_id = plan["plan"]["id"]
        self.seqs = {i["seq"] for i in plan["items"] if i["status"] == "due"}
        assert len(self.seqs) == len(self.due)
        assert self.run("approve", self.plan_id, "--by", "fg").returncode == 0

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sweeper", *args],
            cwd=self.root,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "sweeper", *args],
            cwd=self.root,
            env={**self.env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def gone(self) -> int:
        return sum(1 for p in self.due if not p.exists())

    def audit(self, event: str) -> list[dict]:
        shown = self.run("audit", "show", "--event", event, "--format", "json")
        assert shown.returncode == 0, shown.stderr
        return list(json.loads(shown.stdout))

    def journal(self) -> Counter[str]:
        engine = sa.create_engine(self.env["SWEEPER_STATE_URL"])
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT state FROM journal WHERE plan_id = :p"), {"p": self.plan_id}
            ).all()
        engine.dispose()
        return Counter(r[0] for r in rows)


@contextmanager
def paused(process: subprocess.Popen[str]) -> Iterator[None]:
    """Hold a process still (SIGSTOP) and let it go on afterwards (SIGCONT), so that a test's
    premise holds however fast the machine runs it: an execution holding the lock keeps it, one
    sent a signal takes it where it was, not after it finished."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def test_sigterm_during_execution_stops_cleanly_and_a_later_run_finishes(
    tmp_path: Path, state_url: str
) -> None:
    """SIGTERM mid-execution exits 0 after the batch in hand; run --once execute finishes
    the plan and no item is acted on twice."""
    share = Share(tmp_path, state_url, 1200)
    env = {
        **share.env,
        "SWEEPER_SCHEDULE__EXECUTE": "every 1 second",
        "SWEEPER_EXECUTE_BATCH_SIZE": "3",
    }
    daemon = Daemon(tmp_path, env)
    try:
        daemon.ready()
        daemon.status("execute: acting on")
        wait_until(lambda: share.gone() >= 30, what="the execution to delete files")
        stopped = time.monotonic()
        with paused(daemon.proc):  # SIGTERM is taken in the middle, however fast this machine
            daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 10
        gone = share.gone()
        assert 30 <= gone < len(share.due), "the execution finished before it could be stopped"
        assert share.journal()["pending"] == 0  # the batch in hand was finished
        [stop] = share.audit("execution_stopped")
        assert stop["plan_id"] == share.plan_id and stop["details"]["location"]
        assert any(r["event"] == "execution stopped" for r in daemon.log())
    finally:
        daemon.close()

    finished = share.run("run", "--once", "execute", SWEEPER_EXECUTE_BATCH_SIZE="50")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert not any(p.exists() for p in share.due)
    assert all(p.exists() for p in share.kept)
    done = Counter(r["details"]["seq"] for r in share.audit("item_done"))
    assert done == Counter({seq: 1 for seq in share.seqs})
    assert share.journal() == Counter({"done": len(share.seqs)})
    verified = share.run("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def holder_appears(share: Share) -> bool:
    text = (
        (share.root / "state" / "execution.lock").read_text()
        if (share.root / "state" / "execution.lock").exists()
        else ""
    )
    return '"command"' in text


def test_second_execution_is_refused_and_says_who_holds_the_lock(tmp_path: Path) -> None:
    """With lock.on_busy refuse, an execution started during another exits 75 naming it."""
    share = Share(tmp_path, f"sqlite:///{tmp_path / 'state' / 'state.db'}", 400)
    first = share.start("execute", share.plan_id, SWEEPER_EXECUTE_BATCH_SIZE="1")
    try:
        wait_until(lambda: holder_appears(share), what="the first execution to take the lock")
        with paused(first):
            second = share.run("execute", share.plan_id, SWEEPER_LOCK__ON_BUSY="refuse")
            assert first.poll() is None, "the first execution ended before the second started"
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert second.returncode == 75, second.stdout + second.stderr
    message = " ".join(second.stderr.split())
    assert re.search(
        rf"another execution holds the lock: sweeper execute {share.plan_id} \(pid {first.pid} on ",
        message,
    ), message
    assert len(share.audit("execution_started")) == 1
    assert not any(p.exists() for p in share.due)


def test_second_execution_waits_for_the_first_and_acts_on_nothing_twice(tmp_path: Path) -> None:
    """With lock.on_busy wait, the second execution waits, then finds everything done."""
    share = Share(tmp_path, f"sqlite:///{tmp_path / 'state' / 'state.db'}", 400)
    first = share.start("execute", share.plan_id, SWEEPER_EXECUTE_BATCH_SIZE="1")
    log = tmp_path / "second.log"
    try:
        wait_until(lambda: holder_appears(share), what="the first execution to take the lock")
        with paused(first), log.open("w") as stderr:
            second = subprocess.Popen(
                [sys.executable, "-m", "sweeper", "execute", share.plan_id],
                cwd=share.root,
                env=share.env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
            )
            wait_until(
                lambda: "waiting for the execution lock" in " ".join(log.read_text().split()),
                what="the second execution to wait for the lock",
            )
    finally:
        out, err = first.communicate(timeout=300)
    assert second.wait(timeout=300) == 0, log.read_text()
    assert first.returncode == 0, out + err
    assert "waiting for the execution lock, held by sweeper execute" in " ".join(
        log.read_text().split()
    )
    started = share.audit("execution_started")
    finished = share.audit("execution_finished")
    assert len(started) == len(finished) == 2
    assert finished[0]["seq"] < started[1]["seq"]  # the second began after the first ended
    assert finished[1]["details"]["done"] == 0
    done = Counter(r["details"]["seq"] for r in share.audit("item_done"))
    assert done == Counter({seq: 1 for seq in share.seqs})
