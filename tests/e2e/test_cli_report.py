"""`sweeper report PLAN --format html|xlsx` as a privacy officer runs it on the demo estate."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pytest

# The `sweeper` fixture (tests/e2e/conftest.py) runs the console script.
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def demo_plan(sweeper: Run, tmp_path: Path) -> str:
    result = sweeper("demo", "--dir", str(tmp_path / "estate"))
    assert result.returncode == 0, result.stderr
    [report] = (tmp_path / "estate" / "state" / "reports").glob("plan-*.json")
    return str(json.loads(report.read_text())["plan"]["id"])


def test_html_goes_to_the_reports_folder_by_default(
    sweeper: Run, tmp_path: Path, demo_plan: str
) -> None:
    """Without -o the page is written next to the plan's other reports, and says its id."""
    state = str(tmp_path / "estate" / "state")
    result = sweeper("--state-dir", state, "report", demo_plan, "--format", "html")
    assert result.returncode == 0, result.stderr
    page = tmp_path / "estate" / "state" / "reports" / f"plan-{demo_plan}.html"
    assert f"written: {page}" in result.stderr.replace("\n", "")
    html = page.read_text(encoding="utf-8")
    assert f"sweeper --state-dir {state} approve {demo_plan}" in html


def test_lang_nl_writes_dutch_to_stdout(sweeper: Run, tmp_path: Path, demo_plan: str) -> None:
    """--lang nl -o - prints the Dutch page on standard output."""
    state = str(tmp_path / "estate" / "state")
    result = sweeper(
        "--state-dir", state, "report", demo_plan, "--format", "html", "--lang", "nl", "-o", "-"
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.startswith("<!DOCTYPE html>") and "Rapport van de proefrun" in result.stdout
    )


def test_report_language_setting_applies(sweeper: Run, tmp_path: Path, demo_plan: str) -> None:
    """SWEEPER_REPORT_LANGUAGE=nl makes the workbook Dutch without --lang."""
    state = str(tmp_path / "estate" / "state")
    out = tmp_path / "plan.xlsx"
    result = sweeper(
        "--state-dir",
        state,
        "report",
        demo_plan,
        "--format",
        "xlsx",
        "-o",
        str(out),
        extra_env={"SWEEPER_REPORT_LANGUAGE": "nl"},
    )
    assert result.returncode == 0, result.stderr
    book = openpyxl.load_workbook(out)
    assert book.sheetnames[0] == "overzicht" and "pupil-administration" in book.sheetnames


def test_unknown_plan_exits_2_without_writing(sweeper: Run, tmp_path: Path) -> None:
    """A plan id that is not stored exits 2 with a message and leaves no file."""
    out = tmp_path / "r.html"
    result = sweeper("report", "nope", "--format", "html", "-o", str(out))
    assert result.returncode == 2 and "no plan 'nope'" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
