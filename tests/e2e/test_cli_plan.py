"""`sweeper demo`, `plan`, `plans` and `report` as a user runs them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import textwrap
from pathlib import Path

from cli_run import Run


def tree_checksum(root: Path) -> str:
    """Hash every path, size, mtime, atime and content under root (links not followed)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            digest.update(f"{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_atime_ns}\n".encode())
            if path.is_file() and not path.is_symlink():
                # O_NOATIME: reading for the checksum must not change the atime it checks.
                fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
                try:
                    while chunk := os.read(fd, 1 << 16):
                        digest.update(chunk)
                finally:
                    os.close(fd)
    return digest.hexdigest()


def sqlite_checksum(path: Path) -> str:
    """Hash every row of every table of a SQLite database."""
    digest = hashlib.sha256()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in sorted(tables):
        for row in db.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
            digest.update(repr(row).encode())
    db.close()
    return digest.hexdigest()


def test_demo_runs_and_prints_report_paths(sweeper: Run, tmp_path: Path) -> None:
    """`sweeper demo` builds the estate, dry-runs it, and prints where the reports are."""
    result = sweeper("demo", "--dir", str(tmp_path / "estate"))
    assert result.returncode == 0, result.stderr
    assert "reports:" in result.stdout
    reports = list((tmp_path / "estate" / "state" / "reports").glob("plan-*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    totals = report["summary"]["totals"]
    assert totals["due"] > 0 and totals["not_due"] > 0 and totals["legacy_due"] == 25
    activities = {item["activity"] for item in report["items"] if item["status"] == "due"}
    assert {"pupil-administration", "camera-footage", "job-applications", "exports"} <= activities
    [legacy] = report["summary"]["legacy_systems"]
    assert legacy["system"] == "old-sis" and legacy["reachable"] is True


def test_dry_run_changes_nothing(sweeper: Run, tmp_path: Path) -> None:
    """A plan leaves every SQL table and every file (content, mtime, atime) as it was."""
    estate = tmp_path / "estate"
    assert sweeper("demo", "--dir", str(estate)).returncode == 0
    before = (
        sqlite_checksum(estate / "sis.db"),
        sqlite_checksum(estate / "old-sis.db"),
        tree_checksum(estate / "share"),
    )
    result = sweeper("plan", "--ropa", str(estate / "ropa.yaml"))
    assert result.returncode == 0, result.stderr
    after = (
        sqlite_checksum(estate / "sis.db"),
        sqlite_checksum(estate / "old-sis.db"),
        tree_checksum(estate / "share"),
    )
    assert before == after


def test_student_with_open_enrolment_is_not_due(sweeper: Run, tmp_path: Path) -> None:
    """A re-enrolled student (newer open enrolment) is never listed as due."""
    estate = tmp_path / "estate"
    assert sweeper("demo", "--dir", str(estate)).returncode == 0
    db = sqlite3.connect(estate / "sis.db")
    open_students = {
        str(r[0]) for r in db.execute("SELECT student_id FROM enrolments WHERE end_date IS NULL")
    }
    db.close()
    [report] = (estate / "state" / "reports").glob("plan-*.json")
    due = {
        i["subject"]
        for i in json.loads(report.read_text())["items"]
        if i["activity"] == "pupil-administration" and i["system"] == "sis"
    }
    assert due and not (due & open_students)


def test_dependent_rows_are_counted_per_student(sweeper: Run, tmp_path: Path) -> None:
    """Each due student shows how many rows it has in each dependent table."""
    estate = tmp_path / "estate"
    assert sweeper("demo", "--dir", str(estate)).returncode == 0
    [report] = (estate / "state" / "reports").glob("plan-*.json")
    item = next(
        i for i in json.loads(report.read_text())["items"] if i["location"] == "sis:students"
    )
    db = sqlite3.connect(estate / "sis.db")
    grades = db.execute("SELECT COUNT(*) FROM grades WHERE student_id = ?", (item["key"],))
    assert item["details"]["dependents"]["grades"] == grades.fetchone()[0]
    db.close()


def test_plans_lists_and_report_renders_csv(sweeper: Run, tmp_path: Path) -> None:
    """`plans` lists the stored plan; `report --format csv` renders one row per item."""
    estate = tmp_path / "estate"
    assert sweeper("demo", "--dir", str(estate)).returncode == 0
    state = ["--state-dir", str(estate / "state")]
    listing = sweeper(*state, "plans")
    assert listing.returncode == 0
    [report] = (estate / "state" / "reports").glob("plan-*.json")
    plan = json.loads(report.read_text())
    assert plan["plan"]["id"] in listing.stdout
    rendered = sweeper(*state, "report", plan["plan"]["id"], "--format", "csv")
    assert rendered.returncode == 0, rendered.stderr
    rows = list(csv.DictReader(io.StringIO(rendered.stdout)))
    assert len(rows) == plan["plan"]["item_count"] == len(plan["items"])
    assert {r["status"] for r in rows} >= {"due", "legacy_due"}


def test_unknown_plan_is_a_clear_error(sweeper: Run) -> None:
    """Rendering a plan that does not exist exits 2 with a message, not a traceback."""
    result = sweeper("report", "nope")
    assert result.returncode == 2
    assert "no plan 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_ropa_stops_before_any_system(sweeper: Run, tmp_path: Path) -> None:
    """An invalid RoPA exits 2 with every problem, and no plan is stored."""
    ropa = tmp_path / "ropa.yaml"
    ropa.write_text("controller: {name: X}\nactivities:\n  - {id: a, name: A, retension: {}}\n")
    result = sweeper("plan", "--ropa", str(ropa))
    assert result.returncode == 2
    assert f"{ropa}:1: error: controller.contact: required field is missing" in result.stderr
    assert f"{ropa}:3: error: activities[0].retension: unknown field" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "state.db").exists()


def test_unreachable_system_reported_others_scanned(sweeper: Run, tmp_path: Path) -> None:
    """A system that does not answer is reported without its password; the rest is scanned."""
    estate = tmp_path / "estate"
    assert sweeper("demo", "--dir", str(estate)).returncode == 0
    ropa = (estate / "ropa.yaml").read_text()
    ropa = ropa.replace(
        "systems:\n",
        textwrap.dedent(
            """\
            systems:
              - id: crm
                name: CRM
                kind: sql
                owner: IT
                connection:
                  url: postgresql+psycopg://sweeper@127.0.0.1:1/crm
                  credential: crm
            """
        ),
        1,
    )
    ropa += textwrap.indent(
        textwrap.dedent(
            """
          - id: crm-contacts
            name: CRM contacts
            retention: {period: P1Y, clock: {column: created}, action: delete}
            locations:
              - {system: crm, table: contacts, key: id}
        """
        ),
        "  ",
    )
    (estate / "ropa.yaml").write_text(ropa)
    result = sweeper(
        "plan",
        "--ropa",
        str(estate / "ropa.yaml"),
        extra_env={"SWEEPER_CREDENTIALS__CRM": "s3cret-Pa55"},
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "s3cret-Pa55" not in output
    assert "crm" in result.stdout and "failed" in result.stdout
    [report] = (tmp_path / "state" / "reports").glob("plan-*.json")
    data = json.loads(report.read_text())
    assert "crm" in data["summary"]["failed_systems"]
    assert "s3cret-Pa55" not in report.read_text()
    assert data["summary"]["totals"]["due"] > 0
