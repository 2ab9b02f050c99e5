"""`sweeper run --once JOB`, as sweeper.timer runs it, and `sweeper status`, on the demo estate
(a real SQLite SIS and a real file tree)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cli_run import Run
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    from sweeper.demo import build_estate

    return build_estate(tmp_path / "estate")


def metrics(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The textfile's samples: metric name -> sorted labels -> value."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_plan_job_writes_metrics_that_match_the_plan(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """After run --once plan, the textfile parses and its numbers are the plan report's."""
    result = sweeper("run", "--once", "plan", "--ropa", str(estate))
    assert result.returncode == 0, result.stderr
    [report] = (tmp_path / "state" / "reports").glob("plan-*.json")
    plan = json.loads(report.read_text())
    found = metrics(tmp_path / "state" / "metrics" / "ropa_sweeper.prom")

    items = found["sweeper_items"]
    for loc in plan["locations"]:
        for status, count in loc["counts"].items():
            key = (("activity", loc["activity"]), ("status", status), ("system", loc["system"]))
            assert items[key] == count
    listed: dict[tuple[str, str, str], int] = {}
    for item in plan["items"]:
        key3 = (item["activity"], item["system"], item["status"])
        listed[key3] = listed.get(key3, 0) + 1
    for (activity, system, status), count in listed.items():
        assert items[(("activity", activity), ("status", status), ("system", system))] == count
    assert (
        sum(v for k, v in items.items() if ("status", "due") in k)
        == plan["summary"]["totals"]["due"]
    )
    [legacy] = plan["summary"]["legacy_systems"]
    system = (("system", legacy["system"]),)
    assert found["sweeper_legacy_system_items"][system] == legacy["items"]
    assert found["sweeper_legacy_system_subjects"][system] == legacy["subjects"]
    assert found["sweeper_legacy_system_reachable"][system] == 1
    assert found["sweeper_job_last_run_success"][(("job", "plan"),)] == 1
    assert found["sweeper_plans_awaiting_approval"][()] == 1


def test_plan_job_writes_the_html_report_next_to_the_json_and_csv(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """run --once plan also writes plan-ID.html, readable by its owner only, in the
    report_language, with the command that approves the plan; the job's record names it."""
    result = sweeper(
        "run", "--once", "plan", "--ropa", str(estate), extra_env={"SWEEPER_REPORT_LANGUAGE": "nl"}
    )
    assert result.returncode == 0, result.stderr
    reports = tmp_path / "state" / "reports"
    [json_report] = reports.glob("plan-*.json")
    plan_id = json_report.stem.removeprefix("plan-")
    assert {p.name for p in reports.glob(f"plan-{plan_id}.*")} == {
        f"plan-{plan_id}.json",
        f"plan-{plan_id}.csv",
        f"plan-{plan_id}.html",
    }
    html = reports / f"plan-{plan_id}.html"
    assert html.stat().st_mode & 0o777 == 0o600
    text = html.read_text()
    assert '<html lang="nl">' in text and f"sweeper approve {plan_id} --by" in text
    state = sqlite3.connect(tmp_path / "state" / "state.db")
    [(details,)] = state.execute("SELECT details FROM job_runs WHERE job = 'plan'").fetchall()
    state.close()
    assert json.loads(details)["html"] == str(html)


def test_plan_job_html_false_writes_json_and_csv_only(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """With plan_job_html false the plan job writes no HTML report."""
    env = {"SWEEPER_PLAN_JOB_HTML": "false"}
    result = sweeper("run", "--once", "plan", "--ropa", str(estate), extra_env=env)
    assert result.returncode == 0, result.stderr
    reports = tmp_path / "state" / "reports"
    assert {p.suffix for p in reports.glob("plan-*")} == {".json", ".csv"}


def test_execute_job_acts_on_auto_approve_rules_from_a_fresh_plan(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """With no approval, run --once execute makes a dry run of the auto_approve activities
    and deletes only their due files; every item it acts on is in that stored plan."""
    camera = estate.parent / "share" / "camera"
    before = {p for p in camera.rglob("*.mp4")}
    with sqlite3.connect(estate.parent / "sis.db") as db:
        students = db.execute("SELECT COUNT(*) FROM students").fetchone()[0]
    result = sweeper("run", "--once", "execute", "--ropa", str(estate))
    assert result.returncode == 0, result.stdout + result.stderr
    after = {p for p in camera.rglob("*.mp4")}
    assert after < before
    with sqlite3.connect(estate.parent / "sis.db") as db:
        assert db.execute("SELECT COUNT(*) FROM students").fetchone()[0] == students
    state = sqlite3.connect(tmp_path / "state" / "state.db")
    [(plan_id, summary)] = state.execute("SELECT id, summary FROM plans").fetchall()
    assert json.loads(summary)["activities"] == ["camera-footage"]
    due = state.execute(
        "SELECT COUNT(*) FROM plan_items WHERE plan_id = ? AND status = 'due'", (plan_id,)
    ).fetchone()[0]
    state.close()
    assert due == len(before - after)
    shown = sweeper("audit", "show", "--event", "item_done", "--format", "json")
    done = json.loads(shown.stdout)
    assert len(done) == due and {r["plan_id"] for r in done} == {plan_id}
    assert {r["details"]["approved_by"][0] for r in done} == {"auto_approve"}
    listed = sweeper("plans")
    assert plan_id in listed.stdout and "auto_approve dry run" in listed.stdout


def test_prune_job_removes_plans_and_reports_past_their_retention(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """run --once prune removes plans older than plan_retention and unfinished ones older
    than plan_max_age, with their reports, audits it, keeps the young plan, and the audit log
    still verifies."""
    for _ in range(3):
        assert sweeper("plan", "--ropa", str(estate)).returncode == 0
    state = sqlite3.connect(tmp_path / "state" / "state.db")
    old, stuck, young = [r[0] for r in state.execute("SELECT id FROM plans ORDER BY created_at")]
    with state:  # made seven months ago (plan_retention is P6M); a dry run that stopped 8 days ago
        state.execute(
            "UPDATE plans SET created_at = datetime(created_at, '-7 months') WHERE id = ?", (old,)
        )
        state.execute(
            "UPDATE plans SET created_at = datetime(created_at, '-8 days'), state = 'building' "
            "WHERE id = ?",
            (stuck,),
        )
    result = sweeper("run", "--once", "prune", "--ropa", str(estate))
    assert result.returncode == 0, result.stderr
    assert "2 plan(s) removed (older than P6M, or unfinished and older than P7D)" in result.stdout
    reports = tmp_path / "state" / "reports"
    assert not list(reports.glob(f"plan-{old}.*")) and not list(reports.glob(f"plan-{stuck}.*"))
    assert {p.name for p in reports.glob("plan-*")} == {f"plan-{young}.json", f"plan-{young}.csv"}
    for table, column in (
        ("plans", "id"),
        ("plan_items", "plan_id"),
        ("plan_locations", "plan_id"),
    ):
        for plan_id in (old, stuck):
            count = state.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (plan_id,))
            assert count.fetchone()[0] == 0
    assert state.execute("SELECT COUNT(*) FROM plan_items WHERE plan_id = ?", (young,)).fetchone()[
        0
    ]
    state.close()
    pruned = json.loads(
        sweeper("audit", "show", "--event", "plans_pruned", "--format", "json").stdout
    )
    assert pruned[0]["details"]["plans"] == [old, stuck]
    assert sweeper("audit", "verify").returncode == 0


def test_status_reports_runs_plans_awaiting_approval_and_legacy_systems(
    sweeper: Run, estate: Path
) -> None:
    """sweeper status, with no daemon running, shows the last run, the plan awaiting approval,
    the next runs and the decommissioned system still holding data."""
    assert sweeper("run", "--once", "plan", "--ropa", str(estate)).returncode == 0
    result = sweeper("status", "--format", "json", extra_env={"SWEEPER_ROPA": str(estate)})
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    [run] = status["last_runs"]
    assert (run["job"], run["result"], run["trigger"]) == ("plan", "ok", "once")
    [waiting] = status["awaiting_approval"]
    assert waiting["plan"] == status["latest_plan"] and waiting["due"] > 0
    assert [s["system"] for s in status["legacy_systems"]] == ["old-sis"]
    assert {n["job"]: n["timing"] for n in status["next_runs"]} == {
        "plan": "daily at 02:00",
        "execute": "every hour",
        "discover": "weekly on sunday at 03:00",
        "prune": "daily at 04:00",
    }
    assert status["lock"] is None
    text = sweeper("status", extra_env={"SWEEPER_ROPA": str(estate)})
    assert "plans awaiting approval" in text.stdout and "old-sis" in text.stdout


def test_discover_job_stores_an_audited_run_and_its_report(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """run --once discover stores a discovery run with its coverage, writes its JSON report,
    audits it and records the job; it changes nothing on the estate."""
    with sqlite3.connect(estate.parent / "sis.db") as db:
        students = db.execute("SELECT COUNT(*) FROM students").fetchone()[0]
    files = sorted(p for p in (estate.parent / "share").rglob("*") if p.is_file())
    result = sweeper("run", "--once", "discover", "--ropa", str(estate))
    assert result.returncode == 0, result.stderr
    [report_path] = (tmp_path / "state" / "reports").glob("discovery-*.json")
    report = json.loads(report_path.read_text())
    run_id = report["run"]["id"]
    assert f"discover: ok: discovery {run_id}: {len(report['stores'])} store(s)" in result.stdout
    assert report["coverage"]["legacy_systems_with_data"] == 1
    state = sqlite3.connect(tmp_path / "state" / "state.db")
    [(job, trigger, outcome, details)] = state.execute(
        "SELECT job, trigger, result, details FROM job_runs"
    ).fetchall()
    assert (job, trigger, outcome) == ("discover", "once", "ok")
    assert json.loads(details)["run"] == run_id
    state.close()
    shown = json.loads(sweeper("audit", "show", "--format", "json").stdout)
    assert [r["details"]["run_id"] for r in shown if r["event"] == "discovery_run"] == [run_id]
    with sqlite3.connect(estate.parent / "sis.db") as db:
        assert db.execute("SELECT COUNT(*) FROM students").fetchone()[0] == students
    assert sorted(p for p in (estate.parent / "share").rglob("*") if p.is_file()) == files


def test_discover_job_writes_coverage_metrics_that_match_the_stored_run(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """After run --once discover, the textfile parses and its coverage shares and counts of
    unregistered stores per system are those of the stored run."""
    result = sweeper("run", "--once", "discover", "--ropa", str(estate))
    assert result.returncode == 0, result.stderr
    found = metrics(tmp_path / "state" / "metrics" / "ropa_sweeper.prom")
    state = sqlite3.connect(tmp_path / "state" / "state.db")
    [(run_id, registered, stores, personal_registered, personal, legacy)] = state.execute(
        "SELECT run_id, stores_registered, stores, personal_stores_registered, "
        "personal_stores, legacy_systems_with_data FROM discovery_coverage"
    ).fetchall()
    rows = state.execute(
        "SELECT system, registration, personal_data, items, finding, status "
        "FROM discovery_stores WHERE run_id = ?",
        (run_id,),
    ).fetchall()
    state.close()
    assert found["sweeper_discovery_timestamp_seconds"].keys() == {(("run", run_id),)}
    assert found["sweeper_coverage_stores_registered_ratio"][()] == round(registered / stores, 4)
    assert found["sweeper_coverage_personal_stores_registered_ratio"][()] == round(
        personal_registered / personal, 4
    )
    assert found["sweeper_coverage_activities_enforceable_ratio"][()] == 1
    assert found["sweeper_coverage_legacy_systems_with_data"][()] == legacy == 1
    unregistered: dict[tuple[tuple[str, str], ...], float] = {}
    for system, registration, _, items, _, _ in rows:
        key = (("system", system),)
        unregistered[key] = unregistered.get(key, 0) + (registration != "registered" and items != 0)
    assert found["sweeper_discovery_unregistered_stores"] == unregistered
    assert sum(unregistered.values()) == stores - registered
    open_findings = sum(1 for r in rows if r[4] is not None and r[5] != "acknowledged")
    assert sum(found["sweeper_discovery_open_findings"].values()) == open_findings
    assert found["sweeper_job_last_run_success"][(("job", "discover"),)] == 1


def test_status_shows_the_latest_coverage_and_its_trend(
    sweeper: Run, estate: Path, tmp_path: Path
) -> None:
    """sweeper status gives the latest discovery run's coverage, the runs before it oldest
    first, and how the shares moved: an unregistered export added between two runs lowers
    the share of registered stores."""
    env = {"SWEEPER_ROPA": str(estate)}
    assert sweeper("run", "--once", "discover", "--ropa", str(estate)).returncode == 0
    export = estate.parent / "share" / "export-2019"
    export.mkdir()
    (export / "leerlingen.csv").write_text("naam;bsn\nA. de Vries;123456782\n")
    assert sweeper("run", "--once", "discover", "--ropa", str(estate)).returncode == 0
    result = sweeper("status", "--format", "json", extra_env=env)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    state = sqlite3.connect(tmp_path / "state" / "state.db")
    runs = [
        r[0]
        for r in state.execute(
            "SELECT c.run_id FROM discovery_coverage c JOIN discovery_runs r ON r.id = c.run_id "
            "ORDER BY r.started_at"
        )
    ]
    [(registered, stores)] = state.execute(
        "SELECT stores_registered, stores FROM discovery_coverage WHERE run_id = ?", (runs[-1],)
    ).fetchall()
    state.close()
    assert [c["run_id"] for c in status["coverage_trend"]] == runs
    assert status["coverage"]["run_id"] == runs[-1]
    assert (status["coverage"]["stores_registered"], status["coverage"]["stores"]) == (
        registered,
        stores,
    )
    first, latest = status["coverage_trend"]
    assert latest["stores_share"] < first["stores_share"]
    assert status["coverage_change"]["stores_share"] < 0
    text = sweeper("status", extra_env=env).stdout
    assert "coverage, oldest run first" in text and "since the run before" in text


def test_run_without_once_says_how(sweeper: Run, estate: Path) -> None:
    """sweeper run JOB without --once is a usage error that names sweeper daemon."""
    result = sweeper("run", "plan", "--ropa", str(estate))
    assert result.returncode == 2
    assert "sweeper daemon" in result.stderr
