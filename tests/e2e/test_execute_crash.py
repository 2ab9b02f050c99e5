"""Execution survives kill -9 at any point: re-running finishes the plan, acting once per item.

The SIS is a real SQLite, PostgreSQL or MariaDB database with FOREIGN KEY constraints;
`sweeper execute` runs as a subprocess with small batches and is killed with SIGKILL after a
random delay, again and again, then run to completion. Afterwards every due student is gone
with all dependent rows, every other row is untouched, the journal holds exactly one finished
entry per due item, the audit log holds exactly one item_done record per due item, and
`sweeper audit verify` passes.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cli_run import Run

STUDENTS = 240
STILL_ENROLLED = range(0, STUDENTS, 4)  # every fourth student has an open enrolment

ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: UTC
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "URL"}}
events:
  - {id: left, system: sis, table: enrolments, subject: student_id, date: end_date}
activities:
  - id: pupils
    name: Pupil administration
    purposes: [administration]
    legal_basis: [legal_obligation]
    retention:
      period: P5Y
      clock: {event: left}
      action: delete
      limits: {max_fraction: 1}
    locations:
      - system: sis
        table: students
        key: id
        subject: id
        dependents:
          - {table: enrolments, columns: [student_id]}
          - table: grades
            columns: [student_id]
            dependents: [{table: grade_comments, columns: [grade_id]}]
"""


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty SIS database on each real backend, dropped afterwards."""
    name = f"sweeper_crash_{secrets.token_hex(4)}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sis.db'}"
        return
    if request.param == "postgresql":
        admin_url, url = (
            "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            (f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"),
        )
        start = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    else:
        admin_url, url = (
            "mysql+pymysql://root@127.0.0.1:3306/test",
            (f"mysql+pymysql://root@127.0.0.1:3306/{name}"),
        )
        start = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as err:
        pytest.fail(f"{request.param} is not answering on 127.0.0.1 ({err}); start it: {start}")
    try:
        yield url
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if request.param == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE {name}{force}"))
        admin.dispose()


def build_sis(url: str) -> None:
    metadata = sa.MetaData()
    students = sa.Table(
        "students",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(50)),
    )
    enrolments = sa.Table(
        "enrolments",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("student_id", sa.Integer, sa.ForeignKey("students.id"), nullable=False),
        sa.Column("end_date", sa.Date),
    )
    grades = sa.Table(
        "grades",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("student_id", sa.Integer, sa.ForeignKey("students.id"), nullable=False),
        sa.Column("grade", sa.Float),
    )
    comments = sa.Table(
        "grade_comments",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("grade_id", sa.Integer, sa.ForeignKey("grades.id"), nullable=False),
        sa.Column("comment", sa.String(50)),
    )
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    left = __import__("datetime").date(2015, 7, 15)
    with engine.begin() as conn:
        conn.execute(
            students.insert(), [{"id": 1000 + n, "name": f"pupil {n}"} for n in range(STUDENTS)]
        )
        conn.execute(
            enrolments.insert(),
            [
                {"student_id": 1000 + n, "end_date": None if n in STILL_ENROLLED else left}
                for n in range(STUDENTS)
            ],
        )
        conn.execute(
            grades.insert(),
            [
                {"id": 2 * n + g, "student_id": 1000 + n, "grade": 6 + g}
                for n in range(STUDENTS)
                for g in range(2)
            ],
        )
        conn.execute(
            comments.insert(),
            [{"grade_id": 2 * n + g, "comment": "ok"} for n in range(STUDENTS) for g in range(2)],
        )
    engine.dispose()


def test_kill_9_at_random_points_then_finish(sweeper: Run, tmp_path: Path, sis_url: str) -> None:
    """After repeated kill -9 mid-execution, a final run acts on every due item exactly once."""
    build_sis(sis_url)
    (tmp_path / "ropa.yaml").write_text(ROPA.replace("URL", sis_url))
    planned = sweeper("plan", "--ropa", "ropa.yaml")
    assert planned.returncode == 0, planned.stderr
    [report] = (tmp_path / "state" / "reports").glob("plan-*.json")
    plan = json.loads(report.read_text())
    plan_id = plan["plan"]["id"]
    due = {i["seq"]: i["key"] for i in plan["items"] if i["status"] == "due"}
    assert len(due) == STUDENTS - len(STILL_ENROLLED)
    assert sweeper("approve", plan_id, "--by", "fg").returncode == 0

    env = {
        **os.environ,
        "SWEEPER_STATE_DIR": str(tmp_path / "state"),
        "SWEEPER_EXECUTE_BATCH_SIZE": "7",
    }
    rng = random.Random(20261129)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeper", "execute", plan_id],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 1.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = sweeper("execute", plan_id, extra_env={"SWEEPER_EXECUTE_BATCH_SIZE": "7"})
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills >= 3, "the runs finished before they could be killed: make the data larger"

    engine = sa.create_engine(sis_url)
    with engine.connect() as db:
        remaining = {r[0] for r in db.execute(sa.text("SELECT id FROM students"))}
        assert remaining == {1000 + n for n in STILL_ENROLLED}
        for table in ("enrolments", "grades"):
            orphans = db.execute(
                sa.text(
                    f"SELECT COUNT(*) FROM {table} "
                    "WHERE student_id NOT IN (SELECT id FROM students)"
                )
            ).scalar_one()
            assert orphans == 0
        assert db.execute(sa.text("SELECT COUNT(*) FROM grades")).scalar_one() == 2 * len(remaining)
        assert db.execute(sa.text("SELECT COUNT(*) FROM grade_comments")).scalar_one() == 2 * len(
            remaining
        )
    engine.dispose()

    state = sqlite3.connect(tmp_path / "state" / "state.db")
    journal = dict(
        state.execute("SELECT seq, state FROM journal WHERE plan_id = ?", (plan_id,)).fetchall()
    )
    state.close()
    assert journal == {seq: "done" for seq in due}

    shown = sweeper("audit", "show", "--plan", plan_id, "--event", "item_done", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    done = Counter(r["details"]["seq"] for r in json.loads(shown.stdout))
    assert done == Counter({seq: 1 for seq in due})
    verified = sweeper("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


FILES_ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: UTC
systems:
  - {id: share, name: Share, kind: fileshare, owner: IT, connection: {root: share}}
activities:
  - id: exports
    name: Old exports
    retention: {period: P1Y, clock: modified, action: delete, limits: {max_fraction: 1}}
    locations:
      - {system: share, include: ["**/*.csv"]}
"""


def test_kill_9_while_deleting_files_then_finish(sweeper: Run, tmp_path: Path) -> None:
    """After repeated kill -9 while deleting files, a final run deletes each due file once."""
    share = tmp_path / "share"
    old = time.time() - 3 * 365 * 86400
    due, kept = set(), set()
    for n in range(400):
        path = share / f"dept{n % 7}" / f"export {n:04d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("id;name\n")
        if n % 3:
            os.utime(path, (old, old))
            due.add(path)
        else:
            kept.add(path)
    (tmp_path / "ropa.yaml").write_text(FILES_ROPA)
    assert sweeper("plan", "--ropa", "ropa.yaml").returncode == 0
    [report] = (tmp_path / "state" / "reports").glob("plan-*.json")
    plan = json.loads(report.read_text())
    plan_id = plan["plan"]["id"]
    seqs = {i["seq"] for i in plan["items"] if i["status"] == "due"}
    assert len(seqs) == len(due)
    assert sweeper("approve", plan_id, "--by", "fg").returncode == 0
    env = {
        **os.environ,
        "SWEEPER_STATE_DIR": str(tmp_path / "state"),
        "SWEEPER_EXECUTE_BATCH_SIZE": "9",
    }
    rng = random.Random(4)
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeper", "execute", plan_id],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 1.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = sweeper("execute", plan_id, extra_env={"SWEEPER_EXECUTE_BATCH_SIZE": "9"})
    assert final.returncode == 0, final.stdout + final.stderr
    assert not any(p.exists() for p in due)
    assert all(p.exists() for p in kept)
    shown = sweeper("audit", "show", "--plan", plan_id, "--event", "item_done", "--format", "json")
    done = Counter(r["details"]["seq"] for r in json.loads(shown.stdout))
    assert done == Counter({seq: 1 for seq in seqs})
    assert sweeper("audit", "verify").returncode == 0
