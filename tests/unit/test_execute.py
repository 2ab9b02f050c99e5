"""Approval and execution against the FakeConnector: every refusal, re-verification, limit."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fakes import FakeConnector, fake_connectors

from connectors.base import ScannedItem
from sweeper import approve as approval
from sweeper import execute as execution
from sweeper.approve import PlanRefused
from sweeper.audit import AuditError, AuditLog
from sweeper.holds import all_holds, place, release
from sweeper.plan import PlanOptions, build_plan
from sweeper.ropa import load_ropa
from sweeper.settings import Settings
from sweeper.store import Store, journal, plan_items

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: UTC
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
  - {id: cams, name: Cameras, kind: sql, owner: IT, connection: {url: "sqlite:///cams.db"}}
events:
  - {id: left, system: sis, table: enrolments, subject: student_id, date: end_date}
activities:
  - id: grades
    name: Grades
    retention:
      period: P2Y
      clock: {column: created}
      action: delete
      limits: {max_fraction: 1}
    locations:
      - {system: sis, table: grades, key: id, subject: student}
  - id: students
    name: Students
    retention:
      period: P5Y
      clock: {event: left}
      action: delete
      limits: {max_fraction: 1}
    locations:
      - {system: sis, table: students, key: id, subject: id}
  - id: footage
    name: Camera footage
    retention: {period: P4W, clock: {column: recorded}, action: delete, auto_approve: true,
                limits: {max_fraction: 1}}
    locations:
      - {system: cams, table: footage, key: id}
"""

OLD = datetime(2020, 1, 1, tzinfo=UTC)


def item(key: str, subject: str | None = None, clock: datetime | None = OLD) -> ScannedItem:
    return ScannedItem(key, subject, clock, f"fp-{key}")


@dataclass
class Env:
    path: Path
    settings: Settings
    store: Store

    @property
    def audit(self) -> AuditLog:
        return AuditLog.open(self.settings, self.store)

    def plan(self, now: datetime = NOW) -> str:
        result = build_plan(
            load_ropa(self.path),
            self.settings,
            self.store,
            PlanOptions(now=now, connectors=fake_connectors, created_by="planner"),
        )
        return result.plan_id

    def approve(self, plan_id: str, by: str = "fg", only: tuple[str, ...] = ()) -> None:
        approval.approve(
            self.store,
            self.store.plan(plan_id),
            self.settings,
            by=by,
            note=None,
            only=only,
            now=NOW,
            current_digest=load_ropa(self.path).digest,
            audit=AuditLog.open(self.settings, self.store),
        )

    def execute(self, plan_id: str, now: datetime = NOW) -> execution.ExecutionResult:
        return execution.execute(
            load_ropa(self.path),
            self.settings,
            self.store,
            plan_id,
            execution.ExecuteOptions(now=now, actor="ops"),
        )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    FakeConnector.reset()
    monkeypatch.setattr(execution, "connector_class", fake_connectors)
    path = tmp_path / "ropa.yaml"
    path.write_text(textwrap.dedent(ROPA))
    settings = Settings(state_dir=tmp_path / "state")
    store = Store.open(settings.state_database_url)
    FakeConnector.items[("sis", "grades")] = [item("g1", "s1"), item("g2", "s2")]
    FakeConnector.items[("sis", "students")] = [item("s1", "s1", None), item("s2", "s2", None)]
    FakeConnector.items[("cams", "footage")] = [item("f1")]
    FakeConnector.events = {"s1": datetime(2019, 7, 1, tzinfo=UTC)}
    yield Env(path, settings, store)
    store.close()


def acted(table: str) -> list[str]:
    return [key for t, _, key in FakeConnector.acted if t == table]


def test_unapproved_plan_acts_only_on_auto_approve_rules(env: Env) -> None:
    """Without an approval only auto_approve rules (camera footage) are executed."""
    result = env.execute(env.plan())
    assert acted("footage") == ["f1"]
    assert acted("grades") == [] and acted("students") == []
    outcomes = {loc.label: loc.outcome for loc in result.locations}
    assert outcomes["sis:grades"] == "not_approved"


def test_approved_plan_deletes_due_items(env: Env) -> None:
    """After approval every due item is acted on once and journaled as done."""
    plan_id = env.plan()
    env.approve(plan_id)
    result = env.execute(plan_id)
    assert acted("grades") == ["g1", "g2"]
    assert acted("students") == ["s1"]
    assert result.ok and result.total("done") == 4


def test_second_execution_acts_on_nothing(env: Env) -> None:
    """Running an executed plan again acts on nothing: the journal says it is finished."""
    plan_id = env.plan()
    env.approve(plan_id)
    env.execute(plan_id)
    before = list(FakeConnector.acted)
    again = env.execute(plan_id)
    assert FakeConnector.acted == before
    assert again.total("done") == 0 and again.total("already") == 4


def test_partial_approval_covers_only_its_scope(env: Env) -> None:
    """`--only activity=grades` approves grades; students stay unapproved."""
    plan_id = env.plan()
    env.approve(plan_id, only=("activity=grades",))
    env.execute(plan_id)
    assert acted("grades") == ["g1", "g2"] and acted("students") == []


def test_item_changed_after_planning_is_skipped(env: Env) -> None:
    """An item whose fingerprint changed since the plan is skipped with the reason."""
    plan_id = env.plan()
    env.approve(plan_id)
    FakeConnector.items[("sis", "grades")][0] = item("g1", "s1")._replace(fingerprint="new")
    env.execute(plan_id)
    assert acted("grades") == ["g2"]
    reason = _journal_reason(env.store, plan_id, "g1")
    assert reason == ("skipped", "changed since the plan was made")


def test_hold_placed_after_approval_wins(env: Env) -> None:
    """A subject hold placed after approval stops the subject's items from being acted on."""
    plan_id = env.plan()
    env.approve(plan_id)
    hold = place(
        env.store, "subject", subject="s1", reason="case 12", by="fg", now=NOW, audit=env.audit
    )
    env.execute(plan_id)
    assert acted("grades") == ["g2"]
    assert acted("students") == []
    assert _journal_reason(env.store, plan_id, "s1") == ("skipped", f"held by hold {hold.id}")


def test_reenrolled_student_is_no_longer_due(env: Env) -> None:
    """A student whose leaving event no longer holds (re-enrolled) is skipped."""
    plan_id = env.plan()
    env.approve(plan_id)
    FakeConnector.events = {}
    env.execute(plan_id)
    assert acted("students") == []
    assert _journal_reason(env.store, plan_id, "s1")[0] == "skipped"


def test_held_items_are_marked_in_the_plan(env: Env) -> None:
    """A hold existing at planning time marks the item held, with the hold's id and reason."""
    hold = place(
        env.store,
        "item",
        location="sis:grades",
        item_key="g2",
        reason="audit",
        by="fg",
        now=NOW,
        audit=env.audit,
    )
    plan_id = env.plan()
    rows = {i["key"]: i for i in env.store.items(plan_id)}
    assert rows["g2"]["status"] == "held"
    assert rows["g2"]["reason"] == f"hold {hold.id} on item g2 in sis:grades: audit"
    assert rows["g2"]["action"] == "none"


def test_limit_blocks_location_and_others_go_on(env: Env) -> None:
    """A location over its max_items is blocked and untouched; other locations execute."""
    text = env.path.read_text().replace(
        "      limits: {max_fraction: 1}\n    locations:\n      - {system: sis, table: grades",
        "      limits: {max_fraction: 1, max_items: 1}\n    locations:\n"
        "      - {system: sis, table: grades",
    )
    env.path.write_text(text)
    plan_id = env.plan()
    env.approve(plan_id)
    result = env.execute(plan_id)
    blocked = {loc.label: loc.reason for loc in result.locations if loc.outcome == "blocked"}
    assert list(blocked) == ["sis:grades"] and "max_items 1" in (blocked["sis:grades"] or "")
    assert acted("grades") == [] and acted("students") == ["s1"]
    assert not result.ok


def test_min_population_blocks_a_tiny_scan(env: Env) -> None:
    """A location whose scan found fewer items than min_population is blocked."""
    env.settings = Settings(state_dir=env.settings.state_dir, min_population=5)
    plan_id = env.plan()
    env.approve(plan_id)
    result = env.execute(plan_id)
    assert {loc.outcome for loc in result.locations if loc.counts or loc.reason} == {"blocked"}
    assert FakeConnector.acted == []


def test_failed_item_is_recorded_and_others_done(env: Env) -> None:
    """An item the connector fails on is journaled failed; the rest of the batch is done."""
    FakeConnector.fail_keys = {"g1"}
    plan_id = env.plan()
    env.approve(plan_id)
    result = env.execute(plan_id)
    assert acted("grades") == ["g2"]
    assert _journal_reason(env.store, plan_id, "g1") == ("failed", "constraint violated (fake)")
    assert not result.ok


def test_rejected_plan_is_refused(env: Env) -> None:
    """A rejected plan cannot be executed, even with an approval."""
    plan_id = env.plan()
    env.approve(plan_id)
    approval.reject(
        env.store, env.store.plan(plan_id), by="dpo", reason="wrong", now=NOW, audit=env.audit
    )
    with pytest.raises(PlanRefused, match="rejected by dpo"):
        env.execute(plan_id)
    assert FakeConnector.acted == []


def test_expired_plan_is_refused(env: Env) -> None:
    """A plan older than plan_max_age is refused."""
    plan_id = env.plan()
    env.approve(plan_id)
    with pytest.raises(PlanRefused, match="expired"):
        env.execute(plan_id, now=datetime.now(UTC) + timedelta(days=8))
    assert FakeConnector.acted == []


def test_plan_from_another_ropa_is_refused(env: Env) -> None:
    """A plan made from a RoPA whose digest differs from the current one is refused."""
    plan_id = env.plan()
    env.approve(plan_id)
    env.path.write_text(env.path.read_text().replace("period: P2Y", "period: P3Y"))
    with pytest.raises(PlanRefused, match="another version of the RoPA"):
        env.execute(plan_id)


def test_altered_plan_is_refused(env: Env) -> None:
    """A plan whose items were changed in the state store after approval is refused."""
    plan_id = env.plan()
    env.approve(plan_id)
    with env.store.engine.begin() as conn:
        conn.execute(
            plan_items.update()
            .where(plan_items.c.plan_id == plan_id, plan_items.c.key == "g1")
            .values(key="g9")
        )
    with pytest.raises(PlanRefused, match="altered"):
        env.execute(plan_id)
    assert FakeConnector.acted == []


def test_planner_cannot_approve_when_two_approvers_needed(env: Env) -> None:
    """With approvers_required 2, whoever ran the plan cannot approve it."""
    env.settings = Settings(state_dir=env.settings.state_dir, approvers_required=2)
    plan_id = env.plan()
    with pytest.raises(PlanRefused, match="ran this plan"):
        env.approve(plan_id, by="planner")


def test_two_approvers_needed_one_is_not_enough(env: Env) -> None:
    """With approvers_required 2, one approval executes nothing; two do."""
    env.settings = Settings(state_dir=env.settings.state_dir, approvers_required=2)
    plan_id = env.plan()
    env.approve(plan_id, by="fg")
    env.execute(plan_id)
    assert acted("grades") == []
    with pytest.raises(PlanRefused, match="already approved"):
        env.approve(plan_id, by="fg")
    env.approve(plan_id, by="ciso")
    env.execute(plan_id)
    assert acted("grades") == ["g1", "g2"]


def _journal_reason(store: Store, plan_id: str, key: str) -> tuple[str, str | None]:
    seq = next(i["seq"] for i in store.items(plan_id) if i["key"] == key)
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(journal.c.state, journal.c.reason).where(
                journal.c.plan_id == plan_id, journal.c.seq == seq
            )
        ).one()
    return row[0], row[1]


def test_connector_stopping_part_way_keeps_what_was_done(env: Env) -> None:
    """Outcomes yielded before a connector fails are journaled; the rest is finished later."""
    plan_id = env.plan()
    env.approve(plan_id)
    FakeConnector.stop_after = 1
    first = env.execute(plan_id)
    grades = next(loc for loc in first.locations if loc.label == "sis:grades")
    assert grades.outcome == "failed" and "connection lost" in (grades.reason or "")
    assert acted("grades") == ["g1"]
    assert _journal_reason(env.store, plan_id, "g1") == ("done", None)
    assert _journal_reason(env.store, plan_id, "g2")[0] == "pending"
    FakeConnector.stop_after = None
    env.execute(plan_id)
    assert acted("grades") == ["g1", "g2"]
    assert _journal_reason(env.store, plan_id, "g2") == ("done", None)


def test_refused_items_are_planned_as_refused_and_never_acted_on(env: Env) -> None:
    """An item the system refuses (locked, protected) is listed with its reason, not due."""
    FakeConnector.items[("sis", "grades")][0] = item("g1", "s1")._replace(
        refused="locked", reason="COMPLIANCE retention until 2031-06-30"
    )
    plan_id = env.plan()
    rows = {i["key"]: i for i in env.store.items(plan_id)}
    assert (rows["g1"]["status"], rows["g1"]["reason"], rows["g1"]["action"]) == (
        "locked",
        "COMPLIANCE retention until 2031-06-30",
        "none",
    )
    assert rows["g2"]["status"] == "due"
    assert env.store.plan(plan_id)["summary"]["totals"]["locked"] == 1
    env.approve(plan_id)
    env.execute(plan_id)
    assert acted("grades") == ["g2"]


def test_item_refused_after_planning_is_skipped(env: Env) -> None:
    """An item that became protected between plan and execution is skipped with the reason."""
    plan_id = env.plan()
    env.approve(plan_id)
    FakeConnector.items[("sis", "grades")][0] = item("g1", "s1")._replace(
        refused="protected", reason="member of Domain Admins"
    )
    env.execute(plan_id)
    assert acted("grades") == ["g2"]
    assert _journal_reason(env.store, plan_id, "g1") == (
        "skipped",
        "protected now: member of Domain Admins",
    )


def test_item_that_cannot_be_checked_is_skipped_not_taken_for_gone(env: Env) -> None:
    """An item lookup cannot check (permission denied) is skipped with the reason."""
    plan_id = env.plan()
    env.approve(plan_id)
    FakeConnector.items[("sis", "grades")][0] = ScannedItem(
        "g1", None, None, "", refused="unverifiable", reason="permission denied"
    )
    env.execute(plan_id)
    assert acted("grades") == ["g2"]
    assert _journal_reason(env.store, plan_id, "g1") == (
        "skipped",
        "cannot be checked now: permission denied",
    )


def _break_audit_log(env: Env) -> None:
    """Cut the last record off the audit log, so it no longer matches the store's head."""
    segment = sorted(env.settings.audit_path.glob("*.jsonl"))[-1]
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(b"".join(lines[:-1]))


def test_approval_is_taken_back_when_the_audit_log_refuses_it(env: Env) -> None:
    """No approval stands unaudited: a broken audit log leaves the plan unapproved."""
    plan_id = env.plan()
    _break_audit_log(env)
    with pytest.raises(AuditError):
        env.approve(plan_id)
    assert approval.decisions(env.store, plan_id) == []


def test_release_is_taken_back_when_the_audit_log_refuses_it(env: Env) -> None:
    """A hold never ends unaudited: with a broken audit log it stays in force."""
    hold = place(
        env.store, "system", system="sis", reason="case 7", by="fg", now=NOW, audit=env.audit
    )
    _break_audit_log(env)
    with pytest.raises(AuditError):
        release(env.store, hold.id, by="fg", reason="closed", now=NOW, audit=env.audit)
    assert [h.id for h in all_holds(env.store) if h.active(NOW)] == [hold.id]


def test_location_whose_scan_failed_part_way_is_not_acted_on(env: Env) -> None:
    """A location scanned only in part is blocked: its limits were measured on a part."""
    FakeConnector.scan_stops_after = 1
    plan_id = env.plan()
    FakeConnector.scan_stops_after = None
    rows = [i["key"] for i in env.store.items(plan_id)]
    assert "g1" in rows and "g2" not in rows  # the plan kept what the scan found first
    env.approve(plan_id)
    result = env.execute(plan_id)
    grades = next(loc for loc in result.locations if loc.label == "sis:grades")
    assert grades.outcome == "blocked"
    assert grades.reason is not None and "its scan failed part-way" in grades.reason
    assert acted("grades") == []
