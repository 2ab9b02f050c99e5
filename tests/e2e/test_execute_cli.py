"""Plan → approve → execute on the demo estate (real SQLite and a real file tree), as a
privacy officer and a sysadmin run it: races between plan and execution, holds, limits,
refusals, quarantine and restore."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from cli_run import Run


class Estate:
    def __init__(self, sweeper: Run, root: Path) -> None:
        from sweeper.demo import build_estate

        self.run = sweeper
        self.root = root
        self.ropa = build_estate(root / "estate")
        self.dir = root / "estate"

    def plan(self) -> dict:
        result = self.run("plan", "--ropa", str(self.ropa))
        assert result.returncode == 0, result.stderr
        newest = max(
            (self.root / "state" / "reports").glob("plan-*.json"),
            key=lambda p: p.stat().st_mtime_ns,
        )
        return json.loads(newest.read_text())

    def items(self, plan: dict, activity: str) -> list[dict]:
        return [i for i in plan["items"] if i["activity"] == activity and i["status"] == "due"]

    def sis(self) -> sqlite3.Connection:
        return sqlite3.connect(self.dir / "sis.db")

    def students(self) -> set[str]:
        with self.sis() as db:
            return {str(r[0]) for r in db.execute("SELECT id FROM students")}


@pytest.fixture
def estate(sweeper: Run, tmp_path: Path) -> Estate:
    return Estate(sweeper, tmp_path)


def test_execute_deletes_approved_students_with_dependents(estate: Estate) -> None:
    """An approved plan deletes due students and every dependent row; others stay."""
    plan = estate.plan()
    due = {i["key"] for i in estate.items(plan, "pupil-administration") if i["system"] == "sis"}
    before = estate.students()
    pid = plan["plan"]["id"]
    assert (
        estate.run(
            "approve", pid, "--by", "fg", "--only", "activity=pupil-administration"
        ).returncode
        == 0
    )
    result = estate.run("execute", pid)
    assert result.returncode == 0, result.stdout + result.stderr
    assert estate.students() == before - due
    with estate.sis() as db:
        for table in ("enrolments", "grades", "absences"):
            orphans = db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE student_id NOT IN (SELECT id FROM students)"
            ).fetchone()[0]
            assert orphans == 0


def test_unapproved_plan_is_refused_when_nothing_is_auto_approved(
    estate: Estate, tmp_path: Path
) -> None:
    """Executing a plan with no approval and no auto_approve items exits 2 and acts on nothing."""
    ropa = estate.ropa.read_text().replace("      auto_approve: true\n", "")
    estate.ropa.write_text(ropa)
    plan = estate.plan()
    before = estate.students()
    result = estate.run("execute", plan["plan"]["id"])
    assert result.returncode == 2
    assert "is not approved" in result.stderr and "Traceback" not in result.stderr
    assert estate.students() == before


def test_unknown_plan_is_refused(estate: Estate) -> None:
    """Executing a plan id that does not exist exits 2 with the reason."""
    result = estate.run("execute", "20990101-000000-abcdef")
    assert result.returncode == 2 and "no plan" in result.stderr


def test_rejected_plan_is_refused(estate: Estate) -> None:
    """A rejected plan exits 2 naming who rejected it, and acts on nothing."""
    plan = estate.plan()
    pid = plan["plan"]["id"]
    assert estate.run("approve", pid, "--by", "fg").returncode == 0
    assert estate.run("reject", pid, "--by", "dpo", "--reason", "wrong period").returncode == 0
    before = estate.students()
    result = estate.run("execute", pid)
    assert result.returncode == 2 and "rejected by dpo on " in result.stderr
    assert "wrong period" in result.stderr
    assert estate.students() == before


def test_changed_ropa_is_refused(estate: Estate) -> None:
    """A plan made from an earlier version of the RoPA is refused with that reason."""
    plan = estate.plan()
    pid = plan["plan"]["id"]
    assert estate.run("approve", pid, "--by", "fg").returncode == 0
    estate.ropa.write_text(estate.ropa.read_text().replace("period: P6M", "period: P7M"))
    result = estate.run("execute", pid)
    assert result.returncode == 2 and "another version of the RoPA" in result.stderr


def test_reenrolled_student_is_skipped(estate: Estate) -> None:
    """A student who re-enrols between plan and execution is not deleted."""
    plan = estate.plan()
    due = [i for i in estate.items(plan, "pupil-administration") if i["system"] == "sis"]
    back = due[0]["key"]
    with estate.sis() as db:
        db.execute(
            "INSERT INTO enrolments (student_id, school, start_date, end_date) "
            "VALUES (?, 'back', '2026-09-01', NULL)",
            (int(back),),
        )
    pid = plan["plan"]["id"]
    estate.run("approve", pid, "--by", "fg", "--only", "activity=pupil-administration")
    assert estate.run("execute", pid).returncode == 0
    remaining = estate.students()
    assert back in remaining
    assert not ({i["key"] for i in due[1:]} & remaining)


def test_hold_placed_after_approval_wins(estate: Estate) -> None:
    """A subject hold placed after approval keeps the student and their home folder."""
    plan = estate.plan()
    student = next(
        i["subject"] for i in estate.items(plan, "pupil-administration") if i["system"] == "sis"
    )
    pid = plan["plan"]["id"]
    assert estate.run("approve", pid, "--by", "fg").returncode == 0
    held = estate.run(
        "hold", "add", "--subject", student, "--reason", "complaint 2026-17", "--by", "fg"
    )
    assert held.returncode == 0, held.stderr
    assert estate.run("execute", pid).returncode == 0
    assert student in estate.students()
    home = estate.dir / "share" / "homes" / student
    assert any(home.iterdir())


def test_file_modified_after_planning_is_skipped(estate: Estate) -> None:
    """A due camera recording written to after planning is skipped; the others are deleted."""
    plan = estate.plan()
    recordings = estate.items(plan, "camera-footage")
    assert len(recordings) >= 2
    touched = estate.dir / "share" / recordings[0]["key"]
    old = touched.stat().st_mtime
    touched.write_bytes(b"changed")
    os.utime(touched, (old, old))  # same mtime: the size and inode-level fingerprint still differ
    result = estate.run("execute", plan["plan"]["id"])  # camera footage is auto_approve
    assert result.returncode == 0, result.stdout + result.stderr
    assert touched.exists()
    assert not any((estate.dir / "share" / r["key"]).exists() for r in recordings[1:])


def test_location_over_its_limit_is_blocked_others_go_on(estate: Estate) -> None:
    """A location over its max_items is blocked and untouched; another location executes."""
    text = estate.ropa.read_text().replace(
        '      action: delete\n      source: "Besluit bekostiging WPO art. 6 and 9: at least',
        '      action: delete\n      limits: {max_items: 1}\n      source: "Besluit '
        "bekostiging WPO art. 6 and 9: at least",
    )
    assert "max_items: 1" in text
    estate.ropa.write_text(text)
    plan = estate.plan()
    pid = plan["plan"]["id"]
    before = estate.students()
    assert estate.run("approve", pid, "--by", "fg").returncode == 0
    result = estate.run("execute", pid)
    assert result.returncode == 1
    assert "blocked" in result.stdout and "max_items 1" in result.stdout
    assert estate.students() == before
    assert not any(
        (estate.dir / "share" / r["key"]).exists() for r in estate.items(plan, "camera-footage")
    )


def test_quarantine_then_restore(estate: Estate) -> None:
    """Home folders are moved to quarantine keeping their path, and `restore` brings them back."""
    plan = estate.plan()
    homes = estate.items(plan, "pupil-home-folders")
    assert homes
    pid = plan["plan"]["id"]
    estate.run("approve", pid, "--by", "fg", "--only", "activity=pupil-home-folders")
    result = estate.run("execute", pid)
    assert result.returncode == 0, result.stdout + result.stderr
    first = homes[0]["key"]
    assert not (estate.dir / "share" / first).exists()
    assert (estate.dir / "quarantine" / first).exists()
    restored = estate.run("restore", pid, "--by", "fg", "--item", first)
    assert restored.returncode == 0, restored.stderr
    assert (estate.dir / "share" / first).exists()
    assert not (estate.dir / "quarantine" / first).exists()


def test_audit_records_the_whole_story(estate: Estate) -> None:
    """The audit log verifies and answers what happened to one student, without their id."""
    plan = estate.plan()
    pid = plan["plan"]["id"]
    student = next(
        i["subject"] for i in estate.items(plan, "pupil-administration") if i["system"] == "sis"
    )
    estate.run("approve", pid, "--by", "fg", "--only", "activity=pupil-administration")
    time.sleep(0.01)
    assert estate.run("execute", pid).returncode == 0
    assert estate.run("audit", "verify").returncode == 0
    story = estate.run("audit", "find-subject", student)
    assert story.returncode == 0, story.stderr
    assert "item_done" in story.stdout and "fg" in story.stdout
    raw = b"".join(p.read_bytes() for p in (estate.root / "state" / "audit").glob("*.jsonl"))
    assert f'"{student}"'.encode() not in raw


def test_quarantine_is_purged_after_its_restore_period(estate: Estate) -> None:
    """Once quarantine_for has passed, restore refuses and the next execution purges."""
    text = estate.ropa.read_text().replace(
        "      action: quarantine\n", "      action: quarantine\n      quarantine_for: PT1S\n"
    )
    assert "quarantine_for: PT1S" in text
    estate.ropa.write_text(text)
    plan = estate.plan()
    pid = plan["plan"]["id"]
    first = estate.items(plan, "pupil-home-folders")[0]["key"]
    estate.run("approve", pid, "--by", "fg", "--only", "activity=pupil-home-folders")
    assert estate.run("execute", pid).returncode == 0
    assert (estate.dir / "quarantine" / first).exists()
    time.sleep(1.5)
    late = estate.run("restore", pid, "--by", "fg", "--item", first)
    assert late.returncode == 1 and "could be restored only until" in late.stderr
    again = estate.run("execute", pid)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "purged" in again.stdout
    assert not (estate.dir / "quarantine" / first).exists()
    assert not (estate.dir / "share" / first).exists()
    shown = estate.run("audit", "show", "--event", "item_purged", "--format", "json")
    assert len(json.loads(shown.stdout)) == len(estate.items(plan, "pupil-home-folders"))
