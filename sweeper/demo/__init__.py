"""The bundled demo estate: a small SQLite SIS, a decommissioned old SIS and a local share.

Ages are relative to the moment it is built, so a dry run always finds items due and items not
yet due. All names and numbers are made up.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path

FIRST = ["Anouk", "Bram", "Daan", "Emma", "Fenna", "Lucas", "Mila", "Noah", "Sara", "Sem"]
LAST = ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder"]


def build_estate(directory: Path, now: datetime | None = None, seed: int = 2026) -> Path:
    """Build the demo estate in ``directory`` (replacing an earlier one); return the RoPA path."""
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    if directory.exists():
        for name in ("sis.db", "old-sis.db", "share", "quarantine", "ropa.yaml"):
            target = directory / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    today = now.date()
    left = _build_sis(directory / "sis.db", today, rng)
    _build_old_sis(directory / "old-sis.db", rng)
    _build_share(directory / "share", now, rng, left)
    (directory / "quarantine").mkdir(mode=0o700)
    ropa = directory / "ropa.yaml"
    ropa.write_text(files("sweeper.demo").joinpath("ropa.yaml").read_text(encoding="utf-8"))
    return ropa


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _build_sis(path: Path, today: date, rng: random.Random) -> dict[int, date | None]:
    """Create the SIS; return each student's leaving date (None while enrolled)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        PRAGMA foreign_keys = ON;
        CREATE TABLE students (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                               birth_date DATE, created_at TIMESTAMP);
        CREATE TABLE enrolments (id INTEGER PRIMARY KEY,
                                 student_id INTEGER NOT NULL REFERENCES students(id),
                                 school TEXT, start_date DATE NOT NULL, end_date DATE);
        CREATE TABLE absences (id INTEGER PRIMARY KEY,
                               student_id INTEGER NOT NULL REFERENCES students(id),
                               day DATE, reason TEXT);
        CREATE TABLE grades (id INTEGER PRIMARY KEY,
                             student_id INTEGER NOT NULL REFERENCES students(id),
                             course TEXT, grade REAL);
        CREATE TABLE grade_comments (id INTEGER PRIMARY KEY,
                                     grade_id INTEGER NOT NULL REFERENCES grades(id),
                                     comment TEXT);
        """
    )
    left: dict[int, date | None] = {}
    grade_id = 0
    for n in range(60):
        student = 100_001 + n
        start = date(today.year - rng.randint(2, 12), 8, 15)
        # A third still enrolled; the rest left between 1 and 9 years ago; a few re-enrolled.
        end: date | None = None if n % 3 == 0 else date(today.year - rng.randint(1, 9), 7, 15)
        if end is not None and end < start:
            start, end = end - timedelta(days=365 * 4), end
        db.execute(
            "INSERT INTO students VALUES (?, ?, ?, ?)",
            (student, _name(rng), date(start.year - 12, 5, 1).isoformat(), f"{start} 09:00:00"),
        )
        db.execute(
            "INSERT INTO enrolments (student_id, school, start_date, end_date) VALUES (?,?,?,?)",
            (student, "Voorbeeldschool", start.isoformat(), end.isoformat() if end else None),
        )
        if n % 10 == 1:  # left once, came back: a newer open enrolment means not left
            db.execute(
                "INSERT INTO enrolments (student_id, school, start_date, end_date) "
                "VALUES (?,?,?,NULL)",
                (student, "Voorbeeldschool (re-enrolled)", today.replace(month=1, day=6)),
            )
            end = None
        left[student] = end
        for d in range(rng.randint(0, 4)):
            db.execute(
                "INSERT INTO absences (student_id, day, reason) VALUES (?,?,?)",
                (student, (start + timedelta(days=30 * d + 3)).isoformat(), "ziek"),
            )
        for course in ("nl", "en", "wi"):
            grade_id += 1
            db.execute(
                "INSERT INTO grades VALUES (?,?,?,?)",
                (grade_id, student, course, round(rng.uniform(4, 9.5), 1)),
            )
            if rng.random() < 0.3:
                db.execute(
                    "INSERT INTO grade_comments (grade_id, comment) VALUES (?,?)",
                    (grade_id, "goede vooruitgang"),
                )
    db.commit()
    db.close()
    return left


def _build_old_sis(path: Path, rng: random.Random) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE pupils (pupil_id INTEGER PRIMARY KEY, student_number TEXT, "
        "name TEXT, left_on DATE)"
    )
    for n in range(25):
        db.execute(
            "INSERT INTO pupils VALUES (?,?,?,?)",
            (n + 1, str(90_001 + n), _name(rng), date(2012 + n % 9, 7, 15).isoformat()),
        )
    db.commit()
    db.close()


def _touch(path: Path, when: datetime, content: bytes = b"demo\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    ts = when.timestamp()
    os.utime(path, (ts, ts))


def _build_share(
    root: Path, now: datetime, rng: random.Random, left: dict[int, date | None]
) -> None:
    for student, end in left.items():
        last_work = (
            now - timedelta(days=rng.randint(1, 60))
            if end is None
            else datetime(end.year, end.month, end.day, 12, tzinfo=UTC)
        )
        for doc in ("werkstuk.docx", "presentatie.pptx"):
            _touch(root / "homes" / str(student) / doc, last_work, b"x" * rng.randint(2000, 90000))
    for day in range(0, 42, 3):
        when = now - timedelta(days=day, hours=rng.randint(0, 12))
        _touch(
            root / "camera" / f"{when:%Y-%m-%d}" / f"entrance-{when:%H%M}.mp4",
            when,
            b"\0" * 50_000,
        )
    for weeks_ago in (1, 3, 6, 10, 30):
        closed = (now - timedelta(weeks=weeks_ago)).date()
        for who in ("sollicitant-a", "sollicitant-b"):
            _touch(root / "applications" / f"{closed}_{who}.pdf", now - timedelta(weeks=weeks_ago))
    _touch(root / "applications" / "with-consent" / "2024-01-10_reserve.pdf", now)
    for months_ago in (1, 4, 8, 14, 26):
        when = now - timedelta(days=30 * months_ago)
        _touch(root / "exports" / f"leerlingen-{when:%Y%m}.csv", when, b"id;naam\n" * 200)
    _touch(root / "exports" / "cijfers 2019 (kopie).xlsx", datetime(2019, 6, 30, tzinfo=UTC))
