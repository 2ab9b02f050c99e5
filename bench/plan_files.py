"""Benchmark: a complete `sweeper plan` of a 200,000-file tree, half past due, against
`find ROOT -type f -mtime +N` listing the same files.

    .venv/bin/python bench/plan_files.py [--files 200000] [--dir /var/tmp/sweeper-bench]

The tree is built once and reused (its ages are relative to when it was built, far from the
cutoff, so a rebuild is not needed for a week). Each command runs three times after a warm-up;
the fastest wall time counts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import SWEEPER, best_of, measure, report

DAY = 86400


def build_tree(root: Path, files: int) -> None:
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == str(files):
        return
    if root.exists():
        shutil.rmtree(root)
    now = time.time()
    per_dir = 500
    for n in range(files):
        d = root / f"dept{n // 50_000:02d}" / f"user{n // per_dir:05d}"
        if n % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        path = d / f"document {n:07d}.docx"
        path.write_bytes(b"")
        age = 400 if n % 2 == 0 else 30  # half the files past a one-year period
        os.utime(path, (now - age * DAY, now - age * DAY))
    marker.write_text(str(files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "sweeper-bench")
    args = parser.parse_args()
    tree = args.dir / f"tree-{args.files}"
    print(f"building {args.files} files under {tree} (once) ...", flush=True)
    build_tree(tree, args.files)
    work = args.dir / "work-files"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ropa = work / "ropa.yaml"
    ropa.write_text(
        f"""
controller: {{name: Bench, contact: {{name: Bench}}, dpo: {{name: FG}}}}
systems:
  - {{id: share, name: Share, kind: fileshare, owner: IT, connection: {{root: "{tree}"}}}}
activities:
  - id: homes
    name: Home folders
    retention: {{period: P1Y, clock: modified, action: delete}}
    locations:
      - {{system: share, include: ["**"]}}
"""
    )
    find = ["find", str(tree), "-type", "f", "-mtime", "+365"]
    env = {"SWEEPER_STATE_DIR": str(work / "state")}
    measure("warm-up", find)
    measure("warm-up", [*SWEEPER, "plan", "--ropa", str(ropa)], env=env)
    baseline = best_of(3, "find -type f -mtime +365", find, stdout_path=work / "find.out")
    ours = best_of(
        3, "sweeper plan (scan + store + reports)", [*SWEEPER, "plan", "--ropa", str(ropa)], env=env
    )
    with open(work / "find.out", "rb") as found:
        listed = sum(1 for _ in found)
    print(f"files: {args.files}, listed by find: {listed}")
    report(baseline, ours, target=2.5)


if __name__ == "__main__":
    main()
