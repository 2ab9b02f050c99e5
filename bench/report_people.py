"""Benchmark: the HTML and XLSX reports of a stored plan of a million items, against the CSV
report of the same plan (one streaming pass, the baseline).

    .venv/bin/python bench/report_people.py [--rows 1000000] [--dir /var/tmp/sweeper-bench]

Builds a SQLite table of ``rows`` due rows over four activities once, plans it once, then
renders each report twice (the faster run counts) and prints time, peak RSS and file size.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
from pathlib import Path

from _common import SWEEPER, best_of, measure

ACTIVITIES = ("grades", "absences", "exports", "logs")


def build_db(path: Path, rows: int) -> None:
    marker = path.with_suffix(".complete")
    if marker.exists() and marker.read_text() == str(rows):
        return
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    for table in ACTIVITIES:
        db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, student TEXT, created DATE)")
        db.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?)",
            (
                (n, f"{100000 + n % 50000}", f"20{10 + n % 10}-0{1 + n % 9}-1{n % 10}")
                for n in range(rows // len(ACTIVITIES))
            ),
        )
    db.commit()
    db.close()
    marker.write_text(str(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "sweeper-bench")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"report-{args.rows}.db"
    print(f"building {args.rows} rows in {db} (once) ...", flush=True)
    build_db(db, args.rows)
    work = args.dir / f"work-report-{args.rows}"
    reports = work / "state" / "reports"
    if not list(reports.glob("plan-*.json")):  # plan once, reuse the stored plan after
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    activities = "".join(
        f"""
  - id: {a}
    name: {a.title()}
    retention: {{period: P2Y, clock: {{column: created}}, action: delete}}
    locations:
      - {{system: sis, table: {a}, key: id, subject: student}}"""
        for a in ACTIVITIES
    )
    ropa = work / "ropa.yaml"
    ropa.write_text(
        f"""
controller: {{name: Bench, contact: {{name: Bench}}, dpo: {{name: FG}}}}
systems:
  - {{id: sis, name: SIS, kind: sql, owner: IT, connection: {{url: "sqlite:///{db}"}}}}
activities:{activities}
"""
    )
    env = {"SWEEPER_STATE_DIR": str(work / "state")}
    if not list(reports.glob("plan-*.json")):
        print(measure("sweeper plan (once)", [*SWEEPER, "plan", "--ropa", str(ropa)], env=env))
    [report] = reports.glob("plan-*.json")
    plan_id = report.stem.removeprefix("plan-")
    state = sqlite3.connect(work / "state" / "state.db")
    [(count,)] = state.execute("SELECT item_count FROM plans WHERE id = ?", (plan_id,))
    state.close()
    print(f"plan {plan_id}: {count} items", flush=True)
    out = {f: work / f"plan.{f}" for f in ("csv", "html", "xlsx")}
    results = {}
    for fmt, path in out.items():
        argv = [*SWEEPER, "report", plan_id, "--format", fmt, "-o", str(path)]
        results[fmt] = best_of(2, f"sweeper report --format {fmt}", argv, env=env)
        size = path.stat().st_size / 1e6
        print(f"{results[fmt]}   {size:8.1f} MB", flush=True)
    base = results["csv"].seconds
    for fmt in ("html", "xlsx"):
        print(f"ratio {fmt} / csv: {results[fmt].seconds / base:.2f}x")


if __name__ == "__main__":
    main()
