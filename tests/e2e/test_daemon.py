"""`sweeper daemon` under a test that plays systemd: READY, STATUS and WATCHDOG on its notify
socket, SIGTERM and SIGHUP, on the demo estate (a real SQLite SIS and a real file tree)."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_process import Daemon, base_env, free_port, job_runs


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    """The demo estate's RoPA (a SQLite SIS, a decommissioned SIS and a file share)."""
    from sweeper.demo import build_estate

    return build_estate(tmp_path / "estate")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; killed and closed afterwards whatever happened."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


def status(tmp_path: Path, env: dict[str, str]) -> list[dict]:
    """The next runs as `sweeper status` tells them."""
    result = subprocess.run(
        [sys.executable, "-m", "sweeper", "status", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return list(json.loads(result.stdout)["next_runs"])


def newest_plan(state: Path) -> tuple[str, str]:
    db = sqlite3.connect(state / "state.db")
    try:
        row = db.execute(
            "SELECT id, ropa_digest FROM plans WHERE state = 'ready' ORDER BY created_at DESC"
        ).fetchone()
    finally:
        db.close()
    assert row is not None
    return row[0], row[1]


def test_ready_then_status_and_watchdog_then_clean_stop(
    tmp_path: Path, estate: Path, daemons: list[Daemon]
) -> None:
    """READY=1 comes first, STATUS says what runs, WATCHDOG=1 pings; SIGTERM exits 0."""
    key = "audit-key-" + "k" * 40
    env = base_env(
        tmp_path,
        SWEEPER_ROPA=str(estate),
        SWEEPER_SCHEDULE__PLAN="every 2 seconds",
        SWEEPER_CREDENTIALS__AUDIT_KEY=key,
    )
    daemon = Daemon(tmp_path, env)
    daemons.append(daemon)
    ready = daemon.ready()
    assert ready["STATUS"].startswith("idle; next: plan at ")
    daemon.status("plan: scanning")
    daemon.status("plan: ok: plan ")
    daemon.notify.wait_for(
        lambda m: m.get("WATCHDOG") == "1" and float(m["_at"]) > float(ready["_at"]) + 1.5
    )
    running = status(tmp_path, env)
    assert {n["daemon"] for n in running} == {f"pid {daemon.proc.pid} on {socket.gethostname()}"}
    [plan_next] = [n for n in running if n["job"] == "plan"]
    assert plan_next["timing"] == "every 2 seconds" and plan_next["next"]
    first_ready = daemon.notify.messages.index(ready)
    assert all("READY" not in m for m in daemon.notify.messages[:first_ready])
    assert not any(
        "plan:" in s for s in [m.get("STATUS", "") for m in daemon.notify.messages[:first_ready]]
    )
    assert daemon.stop() == 0
    daemon.notify.wait_for(lambda m: m.get("STOPPING") == "1", timeout=5)
    assert {n["daemon"] for n in status(tmp_path, env)} == {None}
    runs = job_runs(tmp_path / "state", "plan")
    assert runs and all(r["result"] == "ok" for r in runs)
    assert all(r["trigger"] == "schedule" for r in runs)
    records = daemon.log()  # JSON lines: not a terminal
    assert any(r["event"] == "daemon ready" for r in records)
    metrics = (tmp_path / "state" / "metrics" / "ropa_sweeper.prom").read_text()
    assert key not in daemon.stderr_path.read_text() + metrics + json.dumps(status(tmp_path, env))


def test_sigterm_during_a_dry_run_abandons_it_and_exits_0(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    """SIGTERM while a plan is scanned: exit 0 within seconds; the plan stays unfinished."""
    share = tmp_path / "share"
    for n in range(20_000):
        if n % 500 == 0:
            (share / f"d{n // 500}").mkdir(parents=True)
        (share / f"d{n // 500}" / f"f{n}.csv").write_bytes(b"")
    (tmp_path / "ropa.yaml").write_text(
        "controller: {name: S, contact: {name: O}, dpo: {name: F}}\n"
        "timezone: UTC\n"
        "systems: [{id: share, name: S, kind: fileshare, owner: IT, connection: {root: share}}]\n"
        "activities:\n"
        "  - {id: csv, name: C, retention: {period: P1Y, clock: modified, action: delete},\n"
        "     locations: [{system: share, include: ['**/*.csv']}]}\n"
    )
    env = base_env(
        tmp_path,
        SWEEPER_ROPA=str(tmp_path / "ropa.yaml"),
        SWEEPER_SCHEDULE__PLAN="every 1 second",
    )
    daemon = Daemon(tmp_path, env)
    daemons.append(daemon)
    daemon.ready()
    daemon.status("plan: scanning")
    stopped = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0
    assert time.monotonic() - stopped < 10
    [run] = job_runs(tmp_path / "state", "plan")
    assert run["result"] == "stopped", run
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    assert [r[0] for r in db.execute("SELECT state FROM plans")] == ["building"]
    db.close()


def test_sighup_with_a_broken_ropa_keeps_the_old_one(
    tmp_path: Path, estate: Path, daemons: list[Daemon]
) -> None:
    """After SIGHUP with an invalid RoPA, every problem is logged and plans use the old RoPA."""
    env = base_env(tmp_path, SWEEPER_ROPA=str(estate), SWEEPER_SCHEDULE__PLAN="every 2 seconds")
    daemon = Daemon(tmp_path, env)
    daemons.append(daemon)
    daemon.ready()
    daemon.status("plan: ok")
    _, digest = newest_plan(tmp_path / "state")
    good = estate.read_text()
    broken = good.replace("period: P5Y", "period: P5X").replace(
        "system: sis\n", "system: nope\n", 1
    )
    estate.write_text(broken)
    before = len(daemon.notify.messages)
    daemon.signal(signal.SIGHUP)
    daemon.notify.wait_for(
        lambda m: "reload refused" in m.get("STATUS", "") and m.get("READY") == "1"
    )
    problems = [r["problem"] for r in daemon.log() if r["event"] == "reload refused"]
    assert any("P5X" in p for p in problems) and any("nope" in p for p in problems)
    count = len(job_runs(tmp_path / "state", "plan"))
    daemon.notify.wait_for(
        lambda m: "plan: ok" in m.get("STATUS", "") and daemon.notify.messages.index(m) > before
    )
    assert len(job_runs(tmp_path / "state", "plan")) > count
    assert newest_plan(tmp_path / "state")[1] == digest
    assert daemon.proc.poll() is None

    estate.write_text(good.replace("name: Pupil administration", "name: Pupil admin"))
    daemon.signal(signal.SIGHUP)
    daemon.status("reloaded")
    daemon.notify.wait_for(
        lambda m: "plan: ok" in m.get("STATUS", "") and newest_plan(tmp_path / "state")[1] != digest
    )
    assert daemon.stop() == 0


def test_discover_job_runs_on_the_timetable_says_what_it_does_and_is_recorded(
    tmp_path: Path, estate: Path, daemons: list[Daemon]
) -> None:
    """With discover on the timetable, STATUS says which system it discovers and how the run
    ended; the run is recorded as a job, audited, and in the metrics."""
    env = base_env(tmp_path, SWEEPER_ROPA=str(estate), SWEEPER_SCHEDULE__DISCOVER="every 2 seconds")
    daemon = Daemon(tmp_path, env)
    daemons.append(daemon)
    daemon.ready()
    daemon.status("discover: discovering sis")
    daemon.status("discover: sampling the stores")
    done = daemon.status("discover: ok: discovery ")
    assert daemon.stop() == 0
    runs = job_runs(tmp_path / "state", "discover")
    assert {r["trigger"] for r in runs} == {"schedule"}
    assert {r["result"] for r in runs} <= {"ok", "stopped"}  # SIGTERM may stop a later one
    ids = [json.loads(r["details"])["run"] for r in runs if r["result"] == "ok"]
    assert any(f"discovery {run_id}:" in done["STATUS"] for run_id in ids)
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    stored = {r[0] for r in db.execute("SELECT id FROM discovery_runs")}
    db.close()
    assert stored == set(ids)
    audit = "".join(p.read_text() for p in (tmp_path / "state" / "audit").glob("*.jsonl"))
    assert audit.count('"event":"discovery_run"') == len(ids)
    text = (tmp_path / "state" / "metrics" / "ropa_sweeper.prom").read_text()
    assert 'sweeper_job_last_run_success{job="discover"} 1.0' in text
    assert "sweeper_coverage_stores_registered_ratio" in text


def test_metrics_are_served_on_loopback_and_match_the_plan(
    tmp_path: Path, estate: Path, daemons: list[Daemon]
) -> None:
    """With metrics.listen, GET /metrics parses and its item counts are the plan's."""
    import urllib.request

    port = free_port()
    env = base_env(
        tmp_path,
        SWEEPER_ROPA=str(estate),
        SWEEPER_SCHEDULE__PLAN="every 2 seconds",
        SWEEPER_METRICS__LISTEN=f"127.0.0.1:{port}",
    )
    daemon = Daemon(tmp_path, env)
    daemons.append(daemon)
    daemon.ready()
    daemon.status("plan: ok")
    time.sleep(0.5)  # the metrics are published right after the job's status
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert daemon.stop() == 0
    report = tmp_path / "state" / "reports" / f"plan-{metric_plan(text)}.json"
    plan = json.loads(report.read_text())
    served = items_metric(text)
    assert served == expected_items(plan, served)


def metric_plan(text: str) -> str:
    """The plan id the metrics were read from."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        if family.name == "sweeper_plan_timestamp_seconds":
            return str(family.samples[0].labels["plan"])
    raise AssertionError("no sweeper_plan_timestamp_seconds in the metrics")


def items_metric(text: str) -> dict[tuple[str, str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "sweeper_items":
            for sample in family.samples:
                labels = sample.labels
                found[(labels["activity"], labels["system"], labels["status"])] = sample.value
    return found


def expected_items(plan: dict, metric: dict) -> dict[tuple[str, str, str], float]:
    """The counts per activity, system and status of a plan report, with the metric's zeros."""
    counts: dict[tuple[str, str, str], float] = {k: 0.0 for k, v in metric.items() if v == 0}
    for loc in plan["locations"]:
        for status, count in loc["counts"].items():
            key = (loc["activity"], loc["system"], status)
            counts[key] = counts.get(key, 0.0) + count
    return counts
