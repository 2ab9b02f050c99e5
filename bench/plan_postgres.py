"""Benchmark: a complete `sweeper plan` of a 1,000,000-row PostgreSQL table with 500,000 due
rows, against a hand-written psycopg script that streams
`SELECT key, subject, clock FROM t WHERE clock < cutoff` through a server-side cursor into a
CSV file, and against `psql -c "COPY (...) TO STDOUT"` (the database's own limit).

    .venv/bin/python bench/plan_postgres.py [--rows 1000000] [--url postgresql://postgres@127.0.0.1/test]

The table lives in schema `sweeper_bench` of the given database and is reused between runs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
from _common import SWEEPER, best_of, measure, report

BASELINE = textwrap.dedent(
    """
    import csv, sys, psycopg
    url, out = sys.argv[1], sys.argv[2]
    with psycopg.connect(url) as conn, open(out, "w", newline="") as f:
        writer = csv.writer(f)
        with conn.cursor(name="scan") as cur:
            cur.itersize = 10000
            cur.execute(
                "SELECT id, student_id, created_at FROM sweeper_bench.records "
                "WHERE created_at < now() - interval '1 year'"
            )
            for row in cur:
                writer.writerow(row)
    """
)


def build_table(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS sweeper_bench")
        existing = conn.execute(
            "SELECT count(*) FROM pg_tables "
            "WHERE schemaname = 'sweeper_bench' AND tablename = 'records'"
        ).fetchone()
        if existing and existing[0]:
            count = conn.execute("SELECT count(*) FROM sweeper_bench.records").fetchone()
            if count and count[0] == rows:
                return
            conn.execute("DROP TABLE sweeper_bench.records")
        conn.execute(
            "CREATE TABLE sweeper_bench.records (id bigint PRIMARY KEY, student_id integer "
            "NOT NULL, created_at timestamptz NOT NULL, note text)"
        )
        # Even ids two to three years old (due under P1Y), odd ids a few weeks old.
        conn.execute(
            "INSERT INTO sweeper_bench.records "
            "SELECT g, 100000 + g %% 50000, "
            "CASE WHEN g %% 2 = 0 THEN now() - interval '2 years' - (g %% 300) * interval '1 day' "
            "ELSE now() - (g %% 60) * interval '1 day' END, 'x' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CREATE INDEX ON sweeper_bench.records (created_at)")
        conn.execute("VACUUM ANALYZE sweeper_bench.records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"building sweeper_bench.records with {args.rows} rows (once) ...", flush=True)
    build_table(args.url, args.rows)
    work = Path(tempfile.gettempdir()) / "sweeper-bench" / "work-postgres"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ropa = work / "ropa.yaml"
    sa_url = args.url.replace("postgresql://", "postgresql+psycopg://", 1)
    ropa.write_text(
        f"""
controller: {{name: Bench, contact: {{name: Bench}}, dpo: {{name: FG}}}}
systems:
  - {{id: db, name: DB, kind: sql, owner: IT, connection: {{url: "{sa_url}"}}}}
activities:
  - id: records
    name: Records
    retention: {{period: P1Y, clock: {{column: created_at}}, action: delete}}
    locations:
      - {{system: db, table: sweeper_bench.records, key: id, subject: student_id}}
"""
    )
    script = work / "baseline.py"
    script.write_text(BASELINE)
    env = {"SWEEPER_STATE_DIR": str(work / "state")}
    plan = [*SWEEPER, "plan", "--ropa", str(ropa)]
    baseline_cmd = [sys.executable, str(script), args.url, str(work / "baseline.csv")]
    copy_cmd = [
        "psql",
        args.url,
        "-q",
        "-c",
        "COPY (SELECT id, student_id, created_at FROM sweeper_bench.records "
        "WHERE created_at < now() - interval '1 year') TO STDOUT WITH CSV",
    ]
    measure("warm-up", baseline_cmd)
    baseline = best_of(3, "psycopg script (server-side cursor -> CSV)", baseline_cmd)
    copy = best_of(3, "psql COPY TO STDOUT", copy_cmd, stdout_path=work / "copy.csv")
    ours = best_of(3, "sweeper plan (scan + store + reports)", plan, env=env)
    with open(work / "baseline.csv", "rb") as listed:
        due = sum(1 for _ in listed)
    print(f"rows: {args.rows}, due rows listed by the baseline: {due}")
    report(baseline, ours, copy, target=2.0)


if __name__ == "__main__":
    main()
