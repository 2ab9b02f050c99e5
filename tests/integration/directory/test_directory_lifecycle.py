"""Plan -> approve -> execute on a real Samba AD DC, with leave events from a real SQLite SIS:
leavers disabled, deleted only after the disabled period; protected accounts never touched."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap3
import pytest
from directory_data import Account, Directory
from directory_servers import SWEEPER_PASSWORD
from pydantic import SecretStr
from tcp_proxy import Relay

from connectors.base import ActRequest, Outcome, ScanOutput, ScanRequest
from connectors.directory import DirectoryConnector
from connectors.registry import connector_class
from sweeper import approve as approval
from sweeper import execute as execution
from sweeper.audit import AuditLog
from sweeper.errors import SystemUnreachable
from sweeper.plan import PlanOptions, build_plan
from sweeper.retention import Period
from sweeper.ropa import load_ropa
from sweeper.settings import Settings
from sweeper.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)
LEFT = datetime(2025, 6, 30, tzinfo=UTC)

ROPA = """
controller: {{name: School, contact: {{name: Office}}, dpo: {{name: FG}}}}
timezone: UTC
systems:
  - {{id: sis, name: SIS, kind: sql, owner: IT, connection: {{url: "sqlite:///sis.db"}}}}
  - id: ad
    name: Active Directory
    kind: directory
    owner: IT
    connection: {connection}
events:
  - {{id: left, system: sis, table: enrolments, subject: student_id, date: end_date}}
activities:
  - id: pupil-accounts
    name: Pupil accounts
    retention:
      period: P1M
      clock: {{event: left}}
      action: delete
      limits: {{max_fraction: 1}}
    locations:
      - system: ad
        base_dn: "{ou}"
        subject: employeeID
        report: [sAMAccountName]
        disabled_for: P30D
"""


@dataclass
class Estate:
    directory: Directory
    path: Path
    settings: Settings
    store: Store
    connection: dict[str, Any]

    def write(self, **connection: Any) -> None:
        """Write the RoPA, with the directory's connection settings changed as given."""
        self.connection.update(connection)
        text = ROPA.format(connection=json.dumps(self.connection), ou=self.directory.ou)
        self.path.write_text(textwrap.dedent(text))

    def enrol(self, student: str, end: datetime | None) -> None:
        with sqlite3.connect(self.path.parent / "sis.db") as db:
            db.execute("INSERT INTO enrolments VALUES (?, ?)", (student, end and end.date()))

    def pupil(self, name: str, student: str, **kw: Any) -> Account:
        return self.directory.user(name, attributes={"employeeID": student}, **kw)

    def plan(self, now: datetime = NOW, **options: Any) -> dict[str, Any]:
        result = build_plan(
            load_ropa(self.path),
            self.settings,
            self.store,
            PlanOptions(now=now, created_by="planner", list_not_due=True, **options),
        )
        plan = self.store.plan(result.plan_id)
        plan["items"] = list(self.store.items(result.plan_id))
        plan["locations"] = self.store.locations(result.plan_id)
        return plan

    def run(self, plan: dict[str, Any], now: datetime = NOW) -> execution.ExecutionResult:
        """Approve the plan and execute it."""
        approval.approve(
            self.store,
            self.store.plan(plan["id"]),
            self.settings,
            by="fg",
            note=None,
            only=(),
            now=now,
            current_digest=load_ropa(self.path).digest,
            audit=AuditLog.open(self.settings, self.store),
        )
        return self.execute(plan, now)

    def execute(self, plan: dict[str, Any], now: datetime = NOW) -> execution.ExecutionResult:
        return execution.execute(
            load_ropa(self.path),
            self.settings,
            self.store,
            plan["id"],
            execution.ExecuteOptions(now=now, actor="ops"),
        )

    def enabled(self, account: Account) -> bool | None:
        entry = self.directory.read(account.dn, "userAccountControl")
        return None if entry is None else not entry["userAccountControl"] & 2


@pytest.fixture
def estate(ad: Directory, tmp_path: Path) -> Iterator[Estate]:
    with sqlite3.connect(tmp_path / "sis.db") as db:
        db.execute("CREATE TABLE enrolments (student_id TEXT, end_date DATE)")
    path = tmp_path / "ropa.yaml"
    settings = Settings(
        state_dir=tmp_path / "state",
        credentials={"directory": SecretStr(SWEEPER_PASSWORD)},
        plan_max_age=Period(days=90),
    )
    store = Store.open(settings.state_database_url)
    estate = Estate(ad, path, settings, store, dict(ad.connection))
    estate.write()
    yield estate
    store.close()


def by_subject(plan: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {i["subject"]: (i["status"], i["action"]) for i in plan["items"]}


def test_leaver_is_disabled_then_deleted_after_the_disabled_period(estate: Estate) -> None:
    """A pupil who left per the SIS is disabled first, kept while the disabled period runs, and
    deleted by a plan made after it; a pupil still enrolled is never touched."""
    jan = estate.pupil("Jan", "100001")
    piet = estate.pupil("Piet", "100002")
    estate.enrol("100001", LEFT)
    estate.enrol("100002", None)

    first = estate.plan()
    assert by_subject(first) == {"100001": ("due", "disable"), "100002": ("waiting_event", "none")}
    estate.run(first)
    assert (estate.enabled(jan), estate.enabled(piet)) == (False, True)

    waiting = estate.plan(NOW + timedelta(days=10))
    assert by_subject(waiting)["100001"] == ("not_due", "none")
    assert "deletable from" in next(
        i["reason"] for i in waiting["items"] if i["subject"] == "100001"
    )

    later = NOW + timedelta(days=31)
    last = estate.plan(later)
    assert by_subject(last)["100001"] == ("due", "delete")
    result = estate.run(last, later)
    assert result.total("done") == 1
    assert estate.directory.find(jan.key) is None
    assert estate.enabled(piet) is True


def test_inactive_pupil_who_is_still_enrolled_is_not_a_leaver(estate: Estate) -> None:
    """A pupil who has not logged on for months but has an open enrolment is not due."""
    estate.pupil("Piet", "100002", last_logon=NOW - timedelta(days=200))
    estate.enrol("100002", datetime(2024, 6, 30, tzinfo=UTC))
    estate.enrol("100002", None)  # re-enrolled: still at school
    plan = estate.plan()
    assert by_subject(plan) == {"100002": ("waiting_event", "none")}


def test_break_glass_and_domain_admin_are_never_touched(estate: Estate) -> None:
    """Accounts a rule matches but that are protected are planned as protected and left alone."""
    admin = estate.pupil("Beheerder", "900001")
    estate.directory.add_member(
        f"CN=Domain Admins,CN=Users,{estate.directory.server.base}", admin.dn
    )
    glass = estate.pupil("breakglass", "900002")
    jan = estate.pupil("Jan", "100001")
    for student in ("900001", "900002", "100001"):
        estate.enrol(student, LEFT)
    estate.write(protect=["(cn=breakglass)"])
    plan = estate.plan()
    assert by_subject(plan) == {
        "900001": ("protected", "none"),
        "900002": ("protected", "none"),
        "100001": ("due", "disable"),
    }
    estate.run(plan)
    assert (estate.enabled(admin), estate.enabled(glass), estate.enabled(jan)) == (
        True,
        True,
        False,
    )


def test_account_made_admin_after_planning_is_skipped(estate: Estate) -> None:
    """Protection is checked again at execution: a pupil made Domain Admin since is skipped."""
    jan = estate.pupil("Jan", "100001")
    estate.enrol("100001", LEFT)
    plan = estate.plan()
    estate.directory.add_member(f"CN=Domain Admins,CN=Users,{estate.directory.server.base}", jan.dn)
    result = estate.run(plan)
    assert (result.total("skipped"), estate.enabled(jan)) == (1, True)


def test_account_changed_after_planning_is_skipped(estate: Estate) -> None:
    """An account changed between plan and execution (its uSNChanged moved) is skipped."""
    jan = estate.pupil("Jan", "100001")
    estate.enrol("100001", LEFT)
    plan = estate.plan()
    with estate.directory.admin as conn:
        conn.modify(jan.dn, {"description": [(ldap3.MODIFY_REPLACE, ["teruggekomen"])]})
    result = estate.run(plan)
    assert (result.total("skipped"), estate.enabled(jan)) == (1, True)


def test_reenabled_account_starts_the_waiting_again(estate: Estate) -> None:
    """An account someone re-enabled after the sweeper disabled it is not deleted later: it is
    disabled again, and its waiting time starts over."""
    jan = estate.pupil("Jan", "100001")
    estate.enrol("100001", LEFT)
    estate.run(estate.plan())
    with estate.directory.admin as conn:  # the helpdesk lets the pupil back in, then out again
        conn.modify(jan.dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["544"])]})
        conn.modify(jan.dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["546"])]})
    later = estate.plan(NOW + timedelta(days=31))
    assert by_subject(later)["100001"] == ("due", "disable")


def test_dc_that_stops_answering_mid_scan_fails_the_location(estate: Estate) -> None:
    """A DC that goes away during the scan: the location fails with the DC named and the plan
    is marked incomplete."""
    for n in range(6):
        estate.pupil(f"p{n}", f"10000{n}")
        estate.enrol(f"10000{n}", LEFT)
    relay = Relay(636)
    estate.write(servers=[f"ldaps://127.0.0.1:{relay.port}"], page_size=2)

    class CutAfterFirstPage(DirectoryConnector):
        def scan(self, request: ScanRequest) -> Iterator[ScanOutput]:
            for n, out in enumerate(super().scan(request)):
                if n == 2:
                    relay.cut()
                yield out

    def connectors(kind: str) -> type:
        return CutAfterFirstPage if kind == "directory" else connector_class(kind)

    plan = estate.plan(connectors=connectors)
    (location,) = plan["locations"]
    assert location["outcome"] == "failed"
    assert f"127.0.0.1:{relay.port} stopped answering" in location["error"]
    assert plan["complete"] is False


def test_disable_interrupted_before_its_outcome_is_recovered(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that disabled an account but died before recording it: the next run records it
    as done, and the disabled period counts from then."""
    jan = estate.pupil("Jan", "100001")
    estate.enrol("100001", LEFT)
    plan = estate.plan()

    class Interrupted(DirectoryConnector):
        def act(self, request: ActRequest) -> Iterator[Outcome]:
            outcomes = super().act(request)
            next(outcomes)  # the account is disabled, then the connection is lost
            raise SystemUnreachable(self.system.id, "connection lost (test)")

    def interrupted(kind: str) -> type:
        return Interrupted if kind == "directory" else connector_class(kind)

    monkeypatch.setattr(execution, "connector_class", interrupted)
    first = estate.run(plan)
    assert (first.locations[0].outcome, estate.enabled(jan)) == ("failed", False)

    monkeypatch.setattr(execution, "connector_class", connector_class)
    second = estate.execute(plan)
    assert second.total("done") == 1
    later = estate.plan(NOW + timedelta(days=31))
    assert by_subject(later)["100001"] == ("due", "delete")
