"""The daemon's discover job, run in this process on a small real share."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import sqlalchemy as sa

from sweeper.daemon import Runtime, discover_job
from sweeper.ropa import load_ropa
from sweeper.settings import load_settings
from sweeper.store import Store, discovery_runs


def _runtime(tmp_path: Path) -> Runtime:
    share = tmp_path / "share"
    (share / "exports").mkdir(parents=True)
    (share / "exports" / "leerlingen.csv").write_text("naam;bsn\nA;123456782\n")
    ropa = tmp_path / "ropa.yaml"
    ropa.write_text(
        "controller: {name: S, contact: {name: A}}\n"
        f'systems: [{{id: share, name: S, kind: fileshare, connection: {{root: "{share}"}}}}]\n'
    )
    settings = load_settings(None, state_dir=tmp_path / "state")
    return Runtime(settings, load_ropa(ropa))


def _stored_runs(runtime: Runtime) -> int:
    store = Store.open(runtime.settings.state_database_url)
    try:
        with store.engine.connect() as conn:
            return len(conn.execute(sa.select(discovery_runs.c.id)).all())
    finally:
        store.close()


def test_the_job_reports_the_run_and_its_coverage(tmp_path: Path) -> None:
    """The job's outcome names the run, its stores and findings and the coverage shares."""
    runtime = _runtime(tmp_path)
    outcome = discover_job(runtime)
    assert outcome.result == "ok", outcome.message
    assert outcome.details["stores"] == 1 and outcome.details["findings"] == 1
    assert outcome.details["coverage"]["stores_share"] == 0
    assert outcome.details["errors"] == {}
    assert f"discovery {outcome.details['run']}: 1 store(s), 1 finding(s)" in outcome.message
    assert _stored_runs(runtime) == 1


def test_the_status_counts_the_files_listed_while_a_system_is_discovered(
    tmp_path: Path,
) -> None:
    """STATUS counts what the listing has been through (files here), not the stores done, so
    that a long listing shows progress to systemd and the watchdog."""
    runtime = _runtime(tmp_path)
    (tmp_path / "share" / "exports" / "old.txt").write_text("x")
    (tmp_path / "share" / "cursus.txt").write_text("x")
    said: list[str] = []
    runtime = dataclasses.replace(runtime, on_progress=said.append)
    assert discover_job(runtime).result == "ok"
    assert "discover: discovering share, 3 items" in said, said


def test_a_stop_abandons_the_run_and_stores_nothing(tmp_path: Path) -> None:
    """Asked to stop, the job ends 'stopped' at its next progress report and no run is
    stored (discovery changes nothing, so nothing is left half done)."""
    runtime = _runtime(tmp_path)
    runtime.stop.set()
    outcome = discover_job(runtime)
    assert outcome.result == "stopped"
    assert _stored_runs(runtime) == 0


def test_a_system_that_fails_makes_the_job_failed_with_its_error(tmp_path: Path) -> None:
    """A system that cannot be reached makes the run incomplete: the job is 'failed', names
    the system, and counts it as an error of that system for the metrics."""
    runtime = _runtime(tmp_path)
    ropa = runtime.loaded.path
    ropa.write_text(
        ropa.read_text().replace(
            "]\n", ', {id: gone, name: G, kind: fileshare, connection: {root: "/nonexistent"}}]\n'
        )
    )
    outcome = discover_job(Runtime(runtime.settings, load_ropa(ropa)))
    assert outcome.result == "failed"
    assert "incomplete, failed: gone" in outcome.message
    assert outcome.details["errors"] == {"gone": 1}
