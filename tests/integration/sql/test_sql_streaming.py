"""Scanning a large table in bounded memory.

Two measures: tracemalloc's peak counts what Python allocates; the peak resident set size
(Linux's VmHWM, reset before the scan) also counts what a driver buffers in C, e.g. a whole
result held by libpq when a server-side cursor silently is not one.
"""

from __future__ import annotations

import re
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sql_databases import POSTGRES, Database
from sql_sis import TZ, location

from connectors.base import NotDueSummary, ScannedItem, ScanRequest
from connectors.sql import SqlConnector
from sweeper.ropa.model import ColumnClock

ROWS = 200_000
LIMIT = 50 * 2**20
CLOCK = ColumnClock(column="enrolled")
WHERE = location("pupils", subject="number", fingerprint=["name"])
CUTOFF = datetime(2006, 1, 1, tzinfo=TZ)  # about 90% of the rows are due


@pytest.fixture
def pupils(db: Database, request: pytest.FixtureRequest) -> Database:
    """A table of 200,000 pupils with wide rows, with or without primary key."""
    constraint = "PRIMARY KEY" if request.param == "keyset" else ""
    with db.admin.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE pupils (id integer {constraint}, number text, name text, "
                "enrolled timestamp)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO pupils SELECT g, 'P' || g, 'Pupil ' || g || repeat('x', 300), "
                "timestamp '2000-01-01' + g * interval '17 minutes' "
                f"FROM generate_series(1, {ROWS}) AS g"
            )
        )
    return db


def scan_all(connector: SqlConnector) -> tuple[int, int]:
    """Scan the pupils; return the number of items and of rows counted as not due."""
    items = not_due = 0
    for out in connector.scan(ScanRequest(WHERE, CLOCK, TZ, CUTOFF)):
        if isinstance(out, ScannedItem):
            items += 1
        elif isinstance(out, NotDueSummary):
            not_due = out.count
    return items, not_due


def peak_resident_kib() -> int:
    found = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None
    return int(found.group(1))


def measured_scan(db: Database, traced: bool) -> tuple[int, int, int, float]:
    """Scan the pupils; return the items, the rows not due, the peak traced memory (0 when not
    traced) and the growth of the peak resident set, both in bytes, and the seconds taken.
    """
    with db.connector() as connector:
        connector.prepare(WHERE, CLOCK)
        connector.check()  # the pooled connection exists before the measurement
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        resident = peak_resident_kib()
        started = time.perf_counter()
        if traced:
            tracemalloc.start()
        items, not_due = scan_all(connector)
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
        elapsed = time.perf_counter() - started
        growth = (peak_resident_kib() - resident) * 1024
    print(f"{ROWS} rows in {elapsed:.1f}s: traced peak {peak / 2**20:.1f} MB, ", end="")
    print(f"resident peak grew {growth / 2**20:.1f} MB")
    return items, not_due, peak, growth


@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
@pytest.mark.parametrize("pupils", ["keyset"], indirect=True)
def test_keyset_scan_of_200k_rows_stays_under_50_mb(pupils: Database) -> None:
    """Paging 200,000 wide rows by primary key peaks well under 50 MB, traced and resident."""
    items, not_due, traced, resident = measured_scan(pupils, traced=True)
    assert items + not_due == ROWS
    assert items > ROWS * 0.8
    assert traced < LIMIT, f"peak traced memory {traced / 2**20:.1f} MB"
    assert resident < LIMIT, f"resident set grew {resident / 2**20:.1f} MB"


@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
@pytest.mark.parametrize("pupils", ["server-side-cursor"], indirect=True)
def test_streamed_scan_of_200k_rows_stays_under_50_mb_resident(pupils: Database) -> None:
    """Streaming 200,000 wide rows (66 MB selected) without key index keeps them off the heap."""
    items, not_due, _, resident = measured_scan(pupils, traced=False)
    assert items + not_due == ROWS
    assert resident < LIMIT, f"resident set grew {resident / 2**20:.1f} MB"
