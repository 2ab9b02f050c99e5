"""Checking a location's names against the database, and what unsafe names do."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sql_databases import SQLITE, Database
from sql_sis import CREATED, location, scan, students

from sweeper.errors import LocationInvalid
from sweeper.ropa.model import Clock, ColumnClock, EventClock, SqlLocation

# Checks that run after reflection, the same on every backend.
SQLITE_ONLY = pytest.mark.parametrize("db", [SQLITE], indirect=True)


def prepare_error(db: Database, where: SqlLocation, clock: Clock = CREATED) -> str:
    """Prepare the location; return the LocationInvalid message it must raise."""
    with db.connector() as connector, pytest.raises(LocationInvalid) as raised:
        connector.prepare(where, clock)
    return str(raised.value)


def student_count(db: Database) -> int:
    with db.admin.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(students)).scalar_one())


def test_valid_location_prepares(sis: Database) -> None:
    """A location whose every name exists prepares without error."""
    where = location(
        where=[{"column": "name", "op": "is not null"}],
        fingerprint=["updated_at"],
        dependents=[
            {
                "table": "grades",
                "columns": ["student_id"],
                "dependents": [{"table": "grade_comments", "columns": ["grade_id"]}],
            }
        ],
    )
    with sis.connector() as connector:
        connector.prepare(where, CREATED)


def test_unknown_table_is_named_with_close_match(sis: Database) -> None:
    """An unknown table is named, with the existing table it was probably meant to be."""
    message = prepare_error(sis, location("studnets"))
    assert "table 'studnets' does not exist" in message
    assert "did you mean 'students'" in message


def test_unknown_schema_is_named(sis: Database) -> None:
    """A table in a schema that does not exist names the schema."""
    message = prepare_error(sis, location("nosuchschema.students"))
    assert "'nosuchschema.students'" in message
    assert "there is no schema 'nosuchschema'" in message


@pytest.mark.parametrize(
    ("fields", "clock"),
    [
        ({"key": ["student_id"]}, CREATED),
        ({"subject": "studentnumber"}, CREATED),
        ({}, ColumnClock(column="created")),
        ({"where": [{"column": "nmae", "value": "x"}]}, CREATED),
        ({"fingerprint": ["updated"]}, CREATED),
    ],
    ids=["key", "subject", "clock", "where", "fingerprint"],
)
def test_unknown_column_is_named(sis: Database, fields: dict[str, Any], clock: Clock) -> None:
    """An unknown column in any role is named together with its table."""
    message = prepare_error(sis, location(**fields), clock)
    bad = {"key": "student_id", "subject": "studentnumber", "where": "nmae"}
    name = next((bad[k] for k in fields if k in bad), fields.get("fingerprint", ["created"])[0])
    assert f"column {name!r}" in message
    assert "table 'students'" in message


@SQLITE_ONLY
def test_close_column_is_suggested(sis: Database) -> None:
    """An unknown column comes with the existing column it was probably meant to be."""
    message = prepare_error(sis, location(subject="student_nummer"))
    assert "did you mean 'student_number'" in message


@SQLITE_ONLY
def test_every_problem_is_listed_at_once(sis: Database) -> None:
    """All unknown names of a location are reported together, not one per run."""
    message = prepare_error(sis, location(subject="nope_subject", fingerprint=["nope_fp"]))
    assert "'nope_subject'" in message
    assert "'nope_fp'" in message


def test_unknown_dependent_table_is_named(sis: Database) -> None:
    """An unknown dependent table is named."""
    where = location(dependents=[{"table": "grade", "columns": ["student_id"]}])
    message = prepare_error(sis, where)
    assert "table 'grade' does not exist" in message
    assert "did you mean 'grades'" in message


def test_unknown_dependent_column_is_named(sis: Database) -> None:
    """An unknown foreign-key column of a dependent is named with the dependent's table."""
    where = location(dependents=[{"table": "grades", "columns": ["pupil_id"]}])
    message = prepare_error(sis, where)
    assert "column 'pupil_id'" in message
    assert "table 'grades'" in message


@SQLITE_ONLY
def test_unknown_nested_dependent_column_is_named(sis: Database) -> None:
    """A nested dependent's unknown column is found too."""
    where = location(
        dependents=[
            {
                "table": "grades",
                "columns": ["student_id"],
                "dependents": [{"table": "grade_comments", "columns": ["grade"]}],
            }
        ]
    )
    message = prepare_error(sis, where)
    assert "column 'grade'" in message
    assert "table 'grade_comments'" in message


@SQLITE_ONLY
def test_unknown_referenced_column_is_named(sis: Database) -> None:
    """A 'references' column that the parent table lacks is named."""
    where = location(
        dependents=[{"table": "grades", "columns": ["student_id"], "references": ["number"]}]
    )
    message = prepare_error(sis, where)
    assert "column 'number'" in message
    assert "table 'students'" in message


@SQLITE_ONLY
def test_dependent_with_wrong_number_of_columns_is_rejected(sis: Database) -> None:
    """A dependent with one column under a composite key must say which columns it references."""
    where = location(
        "attendance",
        key=["student_id", "day"],
        dependents=[{"table": "attendance_notes", "columns": ["student_id"]}],
        subject="student_id",
    )
    message = prepare_error(sis, where, ColumnClock(column="day"))
    assert "'attendance_notes' has 1 column(s)" in message
    assert "references" in message


@SQLITE_ONLY
def test_nested_dependent_of_a_table_without_key_needs_references(sis: Database) -> None:
    """Under a dependent table without primary key, a nested dependent must name references."""
    where = location(
        dependents=[
            {
                "table": "logins",
                "columns": ["student_id"],
                "dependents": [{"table": "grades", "columns": ["student_id"]}],
            }
        ]
    )
    message = prepare_error(sis, where)
    assert "table 'logins' has no primary key" in message


@SQLITE_ONLY
def test_named_clock_is_rejected_with_the_fix(sis: Database) -> None:
    """A file-style clock (created, modified, …) is rejected, naming the clocks a table has."""
    message = prepare_error(sis, location(), "created")
    assert "{column: NAME}" in message
    assert "{event: ID}" in message


def test_clock_column_must_be_a_date(sis: Database) -> None:
    """A clock column that holds text is rejected."""
    message = prepare_error(sis, location(), ColumnClock(column="name"))
    assert "clock column 'name'" in message
    assert "not a date or timestamp" in message


@SQLITE_ONLY
def test_event_clock_needs_a_subject(sis: Database) -> None:
    """An event clock on a location without subject column is rejected."""
    message = prepare_error(sis, location(subject=None), EventClock(event="left"))
    assert "needs the location's subject column" in message


def test_table_name_with_sql_is_an_unknown_table(sis: Database) -> None:
    """A table name carrying SQL is looked up as a name, found nowhere, and runs nothing."""
    message = prepare_error(sis, location("students; --"))
    assert "table 'students; --' does not exist" in message
    assert student_count(sis) == 5


def test_column_name_with_sql_is_an_unknown_column(sis: Database) -> None:
    """A column name carrying SQL is looked up as a name, found nowhere, and runs nothing."""
    message = prepare_error(sis, location(subject="name; DROP TABLE students"))
    assert "column 'name; DROP TABLE students'" in message
    assert student_count(sis) == 5


def test_condition_value_with_sql_is_only_a_value(sis: Database) -> None:
    """A condition value carrying SQL is bound as a value: it matches no row and runs nothing."""
    where = location(where=[{"column": "name", "value": "x'; DROP TABLE students; --"}])
    with sis.connector() as connector:
        items, _ = scan(connector, where)
    assert items == {}
    assert student_count(sis) == 5


def test_condition_value_with_sql_for_an_integer_column_is_rejected(sis: Database) -> None:
    """A value that is no integer, for an integer column, is rejected rather than converted."""
    message = prepare_error(
        sis, location(where=[{"column": "id", "value": "1; DROP TABLE students"}])
    )
    assert "'1; DROP TABLE students' is not a valid int for column 'id'" in message
    assert student_count(sis) == 5
