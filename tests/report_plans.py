"""Stored plans with every status a report must explain, built through the real plan builder
with the FakeConnector: due items of many ages, a held one, locked and protected ones, one
without a clock, items waiting for an event, not-due ones, and a decommissioned system, in
two plans a month apart (for the legacy history). Keys include markup and a formula, so the
reports must escape them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fakes import FakeConnector, fake_connectors

from connectors.base import ScannedItem
from sweeper.audit import AuditLog
from sweeper.holds import place
from sweeper.plan import PlanOptions, build_plan
from sweeper.ropa import load_ropa
from sweeper.settings import Settings
from sweeper.store import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: Europe/Amsterdam
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
  - {id: media, name: Recordings, kind: sql, owner: IT, connection: {url: "sqlite:///m.db"}}
  - id: old
    name: Old SIS
    kind: sql
    owner: IT
    status: decommissioned
    decommissioned_on: 2021-08-01
    connection: {url: "sqlite:///old.db"}
events:
  - {id: left, system: sis, table: enrolments, subject: student_id, date: end_date}
activities:
  - id: grades
    name: Grades
    retention:
      period: P2Y
      clock: {column: created}
      action: delete
      source: School policy
      source_kind: policy
      note: No law sets this period.
    locations:
      - {system: sis, table: grades, key: id, subject: student}
  - id: students
    name: Pupil administration
    retention:
      {period: P5Y, clock: {event: left}, action: delete, source: Besluit bekostiging WPO}
    locations:
      - {system: sis, table: students, key: id, subject: id}
  - id: recordings
    name: Exam recordings
    retention: {period: P6M, clock: {column: recorded}, action: delete, auto_approve: true}
    locations:
      - {system: media, table: recordings, key: id}
  - id: legacy
    name: Old pupils
    retention: {period: P1Y, clock: {column: left_on}, action: delete}
    locations:
      - {system: old, table: pupils, key: id, subject: nr}
"""

GRADE_AGES = (1, 10, 40, 100, 200, 400, 800, 1500, 2500)  # days overdue of the due grades
HELD_SUBJECT = "200777"
MARKUP_KEY = "<script>alert('x')</script>"
FORMULA_KEY = '=HYPERLINK("http://attacker.example","open")'


@dataclass(frozen=True)
class Plans:
    settings: Settings
    store: Store
    earlier: str
    latest: str


def _item(
    key: str, clock: datetime | None, subject: str | None = None, **kw: object
) -> ScannedItem:
    return ScannedItem(key, subject, clock, f"fp-{key}", 100, **kw)  # type: ignore[arg-type]


def _fill(now: datetime, legacy_count: int) -> None:
    due_at = now - timedelta(days=730)
    grades = [
        _item(f"g{i}", due_at - timedelta(days=age), f"10{i:04d}")
        for i, age in enumerate(GRADE_AGES)
    ]
    grades += [
        _item(MARKUP_KEY, due_at - timedelta(days=3), "100100"),
        _item(FORMULA_KEY, due_at - timedelta(days=5), "100101"),
        _item("held-grade", due_at - timedelta(days=30), HELD_SUBJECT),
        _item("no-date", None, "100102", problem="created is NULL"),
        _item("young-1", now - timedelta(days=10), "100103"),
        _item("young-2", now - timedelta(days=20), "100104"),
    ]
    FakeConnector.items = {
        ("sis", "grades"): grades,
        ("sis", "students"): [
            _item("s1", None, "300001"),
            _item("s2", None, "300002"),
            _item("s3", None, "300003"),
        ],
        ("media", "recordings"): [
            _item(
                "exam-2024.mp4",
                now - timedelta(days=400),
                refused="locked",
                reason="COMPLIANCE retention until 2031-06-30",
            ),
            _item(
                "exam-2023.mp4",
                now - timedelta(days=800),
                refused="protected",
                reason="break-glass account, never touched",
            ),
            _item("exam-2022.mp4", now - timedelta(days=1200)),
        ],
        ("old", "pupils"): [
            _item(f"p{i}", now - timedelta(days=3000), f"9{i:05d}") for i in range(legacy_count)
        ],
    }
    FakeConnector.events = {"300001": now - timedelta(days=6 * 365)}  # s2, s3 have not left


def build_plans(tmp_path: Path) -> Plans:
    """Store two plans of the same RoPA a month apart; return the settings, store and ids."""
    FakeConnector.reset()
    path = tmp_path / "ropa.yaml"
    path.write_text(textwrap.dedent(ROPA), encoding="utf-8")
    settings = Settings(state_dir=tmp_path / "state", reports_dir=tmp_path / "reports")
    store = Store.open(settings.state_database_url)
    loaded = load_ropa(path)
    ids = []
    for now, legacy in ((NOW - timedelta(days=30), 7), (NOW, 5)):
        _fill(now, legacy)
        if not ids:
            place(
                store,
                "subject",
                reason="complaint 2026-17",
                by="FG",
                now=now,
                subject=HELD_SUBJECT,
                audit=AuditLog.open(settings, store),
            )
        result = build_plan(
            loaded,
            settings,
            store,
            PlanOptions(
                now=now,
                connectors=fake_connectors,
                created_by="tester",
                reports_dir=settings.reports_path,
            ),
        )
        ids.append(result.plan_id)
    return Plans(settings, store, ids[0], ids[1])
