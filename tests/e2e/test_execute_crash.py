"""Execution survives kill -9 at any point: re-running finishes the plan, acting once per item.

The SIS is a real SQLite database with FOREIGN KEY constraints; `sweeper execute` runs as a
subprocess with small batches and is killed with SIGKILL after a random delay, again and again,
then run to completion. Afterwards every due student is gone with all dependent rows, every
other row is untouched, the journal holds exactly one finished entry per due item, the audit
log holds exactly one item_done record per due item, and `sweeper audit verify` passes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import Run

STUDENTS = 240
STILL_ENROLLED = range(0, STUDENTS, 4)  # every fourth student has an open enrolment

ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: UTC
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
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


def build_sis(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(
        """
        PRAGMA foreign_keys = ON;
        CREATE TABLE students (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE enrolments (id INTEGER PRIMARY KEY,
            student_id INTEGER NOT NULL REFERENCES students(id), end_date DATE);
        CREATE TABLE grades (id INTEGER PRIMARY KEY,
            student_id INTEGER NOT NULL REFERENCES students(id), grade REAL);
        CREATE TABLE grade_comments (id INTEGER PRIMARY KEY,
            grade_id INTEGER NOT NULL REFERENCES grades(id), comment TEXT);
        """
    )
    for n in range(STUDENTS):
        sid = 1000 + n
        db.execute("INSERT INTO students VALUES (?, ?)", (sid, f"pupil {n}"))
        end = None if n in STILL_ENROLLED else "2015-07-15"
        db.execute("INSERT INTO enrolments (student_id, end_date) VALUES (?, ?)", (sid, end))
        for g in range(2):
            cur = db.execute("INSERT INTO grades (student_id, grade) VALUES (?, ?)", (sid, 6 + g))
            db.execute(
                "INSERT INTO grade_comments (grade_id, comment) VALUES (?, ?)",
                (cur.lastrowid, "ok"),
            )
    db.commit()
    db.close()


def test_kill_9_at_random_points_then_finish(sweeper: Run, tmp_path: Path) -> None:
    """After repeated kill -9 mid-execution, a final run acts on every due item exactly once."""
    build_sis(tmp_path / "sis.db")
    (tmp_path / "ropa.yaml").write_text(ROPA)
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

    db = sqlite3.connect(tmp_path / "sis.db")
    remaining = {r[0] for r in db.execute("SELECT id FROM students")}
    assert remaining == {1000 + n for n in STILL_ENROLLED}
    for table in ("enrolments", "grades"):
        orphans = db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE student_id NOT IN (SELECT id FROM students)"
        ).fetchone()[0]
        assert orphans == 0
    assert db.execute("SELECT COUNT(*) FROM grades").fetchone()[0] == 2 * len(remaining)
    assert db.execute("SELECT COUNT(*) FROM grade_comments").fetchone()[0] == 2 * len(remaining)
    db.close()

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
