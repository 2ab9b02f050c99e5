"""Benchmark: `sweeper execute` of a plan with 500,000 due rows in PostgreSQL, each with rows in
two dependent tables, against a hand-written psycopg script that deletes the same rows,
children first, 1,000 ids per statement.

    .venv/bin/python bench/execute_postgres.py [--due 500000] [--url postgresql://postgres@127.0.0.1/test]

A template database is built once; each timed run works on a fresh copy of it
(CREATE DATABASE … TEMPLATE …), so both sides delete exactly the same rows. The plan and its
approval are made before the clock starts: only `sweeper execute` is timed (re-verification,
journal, audit records and the deletes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import psycopg
from _common import SWEEPER, measure

TEMPLATE = os.environ.get("SWEEPER_BENCH_TEMPLATE", "sweeper_bench_exec_tpl")

BASELINE = textwrap.dedent(
    """
    import sys, psycopg
    url = sys.argv[1]
    with psycopg.connect(url) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM students WHERE left_on < now() - interval '5 years' ORDER BY id")]
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            with conn.transaction():
                conn.execute("DELETE FROM grades WHERE student_id = ANY(%s)", (chunk,))
                conn.execute("DELETE FROM absences WHERE student_id = ANY(%s)", (chunk,))
                conn.execute("DELETE FROM students WHERE id = ANY(%s)", (chunk,))
    """
)


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def build_template(url: str, due: int) -> None:
    total = due + due // 5  # a fifth more students who are not due
    with admin(url) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)
        ).fetchone()
        if exists:
            with psycopg.connect(_db(url, TEMPLATE)) as tpl:
                row = tpl.execute("SELECT count(*) FROM students").fetchone()
                if row and row[0] == total:
                    return
            conn.execute(f"DROP DATABASE {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    with psycopg.connect(_db(url, TEMPLATE), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE students (id integer PRIMARY KEY, name text, left_on date NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE grades (id bigserial PRIMARY KEY, "
            "student_id integer NOT NULL REFERENCES students(id), grade real)"
        )
        conn.execute(
            "CREATE TABLE absences (id bigserial PRIMARY KEY, "
            "student_id integer NOT NULL REFERENCES students(id), day date)"
        )
        conn.execute(
            "INSERT INTO students SELECT g, 'pupil ' || g, CASE WHEN g <= %s "
            "THEN date '2012-07-15' ELSE current_date - 30 END FROM generate_series(1, %s) g",
            (due, total),
        )
        conn.execute(
            "INSERT INTO grades (student_id, grade) SELECT g, 7 FROM generate_series(1, %s) g",
            (total,),
        )
        conn.execute(
            "INSERT INTO absences (student_id, day) SELECT g, current_date "
            "FROM generate_series(1, %s) g",
            (total,),
        )
        conn.execute("CREATE INDEX ON grades (student_id)")
        conn.execute("CREATE INDEX ON absences (student_id)")
        conn.execute("VACUUM ANALYZE")


def _db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def fresh_copy(url: str, name: str) -> str:
    with admin(url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return _db(url, name)


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=500_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"building template database {TEMPLATE} ({args.due} due students, once) ...", flush=True)
    build_template(args.url, args.due)
    work = Path(tempfile.gettempdir()) / "sweeper-bench" / "work-execute-postgres"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    base_url = fresh_copy(args.url, "sweeper_bench_exec_base")
    script = work / "baseline.py"
    script.write_text(BASELINE)
    baseline = measure(
        "psycopg script (children first, 1,000 ids)", [sys.executable, str(script), base_url]
    )
    left = count(base_url, "students")

    ours_url = fresh_copy(args.url, "sweeper_bench_exec_ours")
    sa_url = ours_url.replace("postgresql://", "postgresql+psycopg://", 1)
    ropa = work / "ropa.yaml"
    ropa.write_text(
        f"""
controller: {{name: Bench, contact: {{name: Bench}}, dpo: {{name: FG}}}}
timezone: UTC
systems:
  - {{id: sis, name: SIS, kind: sql, owner: IT, connection: {{url: "{sa_url}"}}}}
activities:
  - id: pupils
    name: Pupils
    retention: {{period: P5Y, clock: {{column: left_on}}, action: delete}}
    locations:
      - system: sis
        table: students
        key: id
        subject: id
        dependents:
          - {{table: grades, columns: [student_id]}}
          - {{table: absences, columns: [student_id]}}
"""
    )
    env = {"SWEEPER_STATE_DIR": str(work / "state"), "SWEEPER_MAX_ITEMS_PER_RUN": "10000000"}
    measure("sweeper plan (untimed set-up)", [*SWEEPER, "plan", "--ropa", str(ropa)], env=env)
    plan_id = sorted((work / "state" / "reports").glob("plan-*.json"))[-1].stem[5:]
    measure("approve", [*SWEEPER, "approve", plan_id, "--by", "bench"], env=env)
    profile = os.environ.get("SWEEPER_BENCH_PROFILE")
    runner = (
        [sys.executable, "-m", "cProfile", "-o", profile, "-m", "sweeper"] if profile else SWEEPER
    )
    ours = measure("sweeper execute", [*runner, "execute", plan_id], env=env)
    print(baseline)
    print(ours)
    print(
        f"students left: baseline {left}, sweeper {count(ours_url, 'students')}; "
        f"grades left: baseline {count(base_url, 'grades')}, sweeper {count(ours_url, 'grades')}"
    )
    ratio = ours.seconds / baseline.seconds
    print(
        f"ratio sweeper / psycopg: {ratio:.2f}x (target <= 1.5x: "
        f"{'within' if ratio <= 1.5 else 'OVER'}); sweeper peak RSS {ours.peak_rss_mb:.0f} MB "
        "(target < 300 MB)"
    )
    with admin(args.url) as conn:
        for name in ("sweeper_bench_exec_base", "sweeper_bench_exec_ours"):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
