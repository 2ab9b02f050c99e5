"""A small student information system (SIS) schema and data for the SQL connector's tests.

Built with SQLAlchemy Core so that the same tables exist on every backend. Students 1-5:

=== ====== ================ ========== ============================================
id  number created_at       left_on    enrolments (end_date)
=== ====== ================ ========== ============================================
1   S001   2015-03-01 08:00 2021-07-10 2019-07-15, 2021-07-10: left
2   S002   2016-09-01 09:30            2018-07-01, NULL (a newer open enrolment)
3   S003   2024-09-01 10:00            2025-12-31 (ends in the future)
4   S004   NULL                        none
5   S005   2025-01-10 14:15            2020-06-30 regular, NULL trial
=== ====== ================ ========== ============================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from connectors.base import NotDueSummary, ScannedItem, ScanRequest
from connectors.sql import SqlConnector
from sweeper.ropa.model import Clock, ColumnClock, SqlLocation

TZ = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=TZ)
CREATED = ColumnClock(column="created_at")

metadata = sa.MetaData()
students = sa.Table(
    "students",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("student_number", sa.String(20), nullable=False),
    sa.Column("name", sa.String(100)),
    sa.Column("created_at", sa.DateTime),
    sa.Column("left_on", sa.Date),
    sa.Column("updated_at", sa.DateTime),
)
enrolments = sa.Table(
    "enrolments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("student_id", sa.Integer, sa.ForeignKey("students.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date),
)
grades = sa.Table(
    "grades",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("student_id", sa.Integer, sa.ForeignKey("students.id"), nullable=False),
    sa.Column("course", sa.String(50)),
    sa.Column("grade", sa.Integer),
)
grade_comments = sa.Table(
    "grade_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("grade_id", sa.Integer, sa.ForeignKey("grades.id"), nullable=False),
    sa.Column("body", sa.String(200)),
)
attendance = sa.Table(
    "attendance",
    metadata,
    sa.Column("student_id", sa.Integer, sa.ForeignKey("students.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("status", sa.String(10)),
)
attendance_notes = sa.Table(
    "attendance_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("student_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("note", sa.String(200)),
    sa.ForeignKeyConstraint(["student_id", "day"], ["attendance.student_id", "attendance.day"]),
)
exam_results = sa.Table(
    "Exam Results",
    metadata,
    sa.Column("Result ID", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("StudentNumber", sa.String(20)),
    sa.Column("Taken On", sa.DateTime),
)
logins = sa.Table(  # no primary key and no index: scanned through a streamed cursor
    "logins",
    metadata,
    sa.Column("student_id", sa.Integer),
    sa.Column("logged_in_at", sa.DateTime),
    sa.Column("ip", sa.String(45)),
)


def build(engine: sa.Engine) -> None:
    """Given an engine on an empty database or schema, create the SIS tables with their rows."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            students.insert(),
            [
                _student(1, datetime(2015, 3, 1, 8, 0), date(2021, 7, 10), "Anna"),
                _student(2, datetime(2016, 9, 1, 9, 30), None, "Bram"),
                _student(3, datetime(2024, 9, 1, 10, 0), None, "Chloé"),
                _student(4, None, None, "Daan"),
                _student(5, datetime(2025, 1, 10, 14, 15), None, "Eva"),
            ],
        )
        conn.execute(
            enrolments.insert(),
            [
                _enrolment(1, 1, "regular", date(2015, 9, 1), date(2019, 7, 15)),
                _enrolment(2, 1, "regular", date(2019, 9, 1), date(2021, 7, 10)),
                _enrolment(3, 2, "regular", date(2016, 9, 1), date(2018, 7, 1)),
                _enrolment(4, 2, "regular", date(2022, 9, 1), None),
                _enrolment(5, 3, "regular", date(2024, 9, 1), date(2025, 12, 31)),
                _enrolment(6, 5, "regular", date(2019, 9, 1), date(2020, 6, 30)),
                _enrolment(7, 5, "trial", date(2024, 1, 1), None),
            ],
        )
        conn.execute(
            grades.insert(),
            [
                {"id": 1, "student_id": 1, "course": "maths", "grade": 8},
                {"id": 2, "student_id": 1, "course": "dutch", "grade": 7},
                {"id": 3, "student_id": 1, "course": "history", "grade": 6},
                {"id": 4, "student_id": 2, "course": "maths", "grade": 9},
            ],
        )
        conn.execute(
            grade_comments.insert(),
            [
                {"id": 1, "grade_id": 1, "body": "well done"},
                {"id": 2, "grade_id": 1, "body": "resit passed"},
                {"id": 3, "grade_id": 2, "body": "spelling"},
                {"id": 4, "grade_id": 4, "body": "excellent"},
            ],
        )
        conn.execute(
            attendance.insert(),
            [
                {"student_id": 1, "day": date(2019, 1, 7), "status": "present"},
                {"student_id": 1, "day": date(2019, 1, 8), "status": "absent"},
                {"student_id": 2, "day": date(2019, 1, 7), "status": "present"},
            ],
        )
        conn.execute(
            attendance_notes.insert(),
            [
                {"id": 1, "student_id": 1, "day": date(2019, 1, 7), "note": "late"},
                {"id": 2, "student_id": 1, "day": date(2019, 1, 7), "note": "left early"},
                {"id": 3, "student_id": 2, "day": date(2019, 1, 7), "note": "dentist"},
            ],
        )
        conn.execute(
            exam_results.insert(),
            [
                {"Result ID": 10, "StudentNumber": "S001", "Taken On": datetime(2019, 6, 1, 9)},
                {"Result ID": 11, "StudentNumber": "S002", "Taken On": datetime(2024, 6, 1, 9)},
            ],
        )
        conn.execute(
            logins.insert(),
            [
                {"student_id": 1, "logged_in_at": datetime(2019, 1, 7, 8), "ip": "10.0.0.1"},
                {"student_id": 1, "logged_in_at": datetime(2019, 1, 8, 8), "ip": "10.0.0.2"},
                {"student_id": 3, "logged_in_at": datetime(2024, 10, 1, 8), "ip": "10.0.0.3"},
            ],
        )


def add_students(engine: sa.Engine, ids: Iterable[int]) -> None:
    """Given new student ids, add those students, each with one enrolment and one grade."""
    ids = list(ids)
    with engine.begin() as conn:
        conn.execute(
            students.insert(), [_student(n, datetime(2010, 1, 1), None, f"P{n}") for n in ids]
        )
        conn.execute(
            enrolments.insert(),
            [_enrolment(n, n, "regular", date(2010, 9, 1), date(2014, 7, 1)) for n in ids],
        )
        conn.execute(grades.insert(), [{"id": n, "student_id": n, "grade": 7} for n in ids])


def _student(id_: int, created: datetime | None, left: date | None, name: str) -> dict[str, object]:
    return {
        "id": id_,
        "student_number": f"S{id_:03d}",
        "name": name,
        "created_at": created,
        "left_on": left,
        "updated_at": datetime(2024, 1, 1, 12, 0),
    }


def _enrolment(
    id_: int, student: int, kind: str, start: date, end: date | None
) -> dict[str, object]:
    return {"id": id_, "student_id": student, "kind": kind, "start_date": start, "end_date": end}


def location(table: str = "students", **fields: object) -> SqlLocation:
    """Return a location on ``table`` (by default the students, keyed by id, subject number)."""
    defaults: dict[str, object] = {"key": ["id"], "subject": "student_number"}
    return SqlLocation.model_validate({"system": "sis", "table": table, **defaults, **fields})


def scan(
    connector: SqlConnector,
    where: SqlLocation,
    clock: Clock = CREATED,
    cutoff: datetime | None = None,
) -> tuple[dict[str, ScannedItem], list[NotDueSummary]]:
    """Prepare and scan a location; return its items by key and its not-due summaries."""
    connector.prepare(where, clock)
    items: dict[str, ScannedItem] = {}
    summaries: list[NotDueSummary] = []
    for out in connector.scan(ScanRequest(where, clock, TZ, cutoff)):
        if isinstance(out, ScannedItem):
            assert out.key not in items, f"key {out.key} yielded twice"
            items[out.key] = out
        elif isinstance(out, NotDueSummary):
            summaries.append(out)
        else:
            raise AssertionError(f"unexpected scan output {out!r}")
    return items, summaries
