"""Reading an event's date per subject: "student left school" from an enrolments table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sql_databases import SQLITE, Database
from sql_sis import NOW, TZ

from sweeper.errors import LocationInvalid
from sweeper.ropa.model import SqlEvent


def left_school(**fields: Any) -> SqlEvent:
    """Return the event "left school": the latest regular enrolment's end date."""
    defaults: dict[str, Any] = {
        "id": "left",
        "system": "sis",
        "table": "enrolments",
        "subject": "student_id",
        "date": "end_date",
        "where": [{"column": "kind", "value": "regular"}],
    }
    return SqlEvent.model_validate({**defaults, **fields})


def read(db: Database, subjects: list[str], event: SqlEvent | None = None) -> dict[str, datetime]:
    with db.connector() as connector:
        return connector.read_event(event or left_school(), subjects, NOW, TZ)


def test_student_who_left_gets_latest_end_date(sis: Database) -> None:
    """A student whose enrolments all ended gets the latest end date, at midnight in tz."""
    assert read(sis, ["1"]) == {"1": datetime(2021, 7, 10, tzinfo=TZ)}


def test_newer_open_enrolment_means_no_event(sis: Database) -> None:
    """A student with an old ended enrolment and a newer open one (NULL end) has not left."""
    assert read(sis, ["2"]) == {}


def test_end_date_in_the_future_means_no_event(sis: Database) -> None:
    """A student whose enrolment ends after now has not left yet."""
    assert read(sis, ["3"]) == {}


def test_subject_without_rows_has_no_event(sis: Database) -> None:
    """A student without enrolments has no event."""
    assert read(sis, ["4"]) == {}


def test_where_chooses_the_rows_that_count(sis: Database) -> None:
    """Rows excluded by the event's where (an open trial enrolment) do not keep it open."""
    assert read(sis, ["5"]) == {"5": datetime(2020, 6, 30, tzinfo=TZ)}
    assert read(sis, ["5"], left_school(where=[])) == {}


def test_null_date_is_ignored_when_not_open(sis: Database) -> None:
    """With null_means_open false, a NULL date neither counts nor keeps the event open."""
    event = left_school(null_means_open=False)
    assert read(sis, ["2"], event) == {"2": datetime(2018, 7, 1, tzinfo=TZ)}


def test_subjects_are_coerced_to_an_integer_column(sis: Database) -> None:
    """Subject text is matched against an integer column as a number; non-numbers match none."""
    found = read(sis, ["1", "abc", "1; DROP TABLE enrolments", "5"])
    assert found == {"1": datetime(2021, 7, 10, tzinfo=TZ), "5": datetime(2020, 6, 30, tzinfo=TZ)}


def test_more_subjects_than_one_batch(sis: Database) -> None:
    """Thousands of subjects are read in batches with the same result."""
    found = read(sis, [str(n) for n in range(1, 2501)])
    assert sorted(found) == ["1", "5"]


def test_text_subjects_and_timestamps_in_quoted_names(sis: Database) -> None:
    """An event on text subjects and a timestamp column, in a table with spaces in its names."""
    event = left_school(table="Exam Results", subject="StudentNumber", date="Taken On", where=[])
    assert read(sis, ["S001", "S002", "S404"], event) == {
        "S001": datetime(2019, 6, 1, 9, tzinfo=TZ),
        "S002": datetime(2024, 6, 1, 9, tzinfo=TZ),
    }


def test_event_date_equal_to_now_has_happened(sis: Database) -> None:
    """An end date of today (midnight) is not after now: the event has happened."""
    with sis.connector() as connector:
        found = connector.read_event(left_school(), ["1"], datetime(2021, 7, 10, tzinfo=TZ), TZ)
        assert found == {"1": datetime(2021, 7, 10, tzinfo=TZ)}
        before = datetime(2021, 7, 9, 23, 59, tzinfo=TZ)
        assert connector.read_event(left_school(), ["1"], before, TZ) == {}


def test_unknown_event_column_is_named(sis: Database) -> None:
    """An event naming a column the table lacks raises LocationInvalid naming it."""
    with sis.connector() as connector, pytest.raises(LocationInvalid, match="'ended_on'"):
        connector.read_event(left_school(date="ended_on"), ["1"], NOW, TZ)


def test_event_date_column_must_be_a_date(sis: Database) -> None:
    """An event whose date column holds text is rejected when prepared."""
    with sis.connector() as connector, pytest.raises(LocationInvalid, match="not a date"):
        connector.prepare_event(left_school(date="kind"))


@pytest.mark.parametrize("db", [SQLITE], indirect=True)
def test_naive_now_is_refused(sis: Database) -> None:
    """A naive 'now' is a bug in the caller, refused rather than guessed."""
    with sis.connector() as connector, pytest.raises(ValueError, match="timezone-aware"):
        connector.read_event(left_school(), ["1"], datetime(2025, 1, 1), TZ)
