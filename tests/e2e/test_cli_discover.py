"""`sweeper discover` and its subcommands as a user runs them, on a SQLite SIS and a share."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from cli_run import Run
from test_cli_plan import sqlite_checksum, tree_checksum

ROPA = """\
controller: {name: Voorbeeldschool, contact: {name: Administratie}, dpo: {name: FG}}
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
  - {id: share, name: Fileserver, kind: fileshare, owner: IT, connection: {root: share}}
activities:
  - id: pupils
    name: Leerlingadministratie
    retention: {period: P5Y, clock: {column: created_at}, action: delete}
    locations:
      - {system: sis, table: students, key: id}
"""


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """A SIS with a registered table and an unregistered export, and a share with an
    exported CSV of pupils and a folder of course material; return the RoPA's path."""
    db = sqlite3.connect(tmp_path / "sis.db")
    db.execute("CREATE TABLE students (id INTEGER PRIMARY KEY, naam TEXT, created_at TEXT)")
    db.execute("CREATE TABLE export_2019 (id INTEGER PRIMARY KEY, naam TEXT, bsn TEXT)")
    for n in range(20):
        db.execute("INSERT INTO students VALUES (?, ?, '2018-09-01')", (n, f"Leerling {n}"))
        db.execute("INSERT INTO export_2019 VALUES (?, ?, '123456782')", (n, f"Leerling {n}"))
    db.commit()
    db.close()
    (tmp_path / "share" / "exports").mkdir(parents=True)
    (tmp_path / "share" / "exports" / "pupils.csv").write_text(
        "naam;bsn\n" + "Leerling;111222333\n" * 30
    )
    (tmp_path / "share" / "courses").mkdir()
    (tmp_path / "share" / "courses" / "les 1.txt").write_text("Breuken: 1/2 + 1/3 = 5/6\n")
    ropa = tmp_path / "ropa.yaml"
    ropa.write_text(ROPA)
    return ropa


def _report(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    reports = sorted((tmp_path / "state" / "reports").glob("discovery-*.json"))
    return json.loads(reports[-1].read_text())  # type: ignore[no-any-return]


def _finding(report: dict, where: str) -> dict:  # type: ignore[type-arg]
    return next(f for f in report["findings"] if f["where"] == where)


def test_discover_prints_ranked_findings_and_coverage_and_changes_nothing(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """The run ranks the export CSV and the unregistered table above the course material,
    prints the coverage, writes the report and leaves every file and row as it was."""
    before = (tree_checksum(tmp_path / "share"), sqlite_checksum(tmp_path / "sis.db"))
    result = sweeper("discover", "--ropa", str(estate))
    assert result.returncode == 0, result.stderr
    assert "findings of run" in result.stdout and "coverage" in result.stdout
    report = _report(tmp_path)
    assert report["format"] == "ropa-sweeper/discovery-report/1"
    ranked = [f["where"] for f in report["findings"]]
    assert ranked.index("exports") < ranked.index("courses")
    assert ranked.index("export_2019") < ranked.index("courses")
    assert report["coverage"]["stores_registered"] == 1 and report["coverage"]["stores"] == 4
    assert "111222333" not in json.dumps(report) and "123456782" not in json.dumps(report)
    after = (tree_checksum(tmp_path / "share"), sqlite_checksum(tmp_path / "sis.db"))
    assert after == before


def test_a_suggested_location_pasted_into_the_ropa_registers_the_store(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """`suggest` prints a location that, pasted under an activity, makes its store registered
    on the next run."""
    assert sweeper("discover", "--ropa", str(estate)).returncode == 0
    for where in ("export_2019", "exports"):
        finding = _finding(_report(tmp_path), where)
        result = sweeper("discover", "suggest", "--finding", finding["id"])
        assert result.returncode == 0, result.stderr
        location = "\n".join(
            line for line in result.stdout.splitlines() if not line.startswith("#")
        )
        estate.write_text(estate.read_text() + textwrap.indent(location, "      ") + "\n")
        assert sweeper("validate", str(estate)).returncode == 0
    assert sweeper("discover", "--ropa", str(estate)).returncode == 0
    report = _report(tmp_path)
    registered = {s["where"] for s in report["stores"] if s["registration"] == "registered"}
    assert {"students", "export_2019", "exports"} <= registered
    assert {f["where"] for f in report["findings"]} == {"courses"}


def test_an_acknowledged_finding_stops_appearing_and_is_audited(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """`acknowledge` hides the finding from the next runs and writes an audit record."""
    assert sweeper("discover", "--ropa", str(estate)).returncode == 0
    courses = _finding(_report(tmp_path), "courses")
    result = sweeper(
        "discover", "acknowledge", courses["id"], "--reason", "course material", "--by", "fg"
    )
    assert result.returncode == 0, result.stderr
    assert sweeper("discover", "--ropa", str(estate)).returncode == 0
    report = _report(tmp_path)
    assert "courses" not in {f["where"] for f in report["findings"]}
    assert [a["where"] for a in report["acknowledged"]] == ["courses"]
    shown = sweeper("audit", "show", "--format", "json")
    events = [record["event"] for record in json.loads(shown.stdout)]
    assert events.count("discovery_run") == 2 and "discovery_acknowledged" in events


def test_a_finding_turned_into_a_review_item_is_listed(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """`review` opens a review item that `reviews` lists and the next run marks."""
    assert sweeper("discover", "--ropa", str(estate)).returncode == 0
    export = _finding(_report(tmp_path), "exports")
    result = sweeper("discover", "review", export["id"], "--reason", "delete it", "--by", "fg")
    assert result.returncode == 0, result.stderr
    listed = sweeper("discover", "reviews")
    assert export["id"] in listed.stdout and "delete it" in listed.stdout
    assert sweeper("discover", "--ropa", str(estate)).returncode == 0
    assert _finding(_report(tmp_path), "exports")["status"] == "under_review"


def test_an_unknown_finding_is_a_clear_error(sweeper: Run, estate: Path) -> None:
    """An id no run holds exits 2 with a message, no traceback."""
    result = sweeper("discover", "suggest", "--finding", "dnothing")
    assert result.returncode == 2
    assert "no finding 'dnothing'" in result.stderr and "Traceback" not in result.stderr


def test_an_invalid_discovery_section_names_file_line_and_field(sweeper: Run, estate: Path) -> None:
    """A target naming an unknown system, and SQL options on a share, are errors with the
    file, line and dotted path; nothing is discovered."""
    estate.write_text(
        estate.read_text()
        + "discovery:\n  targets:\n    - {system: nope}\n    - {system: share, schemas: [x]}\n"
        + "  patterns:\n    - {id: bsn, regex: '\\d+'}\n"
    )
    result = sweeper("discover", "--ropa", str(estate))
    assert result.returncode == 2
    assert "discovery.targets[0].system: unknown system 'nope'" in result.stderr
    assert "discovery.targets[1].schemas: schemas is for SQL systems" in result.stderr
    assert "discovery.patterns[0].id: 'bsn' is a built-in detector" in result.stderr
    assert f"{estate}:" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_system_fails_the_run_but_not_the_others(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """A share root that is gone is reported and exits 1; the SIS is still discovered."""
    estate.write_text(estate.read_text().replace("root: share", "root: gone"))
    result = sweeper("discover", "--ropa", str(estate))
    assert result.returncode == 1
    assert "system share: failed" in result.stdout
    report = _report(tmp_path)
    assert report["run"]["complete"] is False
    assert {s["system"] for s in report["stores"]} == {"sis"}
