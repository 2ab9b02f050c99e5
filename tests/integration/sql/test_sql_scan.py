"""Scanning tables: items, clocks, cutoffs, conditions, dependents, keys and fingerprints."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sql_databases import POSTGRES, SQLITE, Database
from sql_sis import TZ, attendance, attendance_notes, location, scan, students

from connectors.base import NotDueSummary
from connectors.sql import BATCH, decode_key
from sweeper.ropa.model import ColumnClock, EventClock


def test_scan_yields_every_row_with_subject_and_clock(sis: Database) -> None:
    """Without a cutoff every row is an item with its subject and its clock in the request's tz."""
    with sis.connector() as connector:
        items, summaries = scan(connector, location())
    assert sorted(items) == ["1", "2", "3", "4", "5"]
    assert summaries == []
    assert items["1"].subject == "S001"
    assert items["1"].clock == datetime(2015, 3, 1, 8, 0, tzinfo=TZ)
    assert items["1"].clock.tzinfo is TZ
    assert items["1"].problem is None


def test_date_clock_starts_at_midnight_in_request_timezone(sis: Database) -> None:
    """A DATE clock column gives midnight of that day in the request's timezone."""
    with sis.connector() as connector:
        items, _ = scan(connector, location(), ColumnClock(column="left_on"))
    assert items["1"].clock == datetime(2021, 7, 10, 0, 0, tzinfo=TZ)


def test_null_clock_is_reported_as_problem(sis: Database) -> None:
    """A row whose clock column is NULL is an item without clock, with the reason."""
    with sis.connector() as connector:
        items, _ = scan(connector, location())
    assert items["4"].clock is None
    assert items["4"].problem == "clock column created_at is NULL"


def test_cutoff_yields_due_rows_and_counts_the_rest(sis: Database) -> None:
    """With a cutoff, rows due by it (or without clock) are items; the rest one NotDueSummary."""
    cutoff = datetime(2020, 1, 1, tzinfo=TZ)
    with sis.connector() as connector:
        items, summaries = scan(connector, location(), cutoff=cutoff)
    assert sorted(items) == ["1", "2", "4"]
    assert summaries == [NotDueSummary(2, datetime(2024, 9, 1, 10, 0, tzinfo=TZ), 0)]


@pytest.mark.parametrize(
    ("cutoff", "due"),
    [
        (datetime(2015, 3, 1, 7, 0, tzinfo=UTC), True),  # 08:00 in Amsterdam: exactly due
        (datetime(2015, 3, 1, 6, 59, 59, tzinfo=UTC), False),
    ],
    ids=["at-clock", "just-before"],
)
def test_cutoff_compares_naive_timestamps_in_request_timezone(
    sis: Database, cutoff: datetime, due: bool
) -> None:
    """A cutoff in another timezone is compared with naive timestamps as wall time in tz."""
    with sis.connector() as connector:
        items, summaries = scan(connector, location(), cutoff=cutoff)
    assert ("1" in items) is due
    assert summaries[0].count == (3 if due else 4)


@pytest.mark.parametrize(
    ("cutoff", "due"),
    [
        (datetime(2021, 7, 10, 0, 0, tzinfo=TZ), True),
        (datetime(2021, 7, 9, 23, 59, tzinfo=TZ), False),
    ],
    ids=["midnight", "just-before"],
)
def test_cutoff_on_date_column_is_due_from_midnight(
    sis: Database, cutoff: datetime, due: bool
) -> None:
    """A DATE clock is due once the cutoff reaches midnight of that day."""
    with sis.connector() as connector:
        items, summaries = scan(connector, location(), ColumnClock(column="left_on"), cutoff)
    assert ("1" in items) is due
    earliest = None if due else datetime(2021, 7, 10, tzinfo=TZ)
    assert summaries == [NotDueSummary(0 if due else 1, earliest, 0)]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"column": "student_number", "value": "S002"}, ["2"]),
        ({"column": "student_number", "op": "!=", "value": "S002"}, ["1", "3", "4", "5"]),
        ({"column": "id", "op": "<", "value": 3}, ["1", "2"]),
        ({"column": "id", "op": "<=", "value": 3}, ["1", "2", "3"]),
        ({"column": "created_at", "op": ">", "value": datetime(2020, 1, 1)}, ["3", "5"]),
        ({"column": "id", "op": ">=", "value": 4}, ["4", "5"]),
        ({"column": "student_number", "op": "in", "value": ["S001", "S005"]}, ["1", "5"]),
        ({"column": "id", "op": "not in", "value": [1, 2]}, ["3", "4", "5"]),
        ({"column": "left_on", "op": "is null"}, ["2", "3", "4", "5"]),
        ({"column": "left_on", "op": "is not null"}, ["1"]),
        ({"column": "left_on", "op": "<", "value": date(2022, 1, 1)}, ["1"]),
        ({"column": "id", "value": "3"}, ["3"]),  # text for an integer column is converted
    ],
    ids=lambda v: str(v.get("op", "=")) if isinstance(v, dict) else "",
)
def test_where_condition_filters_rows(
    sis: Database, condition: dict[str, Any], expected: list[str]
) -> None:
    """A where condition selects only the rows that satisfy it."""
    with sis.connector() as connector:
        items, _ = scan(connector, location(where=[condition]))
    assert sorted(items) == expected


def test_dependents_are_counted_per_item_including_nested(sis: Database) -> None:
    """Each item reports its rows in every dependent table, nested ones through their parent."""
    where = location(
        dependents=[
            {"table": "enrolments", "columns": ["student_id"]},
            {
                "table": "grades",
                "columns": ["student_id"],
                "dependents": [{"table": "grade_comments", "columns": ["grade_id"]}],
            },
        ]
    )
    with sis.connector() as connector:
        items, _ = scan(connector, where)
    counts = {key: item.details["dependents"] for key, item in items.items() if item.details}
    assert counts == {
        "1": {"enrolments": 2, "grades": 3, "grade_comments": 3},
        "2": {"enrolments": 2, "grades": 1, "grade_comments": 1},
        "3": {"enrolments": 1, "grades": 0, "grade_comments": 0},
        "4": {"enrolments": 0, "grades": 0, "grade_comments": 0},
        "5": {"enrolments": 2, "grades": 0, "grade_comments": 0},
    }


def test_composite_foreign_key_dependents_are_counted(sis: Database) -> None:
    """A dependent joined on a composite key is counted per item."""
    where = location(
        "attendance",
        key=["student_id", "day"],
        subject="student_id",
        dependents=[{"table": "attendance_notes", "columns": ["student_id", "day"]}],
    )
    with sis.connector() as connector:
        items, _ = scan(connector, where, ColumnClock(column="day"))
    counts = {key: item.details["dependents"]["attendance_notes"] for key, item in items.items()}
    assert counts == {'[1,"2019-01-07"]': 2, '[1,"2019-01-08"]': 0, '[2,"2019-01-07"]': 1}


def test_composite_foreign_key_dependents_are_counted_over_full_pages(sis: Database) -> None:
    """Dependents joined on a composite key are counted for pages of a thousand items."""
    days = [date.fromordinal(730000 + n) for n in range(BATCH + 200)]
    with sis.admin.begin() as conn:
        conn.execute(attendance.insert(), [{"student_id": 3, "day": d} for d in days])
        conn.execute(
            attendance_notes.insert(),
            [{"id": 100 + n, "student_id": 3, "day": d} for n, d in enumerate(days)],
        )
    where = location(
        "attendance",
        key=["student_id", "day"],
        subject="student_id",
        dependents=[{"table": "attendance_notes", "columns": ["student_id", "day"]}],
    )
    with sis.connector() as connector:
        items, _ = scan(connector, where, ColumnClock(column="day"))
    counts = [item.details["dependents"]["attendance_notes"] for item in items.values()]
    assert sorted(counts) == [0] + [1] * (len(days) + 1) + [2]  # with the three SIS rows


def test_references_name_other_parent_columns(sis: Database) -> None:
    """A dependent may refer to parent columns other than the key ('references')."""
    where = location(
        dependents=[
            {
                "table": "Exam Results",
                "columns": ["StudentNumber"],
                "references": ["student_number"],
            }
        ]
    )
    with sis.connector() as connector:
        items, _ = scan(connector, where)
    assert [items[k].details["dependents"]["Exam Results"] for k in "12345"] == [1, 1, 0, 0, 0]


def test_composite_key_round_trips_through_decode_key(sis: Database) -> None:
    """A composite key is a compact JSON array that decode_key turns back into typed values."""
    where = location("attendance", key=["student_id", "day"], subject="student_id")
    with sis.connector() as connector:
        items, _ = scan(connector, where, ColumnClock(column="day"))
        columns = connector.key_columns(where)
    assert sorted(decode_key(key, columns) for key in items) == [
        (1, date(2019, 1, 7)),
        (1, date(2019, 1, 8)),
        (2, date(2019, 1, 7)),
    ]


def test_decoded_key_finds_the_row(sis: Database) -> None:
    """The typed values of a scanned key select exactly that row again."""
    where = location("attendance", key=["student_id", "day"], subject="student_id")
    with sis.connector() as connector:
        items, _ = scan(connector, where, ColumnClock(column="day"))
        assert '[1,"2019-01-08"]' in items
        student_id, day = connector.key_values(where, '[1,"2019-01-08"]')
    with sis.admin.connect() as conn:
        status = conn.execute(
            sa.select(attendance.c.status).where(
                attendance.c.student_id == student_id, attendance.c.day == day
            )
        ).scalar_one()
    assert status == "absent"


def test_quoted_names_are_scanned(sis: Database) -> None:
    """Table and column names with spaces and capitals are used as quoted identifiers."""
    where = location("Exam Results", key=["Result ID"], subject="StudentNumber")
    with sis.connector() as connector:
        items, _ = scan(connector, where, ColumnClock(column="Taken On"))
    assert {k: (i.subject, i.clock) for k, i in items.items()} == {
        "10": ("S001", datetime(2019, 6, 1, 9, tzinfo=TZ)),
        "11": ("S002", datetime(2024, 6, 1, 9, tzinfo=TZ)),
    }


def test_schema_qualified_table_is_scanned(sis: Database) -> None:
    """A table may be named as schema.table."""
    with sis.connector() as connector:
        items, _ = scan(connector, location(f"{sis.schema}.students"))
    assert len(items) == 5


def test_event_clock_yields_items_without_clock_or_problem(sis: Database) -> None:
    """With an event clock the connector leaves the clock to the lifecycle."""
    with sis.connector() as connector:
        items, summaries = scan(connector, location(), EventClock(event="left"))
    assert {(i.clock, i.problem) for i in items.values()} == {(None, None)}
    assert summaries == []


def test_table_without_unique_key_is_streamed(sis: Database) -> None:
    """A table without primary key or unique index is read through one streamed cursor."""
    where = location("logins", key=["student_id", "logged_in_at"], subject="student_id")
    cutoff = datetime(2020, 1, 1, tzinfo=TZ)
    with sis.connector() as connector:
        items, summaries = scan(connector, where, ColumnClock(column="logged_in_at"), cutoff)
    assert sorted(items) == ['[1,"2019-01-07 08:00:00"]', '[1,"2019-01-08 08:00:00"]']
    assert summaries == [NotDueSummary(1, datetime(2024, 10, 1, 8, tzinfo=TZ), 0)]


def test_pages_cover_every_row_of_a_composite_key(sis: Database) -> None:
    """Paging by a composite key returns every row exactly once across many pages."""
    rows = [{"student_id": 3, "day": date.fromordinal(730000 + n)} for n in range(2 * BATCH + 7)]
    with sis.admin.begin() as conn:
        conn.execute(attendance.insert(), rows)
    where = location("attendance", key=["student_id", "day"], subject="student_id")
    with sis.connector() as connector:
        items, _ = scan(connector, where, ColumnClock(column="day"))
    assert len(items) == len(rows) + 3


def test_fingerprint_is_stable_across_scans(sis: Database) -> None:
    """Scanning unchanged rows twice, with new connectors, gives the same fingerprints."""
    where = location(fingerprint=["updated_at"])
    with sis.connector() as connector:
        first, _ = scan(connector, where)
    with sis.connector() as connector:
        second, _ = scan(connector, where)
    assert {k: i.fingerprint for k, i in first.items()} == {
        k: i.fingerprint for k, i in second.items()
    }
    assert len({i.fingerprint for i in first.values()}) == 5


def test_fingerprint_changes_when_a_fingerprint_column_changes(sis: Database) -> None:
    """Changing a fingerprint column of a row changes that row's fingerprint only."""
    where = location(fingerprint=["updated_at"])
    with sis.connector() as connector:
        before, _ = scan(connector, where)
    with sis.admin.begin() as conn:
        conn.execute(
            students.update().where(students.c.id == 2).values(updated_at=datetime(2025, 5, 1))
        )
    with sis.connector() as connector:
        after, _ = scan(connector, where)
    changed = sorted(k for k in before if before[k].fingerprint != after[k].fingerprint)
    assert changed == ["2"]


@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
def test_aware_timestamp_clock_is_kept(db: Database) -> None:
    """A timestamp-with-time-zone clock keeps its instant, whatever the request's tz."""
    table = sa.Table(
        "sessions",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("started", sa.DateTime(timezone=True)),
    )
    table.create(db.admin)
    with db.admin.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "started": datetime(2019, 1, 1, 23, tzinfo=UTC)}])
    where = location("sessions", subject=None)
    with db.connector() as connector:
        items, summaries = scan(
            connector, where, ColumnClock(column="started"), datetime(2019, 1, 2, tzinfo=UTC)
        )
    assert items["1"].clock == datetime(2019, 1, 1, 23, tzinfo=UTC)
    assert summaries == [NotDueSummary(0, None, 0)]


@pytest.mark.parametrize("db", [SQLITE], indirect=True)
def test_malformed_stored_date_is_the_items_problem(sis: Database) -> None:
    """A SQLite clock value that is no date makes that item's problem, not a failed scan."""
    with sis.admin.begin() as conn:
        conn.execute(sa.text("UPDATE students SET created_at = 'yesterday' WHERE id = 2"))
    with sis.connector() as connector:
        items, summaries = scan(connector, location(), cutoff=datetime(2020, 1, 1, tzinfo=TZ))
    assert items["2"].clock is None
    assert items["2"].problem == "clock column created_at holds 'yesterday', not a date"
    assert items["1"].clock == datetime(2015, 3, 1, 8, 0, tzinfo=TZ)
    assert summaries[0].earliest_clock == datetime(2024, 9, 1, 10, 0, tzinfo=TZ)
