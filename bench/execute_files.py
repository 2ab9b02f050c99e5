"""Benchmark: `sweeper execute` of a plan with 100,000 due files against
`find ROOT -type f -mtime +N -delete` on an identical tree.

    .venv/bin/python bench/execute_files.py [--files 200000]

Two identical trees are built (half the files past a one-year period). The plan and approval
are made before the clock starts; only `sweeper execute` is timed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import SWEEPER, measure

DAY = 86400


def build_tree(root: Path, files: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    now = time.time()
    for n in range(files):
        d = root / f"dept{n // 50_000:02d}" / f"user{n // 500:05d}"
        if n % 500 == 0:
            d.mkdir(parents=True, exist_ok=True)
        path = d / f"document {n:07d}.docx"
        path.write_bytes(b"")
        age = 400 if n % 2 == 0 else 30
        os.utime(path, (now - age * DAY, now - age * DAY))


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / "sweeper-bench" / "work-execute-files"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"building two trees of {args.files} files ...", flush=True)
    build_tree(work / "find-tree", args.files)
    build_tree(work / "sweeper-tree", args.files)
    ropa = work / "ropa.yaml"
    ropa.write_text(
        f"""
controller: {{name: Bench, contact: {{name: Bench}}, dpo: {{name: FG}}}}
systems:
  - {{id: share, name: Share, kind: fileshare, owner: IT,
      connection: {{root: "{work / "sweeper-tree"}"}}}}
activities:
  - id: homes
    name: Home folders
    retention: {{period: P1Y, clock: modified, action: delete}}
    locations:
      - {{system: share, include: ["**"]}}
"""
    )
    env = {"SWEEPER_STATE_DIR": str(work / "state"), "SWEEPER_MAX_ITEMS_PER_RUN": "10000000"}
    measure("sweeper plan (untimed set-up)", [*SWEEPER, "plan", "--ropa", str(ropa)], env=env)
    plan_id = sorted((work / "state" / "reports").glob("plan-*.json"))[-1].stem[5:]
    measure("approve", [*SWEEPER, "approve", plan_id, "--by", "bench"], env=env)
    baseline = measure(
        "find -type f -mtime +365 -delete",
        ["find", str(work / "find-tree"), "-type", "f", "-mtime", "+365", "-delete"],
    )
    ours = measure("sweeper execute", [*SWEEPER, "execute", plan_id], env=env)
    print(baseline)
    print(ours)
    print(
        f"files left: find {count_files(work / 'find-tree')}, "
        f"sweeper {count_files(work / 'sweeper-tree')}"
    )
    ratio = ours.seconds / baseline.seconds
    print(
        f"ratio sweeper / find: {ratio:.2f}x (target <= 2x: "
        f"{'within' if ratio <= 2 else 'OVER'}); sweeper peak RSS {ours.peak_rss_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
