"""Looking items up again by key, to re-verify them before acting.

Every lookup here runs on a read-only connector (the default of ``Database.connector``), as the
executor's re-verification may.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sql_databases import Database
from sql_sis import CREATED, TZ, add_students, attendance, location, scan, students

from connectors.base import ScannedItem
from sweeper.errors import LocationInvalid
from sweeper.ropa.model import Clock, ColumnClock, EventClock, SqlLocation

WHERE = location(fingerprint=["updated_at"])


def lookup(
    db: Database, keys: list[str], where: SqlLocation = WHERE, clock: Clock = CREATED
) -> dict[str, ScannedItem]:
    with db.connector() as connector:
        return connector.lookup(where, clock, TZ, keys)


@pytest.mark.parametrize(
    "clock",
    [CREATED, ColumnClock(column="left_on"), EventClock(event="left")],
    ids=["timestamp", "date", "event"],
)
def test_lookup_reads_unchanged_rows_as_scan_does(sis: Database, clock: Clock) -> None:
    """An unchanged row looked up has the key, subject, clock, problem and fingerprint of its
    scan."""
    with sis.connector() as connector:
        scanned, _ = scan(connector, WHERE, clock)
    found = lookup(sis, ["5", "1", "4"], clock=clock)
    assert found == {key: scanned[key]._replace(details=None) for key in ("1", "4", "5")}


def test_lookup_leaves_out_keys_without_a_row(sis: Database) -> None:
    """Keys whose rows no longer exist are absent from the result."""
    with sis.admin.begin() as conn:
        conn.execute(students.delete().where(students.c.id == 4))  # no dependents
    assert sorted(lookup(sis, ["1", "4", "99"])) == ["1"]


def test_lookup_sees_a_changed_clock(sis: Database) -> None:
    """After an UPDATE of its clock column a row has a new fingerprint and clock; others not."""
    before = lookup(sis, ["1", "2"])
    with sis.admin.begin() as conn:
        conn.execute(
            students.update()
            .where(students.c.id == 2)
            .values(created_at=datetime(2025, 5, 1, 9, 0))
        )
    after = lookup(sis, ["1", "2"])
    assert after["1"] == before["1"]
    assert after["2"].fingerprint != before["2"].fingerprint
    assert after["2"].clock == datetime(2025, 5, 1, 9, 0, tzinfo=TZ)


@pytest.mark.parametrize(
    "values",
    [{"student_number": "S999"}, {"updated_at": datetime(2025, 5, 1)}],
    ids=["subject", "fingerprint-column"],
)
def test_lookup_fingerprint_changes_with_subject_or_fingerprint_column(
    sis: Database, values: dict[str, object]
) -> None:
    """Changing the subject or a fingerprint column changes the fingerprint."""
    before = lookup(sis, ["2"])
    with sis.admin.begin() as conn:
        conn.execute(students.update().where(students.c.id == 2).values(**values))
    assert lookup(sis, ["2"])["2"].fingerprint != before["2"].fingerprint


def test_lookup_leaves_out_rows_that_no_longer_meet_the_conditions(sis: Database) -> None:
    """A row that no longer meets the location's where is no longer an item: absent."""
    where = location(where=[{"column": "left_on", "op": "is null"}])
    assert sorted(lookup(sis, ["1", "2"], where)) == ["2"]


def test_lookup_composite_keys_as_scanned(sis: Database) -> None:
    """Composite keys, dates among them, are looked up to the items the scan gave."""
    where = location("attendance", key=["student_id", "day"], subject="student_id")
    clock = ColumnClock(column="day")
    with sis.connector() as connector:
        scanned, _ = scan(connector, where, clock)
    found = lookup(sis, list(scanned), where, clock)
    assert found == {key: item._replace(details=None) for key, item in scanned.items()}


def test_lookup_of_2500_keys(sis: Database) -> None:
    """2,500 keys (three statements) are all found, and only they."""
    add_students(sis.admin, range(1001, 3601))
    keys = [str(n) for n in range(1001, 3501)]
    found = lookup(sis, keys)
    assert sorted(found, key=int) == keys
    assert found["3500"].subject == "S3500"


def test_lookup_refuses_a_key_that_does_not_fit(sis: Database) -> None:
    """A key that cannot be a value of the key column is an error naming it, not "gone"."""
    with pytest.raises(LocationInvalid, match="item key 'S001'"):
        lookup(sis, ["1", "S001"])


def test_lookup_of_a_full_batch_of_composite_keys(sis: Database) -> None:
    """1,200 composite keys are looked up, a full batch of them in one statement."""
    days = [date.fromordinal(730000 + n) for n in range(1200)]
    with sis.admin.begin() as conn:
        conn.execute(attendance.insert(), [{"student_id": 3, "day": d} for d in days])
    where = location("attendance", key=["student_id", "day"], subject="student_id")
    keys = [f'[3,"{d.isoformat()}"]' for d in days]
    assert sorted(lookup(sis, keys, where, ColumnClock(column="day"))) == sorted(keys)
