"""Acting on rows: deleting them with their dependent rows, and anonymising them."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sql_databases import MARIADB, POSTGRES, Database
from sql_sis import (
    add_students,
    attendance,
    attendance_notes,
    enrolments,
    exam_results,
    grade_comments,
    grades,
    location,
    logins,
    students,
)

from connectors.base import ActRequest, Outcome
from sweeper.errors import ActionUnsupported, ConnectorError, LocationInvalid
from sweeper.ropa.model import SqlLocation

EVERYTHING = location(
    dependents=[
        {"table": "enrolments", "columns": ["student_id"]},
        {
            "table": "grades",
            "columns": ["student_id"],
            "dependents": [{"table": "grade_comments", "columns": ["grade_id"]}],
        },
        {
            "table": "attendance",
            "columns": ["student_id"],
            "dependents": [{"table": "attendance_notes", "columns": ["student_id", "day"]}],
        },
        {"table": "Exam Results", "columns": ["StudentNumber"], "references": ["student_number"]},
    ]
)


def act(
    db: Database, where: SqlLocation, keys: list[str], action: str = "delete"
) -> dict[str, Outcome]:
    """Act on the keys with a writing connector; return the outcomes by key."""
    with db.connector(read_only=False) as connector:
        outcomes = list(connector.act(ActRequest(where, action, keys)))
    assert len(outcomes) == len(set(keys)), outcomes
    return {o.key: o for o in outcomes}


def column(db: Database, selected: Any) -> list[Any]:
    """Return the sorted values of one column, read with the admin engine."""
    with db.admin.connect() as conn:
        return sorted(conn.execute(sa.select(selected)).scalars())


def student(db: Database, id_: int) -> dict[str, Any]:
    with db.admin.connect() as conn:
        row = conn.execute(sa.select(students).where(students.c.id == id_)).mappings().one()
    return dict(row)


def test_delete_removes_rows_with_all_dependents(sis: Database) -> None:
    """Deleting students removes their rows in every dependent table, nested ones included."""
    outcomes = act(sis, EVERYTHING, ["1", "2"])
    assert {k: o.status for k, o in outcomes.items()} == {"1": "done", "2": "done"}
    assert column(sis, students.c.id) == [3, 4, 5]
    assert column(sis, enrolments.c.student_id) == [3, 5, 5]
    assert column(sis, grades.c.id) == []
    assert column(sis, grade_comments.c.id) == []
    assert column(sis, attendance.c.student_id) == []
    assert column(sis, attendance_notes.c.id) == []
    assert column(sis, exam_results.c["Result ID"]) == []


def test_delete_leaves_other_items_whole(sis: Database) -> None:
    """Deleting one student leaves the other students and all their dependent rows."""
    act(sis, EVERYTHING, ["1"])
    assert column(sis, students.c.id) == [2, 3, 4, 5]
    assert column(sis, enrolments.c.id) == [3, 4, 5, 6, 7]
    assert column(sis, grades.c.id) == [4]
    assert column(sis, grade_comments.c.id) == [4]
    assert column(sis, attendance.c.student_id) == [2]
    assert column(sis, attendance_notes.c.id) == [3]
    assert column(sis, exam_results.c["Result ID"]) == [11]


def test_delete_reports_rows_per_table_for_each_item(sis: Database) -> None:
    """Each deleted item's outcome counts its rows per table, the item's own row included."""
    outcomes = act(sis, EVERYTHING, ["1", "3"])
    assert outcomes["1"].details == {
        "rows": {
            "students": 1,
            "enrolments": 2,
            "grades": 3,
            "grade_comments": 3,
            "attendance": 2,
            "attendance_notes": 2,
            "Exam Results": 1,
        }
    }
    assert outcomes["3"].details == {
        "rows": {
            "students": 1,
            "enrolments": 1,
            "grades": 0,
            "grade_comments": 0,
            "attendance": 0,
            "attendance_notes": 0,
            "Exam Results": 0,
        }
    }


def test_composite_key_deletes_that_row_and_its_dependents(sis: Database) -> None:
    """An item with a composite key is deleted with the dependent rows joined on both columns."""
    where = location(
        "attendance",
        key=["student_id", "day"],
        subject="student_id",
        dependents=[{"table": "attendance_notes", "columns": ["student_id", "day"]}],
    )
    outcomes = act(sis, where, ['[1,"2019-01-07"]'])
    assert outcomes['[1,"2019-01-07"]'].status == "done"
    with sis.admin.connect() as conn:
        left = conn.execute(sa.select(attendance.c.student_id, attendance.c.day)).all()
    assert sorted(left) == [(1, date(2019, 1, 8)), (2, date(2019, 1, 7))]
    assert column(sis, attendance_notes.c.id) == [3]


def test_key_that_no_longer_exists_is_gone(sis: Database) -> None:
    """A key without a row is gone; deleting an item a second time finds it gone."""
    assert act(sis, EVERYTHING, ["1"])["1"].status == "done"
    outcomes = act(sis, EVERYTHING, ["1", "99"])
    assert {k: (o.status, o.details) for k, o in outcomes.items()} == {
        "1": ("gone", None),
        "99": ("gone", None),
    }
    assert column(sis, students.c.id) == [2, 3, 4, 5]


def test_row_that_no_longer_meets_the_conditions_is_gone_and_kept(sis: Database) -> None:
    """A row that no longer meets the location's where is gone, and neither it nor its
    dependents are changed."""
    condition = {"column": "left_on", "op": "is not null"}
    where = SqlLocation.model_validate({**EVERYTHING.model_dump(), "where": [condition]})
    outcomes = act(sis, where, ["1", "2"])
    assert outcomes["1"].status == "done"
    assert outcomes["2"].status == "gone"
    assert outcomes["2"].message == "no longer meets the location's conditions"
    assert column(sis, students.c.id) == [2, 3, 4, 5]
    assert column(sis, enrolments.c.id) == [3, 4, 5, 6, 7]
    assert column(sis, grades.c.id) == [4]


def test_anonymise_sets_null_and_fixed_values_only(sis: Database) -> None:
    """Anonymising sets the listed columns to NULL or their fixed value; the rest is kept."""
    before = {id_: student(sis, id_) for id_ in (1, 2)}
    where = location(anonymise={"name": None, "student_number": "(removed)"})
    outcomes = act(sis, where, ["1", "99"], "anonymise")
    assert outcomes["1"] == Outcome(
        "1", "done", None, {"rows": {"students": 1}, "columns": ["name", "student_number"]}
    )
    assert outcomes["99"].status == "gone"
    assert student(sis, 1) == {**before[1], "name": None, "student_number": "(removed)"}
    assert student(sis, 2) == before[2]
    assert column(sis, enrolments.c.id) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("anonymise", "problem"),
    [
        ({"name": None, "nmae": None}, "column 'nmae' (anonymise) does not exist"),
        ({"name": None, "id": None}, "column 'id' is part of the key"),
        ({"student_number": None}, "column 'student_number' of 'students' is NOT NULL"),
        ({"created_at": "(removed)"}, "'(removed)' is not a valid datetime"),
        ({}, "has no columns to anonymise"),
    ],
    ids=["unknown", "key", "not-null", "wrong-type", "none"],
)
def test_unusable_anonymise_column_is_refused_before_any_change(
    sis: Database, anonymise: dict[str, Any], problem: str
) -> None:
    """An unknown, key, NOT NULL-to-null or mistyped anonymise column stops before any write."""
    with (
        sis.connector(read_only=False) as connector,
        pytest.raises(LocationInvalid, match=re.escape(problem)),
    ):
        connector.act(ActRequest(location(anonymise=anonymise), "anonymise", ["1"]))
    assert student(sis, 1)["name"] == "Anna"


def test_fixed_value_for_unique_column_is_refused(db: Database) -> None:
    """One fixed value for a unique column would clash from the second row on: refused."""
    with db.admin.begin() as conn:
        conn.execute(sa.text("CREATE TABLE staff (id integer PRIMARY KEY, email varchar(50))"))
        conn.execute(sa.text("CREATE UNIQUE INDEX staff_email ON staff (email)"))
    where = location("staff", subject=None, anonymise={"email": "removed@example.org"})
    with (
        db.connector(read_only=False) as connector,
        pytest.raises(LocationInvalid, match="column 'email' of 'staff' is unique"),
    ):
        connector.act(ActRequest(where, "anonymise", ["1"]))


@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_read_only_connector_refuses_to_act(sis: Database, action: str) -> None:
    """A read-only (dry-run) connector refuses every action before touching a row."""
    where = location(anonymise={"name": None})
    with (
        sis.connector(read_only=True) as connector,
        pytest.raises(ActionUnsupported, match="read-only"),
    ):
        connector.act(ActRequest(where, action, ["1"]))
    assert student(sis, 1)["name"] == "Anna"


def test_unknown_action_is_unsupported(sis: Database) -> None:
    """An action a SQL system cannot perform (quarantine) is refused by name."""
    with (
        sis.connector(read_only=False) as connector,
        pytest.raises(ActionUnsupported, match="cannot 'quarantine' rows"),
    ):
        connector.act(ActRequest(location(), "quarantine", ["1"]))


def test_key_that_does_not_fit_is_refused_before_any_change(sis: Database) -> None:
    """A key that cannot be a value of the key column stops the batch before any write."""
    with (
        sis.connector(read_only=False) as connector,
        pytest.raises(LocationInvalid, match="item key '1; DROP TABLE students'"),
    ):
        connector.act(ActRequest(EVERYTHING, "delete", ["2", "1; DROP TABLE students"]))
    assert column(sis, students.c.id) == [1, 2, 3, 4, 5]


def test_foreign_key_failure_is_isolated_and_leaves_the_item_whole(sis: Database) -> None:
    """When an undeclared dependent's FOREIGN KEY refuses one item, that item fails with its
    rows all kept, and the other items of the batch are deleted."""
    where = location(dependents=[{"table": "enrolments", "columns": ["student_id"]}])
    outcomes = act(sis, where, ["1", "3", "4"])  # grades and attendance refer to student 1
    assert {k: o.status for k, o in outcomes.items()} == {"1": "failed", "3": "done", "4": "done"}
    message = outcomes["1"].message
    assert message is not None
    assert message.startswith("deleting from students: ")
    assert "foreign key" in message.lower()
    assert "grades" in message or "attendance" in message  # a table that refers to it
    assert column(sis, students.c.id) == [1, 2, 5]
    assert column(sis, enrolments.c.id) == [1, 2, 3, 4, 6, 7]  # student 1's two are kept
    assert column(sis, grades.c.id) == [1, 2, 3, 4]


def test_batch_of_2500_items_is_deleted_in_three_transactions(sis: Database) -> None:
    """2,500 keys (three batches) are all deleted with their dependents; the rest is kept."""
    add_students(sis.admin, range(1001, 3601))
    keys = [str(n) for n in range(1001, 3501)]
    where = location(
        dependents=[
            {"table": "enrolments", "columns": ["student_id"]},
            {"table": "grades", "columns": ["student_id"]},
        ]
    )
    outcomes = act(sis, where, keys)
    assert {o.status for o in outcomes.values()} == {"done"}
    assert len(outcomes) == 2500
    assert column(sis, students.c.id) == [1, 2, 3, 4, 5, *range(3501, 3601)]
    assert len(column(sis, enrolments.c.id)) == 7 + 100
    assert len(column(sis, grades.c.id)) == 4 + 100


def test_dates_in_composite_keys_survive_sqlite_text(sis: Database) -> None:
    """A key holding a timestamp finds its row again (SQLite keeps timestamps as text)."""
    where = location("logins", key=["student_id", "logged_in_at"], subject="student_id")
    key = '[1,"2019-01-07 08:00:00"]'
    assert act(sis, where, [key])[key].status == "done"
    assert column(sis, logins.c.logged_in_at) == [
        datetime(2019, 1, 8, 8),
        datetime(2024, 10, 1, 8),
    ]


def impatient(db: Database) -> Database:
    """Return the database with connections that wait at most a second for a lock."""
    if db.backend == "postgresql":
        options = f"{db.connect_args['options']} -c lock_timeout=300"
        return dataclasses.replace(db, connect_args={**db.connect_args, "options": options})
    wait = "SET SESSION innodb_lock_wait_timeout = 1, SESSION lock_wait_timeout = 1"
    return dataclasses.replace(db, connect_args={**db.connect_args, "init_command": wait})


@pytest.mark.parametrize("db", [POSTGRES, MARIADB], indirect=True)
def test_row_locked_by_another_session_fails_alone(sis: Database) -> None:
    """An item whose row another session holds locked fails after the lock timeout, unchanged;
    the other items of the batch are deleted."""
    where = location(dependents=[{"table": "enrolments", "columns": ["student_id"]}])
    with sis.admin.connect() as holder, holder.begin():
        holder.execute(sa.select(students.c.id).where(students.c.id == 3).with_for_update())
        outcomes = act(impatient(sis), where, ["3", "4"])
    assert outcomes["3"].status == "failed"
    assert outcomes["3"].message is not None
    assert outcomes["3"].message.startswith("reading students: ")
    assert outcomes["4"].status == "done"
    assert column(sis, students.c.id) == [1, 2, 3, 5]
    assert column(sis, enrolments.c.student_id) == [1, 1, 2, 2, 3, 5, 5]


@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
def test_act_gives_up_when_items_keep_failing_for_the_database(sis: Database) -> None:
    """When the whole table stays locked, act stops after three items instead of waiting out
    every item's lock timeout, and nothing is changed."""
    where = location(dependents=[{"table": "enrolments", "columns": ["student_id"]}])
    with sis.admin.connect() as holder, holder.begin():
        holder.execute(sa.text("LOCK TABLE students IN ACCESS EXCLUSIVE MODE"))
        with (
            impatient(sis).connector(read_only=False) as connector,
            pytest.raises(ConnectorError, match="3 items in a row failed"),
        ):
            list(connector.act(ActRequest(where, "delete", ["3", "4", "5", "2"])))
    assert column(sis, students.c.id) == [1, 2, 3, 4, 5]


def test_full_batches_of_composite_keys_are_deleted(sis: Database) -> None:
    """1,200 composite keys (a full batch and more) are deleted with their dependents."""
    days = [date.fromordinal(730000 + n) for n in range(1200)]
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
    keys = [f'[3,"{d.isoformat()}"]' for d in days]
    outcomes = act(sis, where, keys)
    assert {o.status for o in outcomes.values()} == {"done"}
    assert column(sis, attendance.c.student_id) == [1, 1, 2]
    assert column(sis, attendance_notes.c.id) == [1, 2, 3]
