"""The plan builder's lifecycle logic, against the FakeConnector."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import FakeConnector, fake_connectors

from connectors.base import ScanFinding, ScannedItem
from sweeper.plan import PlanOptions, build_plan
from sweeper.ropa import load_ropa
from sweeper.settings import Settings
from sweeper.store import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: UTC
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
  - {id: crm, name: CRM, kind: sql, owner: IT, connection: {url: "sqlite:///crm.db"}}
  - id: old
    name: Old SIS
    kind: sql
    owner: IT
    status: decommissioned
    decommissioned_on: 2020-08-01
    connection: {url: "sqlite:///old.db"}
events:
  - {id: left, system: sis, table: enrolments, subject: student_id, date: end_date}
activities:
  - id: grades
    name: Grades
    retention: {period: P2Y, clock: {column: created}, action: delete}
    locations:
      - {system: sis, table: grades, key: id, subject: student}
      - {system: crm, table: contacts, key: id}
  - id: students
    name: Students
    retention: {period: P5Y, clock: {event: left}, action: anonymise}
    locations:
      - {system: sis, table: students, key: id, subject: id, anonymise: {name: null}}
  - id: legacy
    name: Old pupils
    retention: {period: P1Y, clock: {column: left_on}, action: delete}
    locations:
      - {system: old, table: pupils, key: id, subject: nr}
"""


def item(key: str, clock: datetime | None, subject: str | None = None, **kw: object) -> ScannedItem:
    return ScannedItem(key, subject, clock, f"fp-{key}", **kw)  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Path, Settings, Store]]:
    FakeConnector.reset()
    path = tmp_path / "ropa.yaml"
    path.write_text(textwrap.dedent(ROPA))
    settings = Settings(state_dir=tmp_path / "state")
    store = Store.open(settings.state_database_url)
    yield path, settings, store
    store.close()


def plan(env: tuple[Path, Settings, Store], **options: object) -> tuple[str, Store]:
    path, settings, store = env
    result = build_plan(
        load_ropa(path),
        settings,
        store,
        PlanOptions(now=NOW, connectors=fake_connectors, **options),  # type: ignore[arg-type]
    )
    return result.plan_id, store


def test_column_clock_items_past_due_are_due(env: tuple[Path, Settings, Store]) -> None:
    """An item whose clock + period is before now is due; a later one is only counted."""
    FakeConnector.items[("sis", "grades")] = [
        item("1", datetime(2020, 1, 1, tzinfo=UTC), "s1"),
        item("2", datetime(2026, 1, 1, tzinfo=UTC), "s2"),
    ]
    plan_id, store = plan(env)
    items = list(store.items(plan_id))
    assert [(i["key"], i["status"], i["action"]) for i in items] == [("1", "due", "delete")]
    assert items[0]["due_date"] == "2022-01-01T00:00:00+00:00"
    grades = store.locations(plan_id)[0]
    assert grades["counts"] == {"due": 1, "not_due": 1}
    assert grades["next_due"] == "2028-01-01T00:00:00+00:00"


def test_due_exactly_now_is_due(env: tuple[Path, Settings, Store]) -> None:
    """An item whose due date equals the plan's clock is due (due means at or before now)."""
    FakeConnector.items[("sis", "grades")] = [item("1", datetime(2024, 11, 29, 12, tzinfo=UTC))]
    plan_id, store = plan(env)
    assert [i["status"] for i in store.items(plan_id)] == ["due"]


def test_cutoff_is_passed_to_connector(env: tuple[Path, Settings, Store]) -> None:
    """Column clocks get a cutoff so the connector can count instead of list."""
    plan(env)
    grades = next(r for r in FakeConnector.requests if r.location.table == "grades")
    assert grades.cutoff is not None
    assert datetime(2024, 11, 29, 12, tzinfo=UTC) <= grades.cutoff


def test_list_not_due_lists_every_item(env: tuple[Path, Settings, Store]) -> None:
    """With list_not_due, items not yet due are stored one by one."""
    FakeConnector.items[("sis", "grades")] = [item("2", datetime(2026, 1, 1, tzinfo=UTC))]
    plan_id, store = plan(env, list_not_due=True)
    assert [(i["key"], i["status"], i["action"]) for i in store.items(plan_id)] == [
        ("2", "not_due", "none")
    ]


def test_event_clock_uses_event_date_per_subject(env: tuple[Path, Settings, Store]) -> None:
    """A student who left 6 years ago is due; one who left 1 year ago or never is not."""
    FakeConnector.items[("sis", "students")] = [
        item("1", None, "1"),
        item("2", None, "2"),
        item("3", None, "3"),
    ]
    FakeConnector.events = {
        "1": datetime(2020, 7, 1, tzinfo=UTC),
        "2": datetime(2025, 7, 1, tzinfo=UTC),
    }
    plan_id, store = plan(env)
    items = list(store.items(plan_id))
    assert [(i["key"], i["status"], i["clock_start"]) for i in items] == [
        ("1", "due", "2020-07-01T00:00:00+00:00")
    ]
    counts = next(loc for loc in store.locations(plan_id) if loc["activity"] == "students")
    assert counts["counts"] == {"due": 1, "not_due": 1, "waiting_event": 1}


def test_unreadable_clock_is_listed_as_no_clock(env: tuple[Path, Settings, Store]) -> None:
    """An item whose clock cannot be read is listed with the reason, not acted on."""
    FakeConnector.items[("sis", "grades")] = [item("9", None, problem="clock column is NULL")]
    plan_id, store = plan(env)
    [row] = store.items(plan_id)
    assert (row["status"], row["action"], row["reason"]) == (
        "no_clock",
        "none",
        "clock column is NULL",
    )


def test_decommissioned_system_items_are_legacy_due(env: tuple[Path, Settings, Store]) -> None:
    """Every item on a decommissioned system is legacy_due from the decommissioning date."""
    FakeConnector.items[("old", "pupils")] = [
        item("1", datetime(2026, 1, 1, tzinfo=UTC), "900", size=10),
        item("2", datetime(2019, 1, 1, tzinfo=UTC), "901", size=5),
    ]
    plan_id, store = plan(env)
    rows = [r for r in store.items(plan_id) if r["status"] == "legacy_due"]
    assert [r["key"] for r in rows] == ["1", "2"]
    assert {r["due_date"] for r in rows} == {"2020-08-01T00:00:00+00:00"}
    [legacy] = store.plan(plan_id)["summary"]["legacy_systems"]
    assert legacy["system"] == "old"
    assert legacy["reachable"] is True
    assert (legacy["items"], legacy["bytes"], legacy["subjects"]) == (2, 15, 2)
    assert legacy["days_since"] == (NOW.date() - datetime(2020, 8, 1).date()).days


def test_unreachable_decommissioned_system_does_not_fail_plan(
    env: tuple[Path, Settings, Store],
) -> None:
    """A decommissioned system that no longer answers is good news, not a failure."""
    FakeConnector.unreachable = {"old"}
    path, settings, store = env
    result = build_plan(
        load_ropa(path), settings, store, PlanOptions(now=NOW, connectors=fake_connectors)
    )
    assert result.complete is True
    [legacy] = result.summary["legacy_systems"]
    assert legacy["reachable"] is False
    assert "connection refused" in legacy["reason"]


def test_failing_system_does_not_stop_others(env: tuple[Path, Settings, Store]) -> None:
    """An unreachable active system fails its locations; the others are still scanned."""
    FakeConnector.unreachable = {"crm"}
    FakeConnector.items[("sis", "grades")] = [item("1", datetime(2020, 1, 1, tzinfo=UTC))]
    path, settings, store = env
    result = build_plan(
        load_ropa(path), settings, store, PlanOptions(now=NOW, connectors=fake_connectors)
    )
    assert result.complete is False
    assert result.summary["failed_systems"] == {"crm": "system 'crm': connection refused (fake)"}
    outcomes = {loc["label"]: loc["outcome"] for loc in store.locations(result.plan_id)}
    assert outcomes["crm:contacts"] == "failed"
    assert outcomes["sis:grades"] == "scanned"
    assert [i["key"] for i in store.items(result.plan_id)] == ["1"]


def test_invalid_location_fails_only_that_location(env: tuple[Path, Settings, Store]) -> None:
    """A location whose table does not exist is failed with the reason; its siblings scan."""
    FakeConnector.invalid_tables = {"contacts"}
    plan_id, store = plan(env)
    failed = [loc for loc in store.locations(plan_id) if loc["outcome"] == "failed"]
    assert [(f["label"], f["error"]) for f in failed] == [
        ("crm:contacts", "system 'crm': no table 'contacts' (fake)")
    ]


def test_scan_findings_are_stored(env: tuple[Path, Settings, Store]) -> None:
    """Findings a scan reports are stored with the plan."""
    FakeConnector.findings[("sis", "grades")] = [ScanFinding("unreadable", "x/y", "denied")]
    plan_id, store = plan(env)
    [finding] = store.findings(plan_id)
    assert (finding["kind"], finding["where"], finding["system"]) == ("unreadable", "x/y", "sis")


def test_content_hash_depends_on_items(env: tuple[Path, Settings, Store]) -> None:
    """Two plans of the same data have one content hash; a changed fingerprint changes it."""
    FakeConnector.items[("sis", "grades")] = [item("1", datetime(2020, 1, 1, tzinfo=UTC))]
    first, store = plan(env)
    second, _ = plan(env)
    FakeConnector.items[("sis", "grades")] = [
        item("1", datetime(2020, 1, 1, tzinfo=UTC))._replace(fingerprint="changed")
    ]
    third, _ = plan(env)
    hashes = [store.plan(p)["content_hash"] for p in (first, second, third)]
    assert hashes[0] == hashes[1] != hashes[2]
    assert all(store.plan(p)["state"] == "ready" for p in (first, second, third))


def test_naive_now_is_refused(env: tuple[Path, Settings, Store]) -> None:
    """A naive clock is a bug: build_plan refuses it."""
    path, settings, store = env
    with pytest.raises(ValueError, match="timezone-aware"):
        build_plan(
            load_ropa(path),
            settings,
            store,
            PlanOptions(now=datetime(2026, 1, 1), connectors=fake_connectors),
        )


def test_invalid_event_fails_its_locations_before_scanning(
    env: tuple[Path, Settings, Store],
) -> None:
    """An event whose table does not exist fails the locations that use it, unscanned."""
    FakeConnector.invalid_tables = {"enrolments"}
    plan_id, store = plan(env)
    failed = {loc["label"]: loc["error"] for loc in store.locations(plan_id) if loc["error"]}
    assert failed == {"sis:students": "event 'left': system 'sis': no table 'enrolments' (fake)"}
    assert "students" not in [r.location.table for r in FakeConnector.requests]
