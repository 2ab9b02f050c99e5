"""Benchmark: what the daemon's execute job adds to a plain `sweeper execute`, and what an idle
daemon costs.

    .venv/bin/python bench/daemon_execute.py [--files 20000] [--idle 30]

Each side deletes the same number of due files from a fresh tree, from an approved plan:
`sweeper execute PLAN` (the baseline) against `sweeper run --once execute` (the job: the
execution lock, job records, the pending-plan query, the stop check per batch, the metrics).
Then a daemon with nothing due runs for --idle seconds and its CPU time is read from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from _common import SWEEPER, measure, report

ROPA = """
controller: {name: Bench, contact: {name: Office}, dpo: {name: FG}}
timezone: Europe/Amsterdam
systems:
  - {id: share, name: Share, kind: fileshare, owner: IT, connection: {root: share}}
activities:
  - id: exports
    name: Old exports
    retention: {period: P1Y, clock: modified, action: delete, limits: {max_fraction: 1}}
    locations:
      - {system: share, include: ["**/*.csv"]}
"""


def estate(root: Path, files: int) -> tuple[dict[str, str], str]:
    """Build a tree with `files` due files, plan and approve it; return env and plan id."""
    if root.exists():
        shutil.rmtree(root)
    old = time.time() - 3 * 365 * 86400
    for n in range(files):
        path = root / "share" / f"dept{n % 20}" / f"export {n:06d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"id;name\n")
        os.utime(path, (old, old))
    (root / "ropa.yaml").write_text(ROPA)
    env = {
        "SWEEPER_STATE_DIR": str(root / "state"),
        "SWEEPER_ROPA": str(root / "ropa.yaml"),
        "SWEEPER_MAX_ITEMS_PER_RUN": str(files),
    }
    subprocess.run([*SWEEPER, "plan"], env={**os.environ, **env}, check=True, capture_output=True)
    [report_path] = (root / "state" / "reports").glob("plan-*.json")
    plan_id = json.loads(report_path.read_text())["plan"]["id"]
    subprocess.run(
        [*SWEEPER, "approve", plan_id, "--by", "bench"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return env, plan_id


def idle_cpu(root: Path, seconds: int) -> float:
    """Run a daemon with an empty timetable slot for `seconds`; return its CPU seconds."""
    env = {
        **os.environ,
        "SWEEPER_STATE_DIR": str(root / "state"),
        "SWEEPER_ROPA": str(root / "ropa.yaml"),
        "SWEEPER_SCHEDULE__PLAN": "daily at 02:00",
        "SWEEPER_SCHEDULE__EXECUTE": "every hour",
    }
    proc = subprocess.Popen([*SWEEPER, "daemon"], env=env, stderr=subprocess.DEVNULL)
    time.sleep(5)  # start-up (imports, checks) is not idle time
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    before = cpu()
    time.sleep(seconds)
    used = cpu() - before
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    return used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--idle", type=int, default=30)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sweeper-bench-daemon-"))
    try:
        env, plan_id = estate(base / "cli", args.files)
        baseline = measure(
            f"execute PLAN ({args.files} files)", [*SWEEPER, "execute", plan_id], env=env
        )
        env, _ = estate(base / "job", args.files)
        job = measure(
            f"run --once execute ({args.files} files)",
            [*SWEEPER, "run", "--once", "execute"],
            env=env,
        )
        report(baseline, job, target=1.1)
        used = idle_cpu(base / "job", args.idle)
        print(f"idle daemon: {used:.2f} s CPU in {args.idle} s ({used / args.idle:.2%} of a core)")
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
