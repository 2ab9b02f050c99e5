"""The dry run: scan every location of the RoPA and store a plan of what is due.

Flow: for every activity with a retention rule, every location becomes a *target*. All
systems are checked and every target prepared (its names checked against the real system)
before anything is scanned. Then each target is scanned; each item's clock start (read by the
connector, or from an event by subject) gives its due date and status. Items that need action
or explanation are stored one by one; items not yet due are counted with their next due date
(listed only with ``list_not_due``). One failing system never stops the others: its targets
are recorded as failed, with the reason, and the plan is marked incomplete.

A dry run never changes a target system: connectors are opened read-only.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from connectors.base import (
    Connector,
    ConnectorContext,
    NotDueSummary,
    ScanFinding,
    ScannedItem,
    ScanRequest,
)
from connectors.registry import connector_class
from sweeper.audit import AuditLog
from sweeper.errors import SweeperError
from sweeper.holds import HoldIndex
from sweeper.report import ReportWriter, plan_head
from sweeper.retention import Period, cutoff, due_date
from sweeper.ropa.load import LoadedRopa
from sweeper.ropa.model import (
    Action,
    Activity,
    Clock,
    EventClock,
    Location,
    RetentionRule,
    Ropa,
    SqlEvent,
    SystemStatus,
)
from sweeper.settings import Settings
from sweeper.store import Store
from sweeper.writer import ItemWriter, canonical

log = structlog.get_logger("sweeper.plan")

DUE = "due"
LEGACY_DUE = "legacy_due"
NOT_DUE = "not_due"
NO_CLOCK = "no_clock"
WAITING = "waiting_event"  # counted only: the event (e.g. leaving school) has not happened
HELD = "held"
LOCKED = "locked"  # the system forbids acting (S3 Object Lock)
PROTECTED = "protected"  # never touched (a privileged or break-glass account)
REFUSED = frozenset({LOCKED, PROTECTED})
LISTED = frozenset({DUE, LEGACY_DUE, NO_CLOCK})


@dataclass
class Target:
    """One location of one activity, with everything needed to scan it."""

    idx: int
    activity: Activity
    location: Location
    rule: RetentionRule
    clock: Clock
    system: Any
    tz: ZoneInfo
    legacy_since: datetime | None = None  # decommissioned: every item is legacy_due from then
    outcome: str = "scanned"
    error: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    bytes_due: int = 0
    oldest_due: datetime | None = None
    next_due: datetime | None = None

    @property
    def label(self) -> str:
        return self.location.label

    @property
    def action(self) -> str:
        return self.rule.action.value

    @property
    def disabled_for(self) -> Period | None:
        """For a rule that deletes accounts: how long an account must have been disabled
        before it is deleted (it is disabled first); None where deletion is not staged."""
        if self.rule.action is not Action.DELETE:
            return None
        period: Period | None = getattr(self.location, "disabled_for", None)
        return period


@dataclass(frozen=True)
class Stage:
    """What a staged delete does with one due account now.

    ``action`` is ``disable`` (not disabled yet, or not known since when), ``delete``
    (disabled long enough) or None (disabled, still waiting until ``deletable_on``).
    """

    action: str | None
    reason: str
    deletable_on: datetime | None


def stage_delete(
    item: ScannedItem,
    disabled_for: Period,
    record: tuple[datetime, str] | None,
    now: datetime,
) -> Stage:
    """Given a due account, how long it must be disabled before deletion, the state store's
    record of when the sweeper disabled it (and the account's fingerprint then), and now,
    return what to do with it. A record whose fingerprint differs from the account's does
    not count: someone changed the account since (re-enabled it, say)."""
    earliest = disabled_for.add_to(now)
    if not item.disabled:
        return Stage(
            "disable",
            f"disabled first; deletable from {earliest:%Y-%m-%d} at the earliest "
            f"(disabled_for {disabled_for})",
            earliest,
        )
    if record is None or record[1] != item.fingerprint:
        return Stage(
            "disable",
            "already disabled, but not by the sweeper or changed since: disabling it records "
            f"when the waiting starts; deletable from {earliest:%Y-%m-%d} at the earliest",
            earliest,
        )
    since = record[0]
    deletable = disabled_for.add_to(since)
    if deletable <= now:
        return Stage("delete", f"disabled by the sweeper on {since:%Y-%m-%d}", deletable)
    return Stage(
        None,
        f"disabled by the sweeper on {since:%Y-%m-%d}; deletable from {deletable:%Y-%m-%d}",
        deletable,
    )


def targets_of(ropa: Ropa) -> Iterator[Target]:
    """Given a RoPA, yield a target per location of each activity with a retention rule, in
    a stable order: a target's ``idx`` is the same for the same RoPA."""
    systems = {s.id: s for s in ropa.systems}
    idx = 0
    for activity in ropa.activities:
        rule = activity.retention
        if rule is None:
            continue
        for location in activity.locations:
            system = systems.get(location.system)
            if system is None:  # a lint warning already says so
                continue
            tz = ZoneInfo(system.timezone or ropa.timezone)
            legacy_since = None
            if system.status is SystemStatus.DECOMMISSIONED:
                assert system.decommissioned_on is not None  # the model requires it
                start = datetime.combine(system.decommissioned_on, time(), tzinfo=tz)
                legacy_since = system.legacy_grace.add_to(start) if system.legacy_grace else start
            yield Target(
                idx=idx,
                activity=activity,
                location=location,
                rule=rule,
                clock=location.clock or rule.clock,
                system=system,
                tz=tz,
                legacy_since=legacy_since,
            )
            idx += 1


class Progress(Protocol):
    """What the plan builder and the executor tell a progress display."""

    def start(self, label: str, total: int | None = None) -> None: ...
    def advance(self, count: int) -> None: ...
    def finish(self, label: str, outcome: str) -> None: ...


class NoProgress:
    def start(self, label: str, total: int | None = None) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self, label: str, outcome: str) -> None:
        pass


@dataclass(frozen=True)
class PlanOptions:
    """How to run a dry run.

    Args:
        now: the clock that due dates are compared with (aware).
        list_not_due: store items not yet due one by one too (default: counted only).
        created_by: who ran the plan (default: the login name).
        progress: a progress display (default: none).
        connectors: returns the connector class for a system kind (tests pass a fake).
        reports_dir: where to write the JSON and CSV reports, streamed while scanning
            (default: no reports).
        activities: plan only these activities (default: all); the summary names them.
    """

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    list_not_due: bool = False
    created_by: str = field(default_factory=getpass.getuser)
    progress: Progress = field(default_factory=NoProgress)
    connectors: Callable[[str], type[Connector]] = connector_class
    reports_dir: Path | None = None
    activities: frozenset[str] | None = None


@dataclass(frozen=True)
class PlanResult:
    plan_id: str
    complete: bool
    item_count: int
    summary: dict[str, Any]
    reports: dict[str, Path] = field(default_factory=dict)


def new_plan_id(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def build_plan(
    loaded: LoadedRopa, settings: Settings, store: Store, options: PlanOptions | None = None
) -> PlanResult:
    """Given a loaded RoPA, scan every location and store the plan; return its summary."""
    options = options or PlanOptions()
    if options.now.tzinfo is None:
        raise ValueError("PlanOptions.now must be timezone-aware")
    builder = _Builder(loaded, settings, store, options)
    return builder.run()


class _Builder:
    def __init__(
        self, loaded: LoadedRopa, settings: Settings, store: Store, options: PlanOptions
    ) -> None:
        self.loaded = loaded
        self.ropa = loaded.ropa
        self.settings = settings
        self.store = store
        self.options = options
        self.now = options.now
        self.plan_id = new_plan_id(self.now)
        self.log = log.bind(plan_id=self.plan_id, dry_run=True)
        self.context = ConnectorContext(
            base_dir=loaded.base_dir, credential=settings.credential, read_only=True
        )
        self.connectors: dict[str, Connector] = {}
        self.failures: dict[str, str] = {}
        self.writer: ItemWriter | None = None
        self.event_problems: dict[str, str | None] = {}
        self.holds = HoldIndex.load(store, self.now)
        self.seq = 0
        self.findings: list[dict[str, Any]] = []
        self.legacy_subjects: dict[str, set[str]] = {}
        self.disabled: dict[str, dict[str, tuple[datetime, str]]] = {}

    # -- the run ---------------------------------------------------------------------

    def run(self) -> PlanResult:
        only = self.options.activities
        targets = [t for t in targets_of(self.ropa) if only is None or t.activity.id in only]
        self._connect(
            {t.system.id for t in targets}
            | self._event_systems(targets)
            | {s.id for s in self.ropa.systems if s.status is SystemStatus.DECOMMISSIONED}
        )
        try:
            for target in targets:
                self._prepare(target)
            with self.store.engine.begin() as conn:
                self.store.insert_plan(conn, self._plan_row(state="building"))
            self.writer = ItemWriter(
                self.settings.state_database_url,
                self.plan_id,
                self.options.reports_dir,
                self.now,
                {t.idx: (t.activity.id, t.system.id, t.label) for t in targets},
            )
            for target in targets:
                if target.outcome == "scanned":
                    self._scan(target)
                self.options.progress.finish(target.label, target.outcome)
            return self._finish(targets)
        except BaseException:
            if self.writer is not None:
                self.writer.abort()
            raise
        finally:
            for connector in self.connectors.values():
                connector.close()

    def _event_systems(self, targets: list[Target]) -> set[str]:
        ids = set()
        for t in targets:
            if isinstance(t.clock, EventClock):
                event = self.ropa.event(t.clock.event)
                if event is not None:
                    ids.add(event.system)
        return ids

    def _connect(self, system_ids: set[str]) -> None:
        for system_id in sorted(system_ids):
            system = self.ropa.system(system_id)
            if system is None:
                continue
            try:
                connector = self.options.connectors(system.kind)(system, self.context)
                connector.check()
            except SweeperError as err:
                self.failures[system_id] = str(err)
                self.log.warning("system unreachable", system=system_id, reason=str(err))
                continue
            self.connectors[system_id] = connector

    def _prepare(self, target: Target) -> None:
        system_id = target.system.id
        if system_id in self.failures:
            target.outcome, target.error = "failed", self.failures[system_id]
            return
        try:
            if isinstance(target.clock, EventClock):
                self._prepare_event(target.clock.event)
            self.connectors[system_id].prepare(target.location, target.clock)
        except SweeperError as err:
            target.outcome, target.error = "failed", str(err)
            self.log.warning("location invalid", system=system_id, reason=str(err))

    def _prepare_event(self, event_id: str) -> None:
        """Check an event's system and names once; raise SweeperError if it cannot be read."""
        if event_id in self.event_problems:
            if problem := self.event_problems[event_id]:
                raise SweeperError(problem)
            return
        event = self.ropa.event(event_id)
        assert event is not None  # the loader checked the reference
        problem = None
        if event.system in self.failures:
            problem = (
                f"the clock is event {event.id!r}, read from system {event.system!r}, "
                f"which failed: {self.failures[event.system]}"
            )
        else:
            try:
                self.connectors[event.system].prepare_event(event)
            except SweeperError as err:
                problem = f"event {event.id!r}: {err}"
        self.event_problems[event_id] = problem
        if problem:
            raise SweeperError(problem)

    # -- scanning --------------------------------------------------------------------

    def _scan(self, target: Target) -> None:
        connector = self.connectors[target.system.id]
        event = (
            self.ropa.event(target.clock.event) if isinstance(target.clock, EventClock) else None
        )
        scan_cutoff = None
        if target.legacy_since is None and not self.options.list_not_due and event is None:
            scan_cutoff = cutoff(self.now, target.rule.period, target.rule.grace)
        request = ScanRequest(
            location=target.location, clock=target.clock, tz=target.tz, cutoff=scan_cutoff
        )
        self.options.progress.start(target.label)
        self.log.info(
            "scanning", system=target.system.id, activity=target.activity.id, location=target.label
        )
        rows: list[tuple[Any, ...]] = []
        pending: list[ScannedItem] = []
        batch = self.settings.scan_batch_size
        scanned = 0
        try:
            for out in connector.scan(request):
                if type(out) is ScannedItem:
                    scanned += 1
                    if event is not None and out.clock is None and out.problem is None:
                        pending.append(out)
                        if len(pending) >= batch:
                            self._resolve(target, event, pending, rows)
                            pending = []
                    else:
                        self._classify(target, out, out.clock, rows)
                    if scanned >= 5000:
                        self._flush(rows, scanned)
                        rows, scanned = [], 0
                elif type(out) is NotDueSummary:
                    self._not_due_summary(target, out)
                elif type(out) is ScanFinding:
                    self._finding(target, out.kind, out.where, out.message)
            if pending:
                self._resolve(target, event, pending, rows)  # type: ignore[arg-type]
            self._flush(rows, scanned)
        except SweeperError as err:
            self._flush(rows, scanned)
            target.outcome, target.error = "failed", str(err)
            self.log.warning("scan failed", system=target.system.id, reason=str(err))

    def _resolve(
        self, target: Target, event: SqlEvent, items: list[ScannedItem], rows: list[Any]
    ) -> None:
        subjects = sorted({i.subject for i in items if i.subject is not None})
        dates = self.connectors[event.system].read_event(event, subjects, self.now, target.tz)
        for item in items:
            if item.subject is None:
                self._classify(target, item._replace(problem="the item has no subject"), None, rows)
            else:
                clock = dates.get(item.subject)
                reason = None if clock is not None else f"event {event.id!r} has not happened"
                self._classify(target, item, clock, rows, reason)

    def _classify(
        self,
        target: Target,
        item: ScannedItem,
        clock: datetime | None,
        rows: list[Any],
        waiting_reason: str | None = None,
    ) -> None:
        reason: str | None
        due: datetime | None
        if target.legacy_since is not None:
            status, due = LEGACY_DUE, target.legacy_since
            reason = (
                f"system {target.system.id} was decommissioned on {target.system.decommissioned_on}"
            )
            if item.subject is not None:
                self.legacy_subjects.setdefault(target.system.id, set()).add(item.subject)
        elif clock is None:
            if item.problem is not None:
                status, due, reason = NO_CLOCK, None, item.problem
            else:
                target.counts[WAITING] += 1
                if not self.options.list_not_due:
                    return
                status, due, reason = WAITING, None, waiting_reason
        else:
            due = due_date(clock, target.rule.period, target.rule.grace)
            if due <= self.now:
                status, reason = DUE, None
            else:
                target.counts[NOT_DUE] += 1
                if target.next_due is None or due < target.next_due:
                    target.next_due = due
                if not self.options.list_not_due:
                    return
                status, reason = NOT_DUE, None
        if status in (DUE, LEGACY_DUE) and item.refused is not None:
            if item.refused not in REFUSED:
                raise ValueError(f"connector refused an item as {item.refused!r}")
            status, reason = item.refused, item.reason
        if status in (DUE, LEGACY_DUE) and self.holds:
            hold = self.holds.location_hold(target.system.id, target.label) or self.holds.match(
                target.label, item.key, item.subject
            )
            if hold is not None:
                status, reason = HELD, hold.explain()
        action = target.rule.action.value if status in (DUE, LEGACY_DUE) else "none"
        if status in (DUE, LEGACY_DUE) and target.disabled_for is not None:
            stage = self._stage(target, item, target.disabled_for)
            if stage.action is None:  # disabled, still waiting: the delete is not due yet
                target.counts[NOT_DUE] += 1
                deletable = stage.deletable_on
                if deletable and (target.next_due is None or deletable < target.next_due):
                    target.next_due = deletable
                if not self.options.list_not_due:
                    return
                status, action = NOT_DUE, "none"
            else:
                action = stage.action
            reason = stage.reason
        target.counts[status] += 1
        if status in (DUE, LEGACY_DUE):
            target.bytes_due += item.size or 0
            if due is not None and (target.oldest_due is None or due < target.oldest_due):
                target.oldest_due = due
        row = (
            self.seq,
            target.idx,
            item.key,
            item.subject,
            _iso(clock),
            _iso(due),
            status,
            action,
            item.fingerprint,
            item.size,
            reason,
            json.dumps(item.details, separators=(",", ":"), default=str) if item.details else None,
        )
        self.seq += 1
        rows.append(row)

    def _stage(self, target: Target, item: ScannedItem, disabled_for: Period) -> Stage:
        system_id = target.system.id
        if system_id not in self.disabled:
            self.disabled[system_id] = self.store.disabled_accounts(system_id)
        return stage_delete(item, disabled_for, self.disabled[system_id].get(item.key), self.now)

    def _not_due_summary(self, target: Target, summary: NotDueSummary) -> None:
        self.options.progress.advance(summary.count)
        target.counts[NOT_DUE] += summary.count
        if summary.earliest_clock is not None:
            due = due_date(summary.earliest_clock, target.rule.period, target.rule.grace)
            if target.next_due is None or due < target.next_due:
                target.next_due = due

    def _finding(self, target: Target, kind: str, where: str, message: str) -> None:
        self.findings.append(
            {
                "plan_id": self.plan_id,
                "seq": len(self.findings),
                "location_idx": target.idx,
                "system": target.system.id,
                "kind": kind,
                "where": where,
                "message": message,
            }
        )

    def _flush(self, rows: list[tuple[Any, ...]], scanned: int = 0) -> None:
        self.options.progress.advance(scanned)
        if not rows:
            return
        assert self.writer is not None
        self.writer.add(rows)

    # -- the end ---------------------------------------------------------------------

    def _finish(self, targets: list[Target]) -> PlanResult:
        location_rows = [self._location_row(t) for t in targets]
        assert self.writer is not None
        items_hash = self.writer.finish()
        complete = not any(
            t.outcome == "failed" for t in targets if t.legacy_since is None
        ) and not any(
            s.id in self.failures
            for s in self.ropa.systems
            if s.status is not SystemStatus.DECOMMISSIONED
        )
        summary = self._summary(targets)
        content = content_hash(items_hash, location_rows, self.loaded.digest, self.now)
        with self.store.engine.begin() as conn:
            self.store.insert_locations(conn, location_rows)
            self.store.insert_findings(conn, self.findings)
            self.store.finish_plan(
                conn,
                self.plan_id,
                {
                    "state": "ready",
                    "content_hash": content,
                    "complete": complete,
                    "item_count": self.seq,
                    "summary": json.dumps(summary, default=str),
                },
            )
        self.log.info("plan stored", items=self.seq, complete=complete)
        AuditLog.open(self.settings, self.store).append(
            "plan_created",
            self.options.created_by,
            plan_id=self.plan_id,
            content_hash=content,
            ropa_digest=self.loaded.digest,
            clock=_iso(self.now),
            items=self.seq,
            totals=summary["totals"],
            complete=complete,
            failed_systems=summary["failed_systems"],
            failed_locations=[t.label for t in targets if t.outcome == "failed"],
        )
        paths = {}
        if self.options.reports_dir is not None:
            head = plan_head(self.store, self.plan_id)
            paths = ReportWriter.assemble(self.options.reports_dir, self.plan_id, head)
        return PlanResult(self.plan_id, complete, self.seq, summary, paths)

    def _plan_row(self, state: str) -> dict[str, Any]:
        return {
            "id": self.plan_id,
            "created_at": datetime.now(UTC),
            "created_by": self.options.created_by,
            "clock": self.now,
            "ropa_path": str(self.loaded.path.resolve()),
            "ropa_digest": self.loaded.digest,
            "content_hash": "",
            "state": state,
            "complete": False,
            "item_count": 0,
            "summary": "{}",
        }

    def _location_row(self, t: Target) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "idx": t.idx,
            "activity": t.activity.id,
            "system": t.system.id,
            "label": t.label,
            "outcome": t.outcome,
            "error": t.error,
            "counts": json.dumps(dict(sorted(t.counts.items()))),
            "bytes_due": t.bytes_due,
            "oldest_due": _iso(t.oldest_due),
            "next_due": _iso(t.next_due),
            "details": json.dumps(
                {
                    "activity_name": t.activity.name,
                    "period": str(t.rule.period),
                    "grace": str(t.rule.grace) if t.rule.grace else None,
                    "clock": _clock_text(t.clock),
                    "action": t.action,
                    "auto_approve": t.rule.auto_approve,
                    "legacy_since": _iso(t.legacy_since),
                    "kind": t.system.kind,
                },
                sort_keys=True,
            ),
        }

    def _summary(self, targets: list[Target]) -> dict[str, Any]:
        totals: Counter[str] = Counter()
        for t in targets:
            totals.update(t.counts)
        legacy = []
        for system in self.ropa.systems:
            if system.status is not SystemStatus.DECOMMISSIONED:
                continue
            mine = [t for t in targets if t.system.id == system.id]
            assert system.decommissioned_on is not None
            legacy.append(
                {
                    "system": system.id,
                    "name": system.name,
                    "decommissioned_on": system.decommissioned_on.isoformat(),
                    "days_since": (self.now.date() - system.decommissioned_on).days,
                    "reachable": system.id not in self.failures,
                    "reason": self.failures.get(system.id),
                    "locations": len(mine),
                    "items": sum(t.counts[LEGACY_DUE] for t in mine),
                    "bytes": sum(t.bytes_due for t in mine),
                    "subjects": len(self.legacy_subjects.get(system.id, ())),
                }
            )
        return {
            "totals": dict(sorted(totals.items())),
            "bytes_due": sum(t.bytes_due for t in targets),
            "failed_systems": dict(sorted(self.failures.items())),
            "failed_locations": sum(1 for t in targets if t.outcome == "failed"),
            "findings": len(self.findings),
            "legacy_systems": legacy,
            "unenforceable_activities": [
                a.id for a in self.ropa.activities if a.retention is None or not a.locations
            ],
            **({"activities": sorted(self.options.activities)} if self.options.activities else {}),
        }


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            return value.isoformat()
        return value.astimezone(UTC).isoformat()
    return value.isoformat()


def content_hash(
    items_hash: str, locations: list[dict[str, Any]], ropa_digest: str, clock: datetime
) -> str:
    """Return a plan's content hash: sha256 over the hash of its item rows (in order), its
    location rows (without the plan id), the RoPA digest and the plan's clock. An approval
    binds to it; recomputing it from the store detects a plan altered after approval."""
    digest = hashlib.sha256(items_hash.encode())
    for row in locations:
        digest.update(canonical(tuple(row[k] for k in sorted(row) if k != "plan_id")))
    digest.update(canonical((ropa_digest, _iso(clock))))
    return digest.hexdigest()


def _clock_text(clock: Clock) -> str:
    if isinstance(clock, str):
        return clock
    return json.dumps(clock.model_dump(), sort_keys=True)
