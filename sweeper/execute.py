"""Execution: act on the approved items of a plan, re-verifying each one first.

For each location of the plan (in plan order), after the plan itself has passed
``approve.check_usable``:

1. The location must be approved (enough distinct approvers whose scope covers it) or its rule
   ``auto_approve``; it must not be held as a whole; and it must pass its blast-radius limits
   (minimum population, maximum items, maximum fraction; and the run's maximum). A location
   that fails any of these is *blocked*: nothing there is acted on, the others go on.
2. Its due items are taken in batches. Each item is re-verified at that moment: no hold covers
   it now, it still exists, its fingerprint is unchanged, and it is still due under the
   current clock (an event clock is read again). Otherwise it is skipped, with the reason.
3. The journal records the batch's items as ``pending`` *before* the connector acts, and
   ``done``/``failed``/``skipped`` after, with the audit records written in between. After a
   crash at any point, running the plan again skips what the journal says is finished, and a
   ``pending`` item that no longer exists was acted on by the interrupted run: it is recorded
   as done, and audited unless the audit log already has it. Nothing is acted on twice and
   nothing outside the plan is touched.

Quarantined files are restorable until their rule's ``quarantine_for`` has passed; every
execution purges those whose time is up.
"""

from __future__ import annotations

import dataclasses
import getpass
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog

from connectors.base import ActRequest, Connector, ConnectorContext, Outcome, ScannedItem
from connectors.registry import connector_class
from sweeper.approve import Coverage, PlanRefused, check_usable, decisions
from sweeper.audit import AuditLog
from sweeper.errors import SweeperError
from sweeper.holds import HoldIndex
from sweeper.plan import DUE, LEGACY_DUE, NoProgress, Progress, Target, targets_of
from sweeper.retention import due_date
from sweeper.ropa.load import LoadedRopa
from sweeper.ropa.model import EventClock, Limits, Ropa
from sweeper.settings import Settings
from sweeper.store import (
    Store,
    forget_disabled,
    journal,
    quarantine,
    record_disabled,
    refresh_disabled,
)

log = structlog.get_logger("sweeper.execute")

FINISHED = frozenset({"done", "skipped", "failed", "review"})


@dataclass
class LocationResult:
    idx: int
    activity: str
    system: str
    label: str
    action: str
    outcome: str = "executed"  # executed, blocked, not_approved, failed, stopped
    reason: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    acted: Counter[str] = field(default_factory=Counter)  # done items per item action


@dataclass
class ExecutionResult:
    plan_id: str
    run_id: str
    locations: list[LocationResult]
    purged: int = 0
    stopped: str | None = None  # the location where a stop request ended the run

    @property
    def ok(self) -> bool:
        return all(
            loc.outcome in ("executed", "not_approved") and not loc.counts["failed"]
            for loc in self.locations
        )

    def total(self, state: str) -> int:
        return sum(loc.counts[state] for loc in self.locations)


def _never() -> bool:
    return False


@dataclass(frozen=True)
class ExecuteOptions:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    actor: str = field(default_factory=getpass.getuser)
    progress: Progress = field(default_factory=NoProgress)
    # Asked before each batch: True ends the run there, after the batch in hand, with the
    # rest left for the next run (the daemon's SIGTERM).
    stop: Callable[[], bool] = _never


def execute(
    loaded: LoadedRopa,
    settings: Settings,
    store: Store,
    plan_id: str,
    options: ExecuteOptions | None = None,
) -> ExecutionResult:
    """Execute the approved items of a stored plan. Raise PlanRefused if it may not run."""
    options = options or ExecuteOptions()
    plan = store.plan(plan_id)
    check_usable(store, plan, settings, options.now, loaded.digest)
    runner = _Runner(loaded, settings, store, plan, options)
    return runner.run()


class _Runner:
    def __init__(
        self,
        loaded: LoadedRopa,
        settings: Settings,
        store: Store,
        plan: dict[str, Any],
        options: ExecuteOptions,
    ) -> None:
        self.loaded = loaded
        self.ropa = loaded.ropa
        self.settings = settings
        self.store = store
        self.plan = plan
        self.plan_id: str = plan["id"]
        self.options = options
        self.now = options.now
        self.run_id = f"{self.now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        self.audit = AuditLog.open(settings, store)
        self.coverage = Coverage(plan, decisions(store, self.plan_id), settings.approvers_required)
        self.log = log.bind(plan_id=self.plan_id, run_id=self.run_id, dry_run=False)
        self.context = ConnectorContext(
            base_dir=loaded.base_dir, credential=settings.credential, read_only=False
        )
        self.connectors: dict[str, Connector] = {}
        self.event_sources: dict[str, Connector] = {}  # read-only, for events only
        self.acted_this_run = 0
        self.audited_done: set[int] | None = None
        self.stopped_at: str | None = None

    def run(self) -> ExecutionResult:
        targets = {t.idx: t for t in targets_of(self.ropa)}
        stored = {loc["idx"]: loc for loc in self.store.locations(self.plan_id)}
        if not self.coverage.approvals and not any(
            targets[idx].rule.auto_approve
            and loc["counts"].get(DUE, 0) + loc["counts"].get(LEGACY_DUE, 0)
            for idx, loc in stored.items()
        ):
            raise PlanRefused(
                f"plan {self.plan_id} is not approved and has no auto_approve items: "
                f"review its report, then sweeper approve {self.plan_id} --by NAME"
            )
        results = []
        self._audit("execution_started", run_id=self.run_id)
        try:
            purged = self._purge_quarantine()
            for idx, loc in stored.items():
                target = targets[idx]
                result = LocationResult(
                    idx, target.activity.id, target.system.id, loc["label"], target.rule.action
                )
                results.append(result)
                if self.stopped_at is not None:
                    result.outcome, result.reason = "stopped", "not reached before the stop"
                    continue
                due = loc["counts"].get(DUE, 0) + loc["counts"].get(LEGACY_DUE, 0)
                if not due:
                    result.outcome = "executed"
                    continue
                self._location(target, loc, due, result)
        finally:
            for connector in [*self.connectors.values(), *self.event_sources.values()]:
                connector.close()
        outcome = ExecutionResult(self.plan_id, self.run_id, results, purged, self.stopped_at)
        if self.stopped_at is not None:
            self._audit("execution_stopped", run_id=self.run_id, location=self.stopped_at)
        self._audit(
            "execution_finished",
            run_id=self.run_id,
            done=outcome.total("done"),
            skipped=outcome.total("skipped"),
            failed=outcome.total("failed"),
            review=outcome.total("review"),
            blocked=[r.label for r in results if r.outcome == "blocked"],
            purged=purged,
        )
        return outcome

    # -- one location ----------------------------------------------------------------

    def _location(
        self, target: Target, loc: dict[str, Any], due: int, result: LocationResult
    ) -> None:
        approved = target.rule.auto_approve or self.coverage.approved(
            target.activity.id, target.system.id
        )
        if not approved:
            result.outcome = "not_approved"
            result.reason = (
                f"needs {self.settings.approvers_required} approval(s) covering activity "
                f"{target.activity.id} on system {target.system.id}"
            )
            return
        holds = HoldIndex.load(self.store, self.now)
        if hold := holds.location_hold(target.system.id, loc["label"]):
            return self._block(result, f"held as a whole: {hold.explain()}")
        if loc["outcome"] == "failed":
            # Its items are only those found before the scan stopped: the population the
            # limits are measured against is incomplete, so nothing there is acted on.
            return self._block(
                result,
                f"its scan failed part-way ({loc['error']}), so the plan lists only part of "
                "it and its limits cannot be checked: make a new plan once the system answers",
            )
        if problem := self._limits(target, loc, due):
            return self._block(result, problem)
        try:
            connector = self._connector(target)
        except SweeperError as err:
            result.outcome, result.reason = "failed", str(err)
            self._audit("location_failed", location=loc["label"], reason=str(err))
            return
        self.options.progress.start(loc["label"], due)
        approvers = self.coverage.approvers(target.activity.id, target.system.id)
        for batch in self._batches(target.idx):
            if self.options.stop():
                self.stopped_at = loc["label"]
                result.outcome = "stopped"
                result.reason = "stopped on request: the next execution resumes here"
                self.log.info("execution stopped", location=loc["label"])
                break
            try:
                self._batch(target, loc["label"], connector, batch, approvers, result)
            except SweeperError as err:
                result.outcome, result.reason = "failed", str(err)
                self._audit("location_failed", location=loc["label"], reason=str(err))
                break
        self.options.progress.finish(loc["label"], result.outcome)

    def _block(self, result: LocationResult, reason: str) -> None:
        result.outcome, result.reason = "blocked", reason
        self.log.warning("location blocked", location=result.label, reason=reason)
        self._audit("location_blocked", location=result.label, reason=reason)

    def _limits(self, target: Target, loc: dict[str, Any], due: int) -> str | None:
        rule = target.rule.limits or Limits()
        population = sum(loc["counts"].values())
        min_population = _first(rule.min_population, self.settings.min_population)
        max_fraction = _first(rule.max_fraction, self.settings.max_fraction)
        if min_population is not None and population < min_population:
            return (
                f"the scan found {population} item(s), fewer than the minimum population "
                f"{min_population}: a broken filter or wrong base must not look like "
                "'delete all'"
            )
        if rule.max_items is not None and due > rule.max_items:
            return f"{due} items due, more than the rule's max_items {rule.max_items}"
        if max_fraction is not None and population and due / population > max_fraction:
            return (
                f"{due} of {population} items due ({due / population:.0%}), more than the "
                f"maximum fraction {max_fraction:.0%}; if that is right, raise the rule's "
                "limits.max_fraction"
            )
        run_max = self.settings.max_items_per_run
        if run_max is not None and self.acted_this_run + due > run_max:
            return (
                f"{due} items here would take this run past max_items_per_run {run_max} "
                f"({self.acted_this_run} already): run again, or raise the setting"
            )
        self.acted_this_run += due
        return None

    def _connector(self, target: Target) -> Connector:
        system_id = target.system.id
        if system_id not in self.connectors:
            connector = connector_class(target.system.kind)(target.system, self.context)
            connector.check()
            connector.prepare(target.location, target.clock)
            self.connectors[system_id] = connector
        return self.connectors[system_id]

    def _batches(self, idx: int) -> Iterator[list[dict[str, Any]]]:
        """Yield the location's due items in batches, in plan order."""
        size = self.settings.execute_batch_size
        batch: list[dict[str, Any]] = []
        for item in self.store.items(self.plan_id, location_idx=idx, statuses=(DUE, LEGACY_DUE)):
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- one batch -------------------------------------------------------------------

    def _batch(
        self,
        target: Target,
        label: str,
        connector: Connector,
        items: list[dict[str, Any]],
        approvers: list[str],
        result: LocationResult,
    ) -> None:
        seqs = [i["seq"] for i in items]
        states = self._journal_states(seqs)
        todo = [i for i in items if states.get(i["seq"]) not in FINISHED]
        result.counts["already"] += len(items) - len(todo)
        self.options.progress.advance(len(items) - len(todo))
        if not todo:
            return
        resumed = {i["seq"] for i in todo if states.get(i["seq"]) == "pending"}
        holds = HoldIndex.load(self.store, self.now)
        current = connector.lookup(
            target.location, target.clock, target.tz, [i["key"] for i in todo]
        )
        clocks = self._current_clocks(target, connector, current)
        act: list[dict[str, Any]] = []
        finished: list[tuple[dict[str, Any], str, str | None, dict[str, Any] | None]] = []
        for item in todo:
            verdict = self._verify(
                target, label, item, current, clocks, holds, item["seq"] in resumed
            )
            if verdict is None:
                act.append(item)
            else:
                finished.append((item, *verdict))
        if act and target.rule.action.value == "review":
            finished.extend((i, "review", "listed for manual handling", None) for i in act)
            act = []
        if act:
            self._journal_pending(act)
            stopped: SweeperError | None = None
            # Each item's own action: a staged delete disables some accounts, deletes others.
            for action, group in _by_action(act):
                stopped = self._act(target, connector, action, group, finished)
                if stopped is not None:
                    break
            # After a stop, items without an outcome stay pending: the next run re-verifies them.
            self._finish(target, label, finished, approvers, result)
            if stopped is not None:
                raise stopped
            return
        self._finish(target, label, finished, approvers, result)

    def _act(
        self,
        target: Target,
        connector: Connector,
        action: str,
        items: list[dict[str, Any]],
        finished: list[tuple[dict[str, Any], str, str | None, dict[str, Any] | None]],
    ) -> SweeperError | None:
        """Act on items that share an action; add their outcomes to ``finished``. Return the
        error that stopped the connector part-way, if one did."""
        by_key = {i["key"]: i for i in items}
        outcomes: list[Outcome] = []
        stopped: SweeperError | None = None
        try:  # keep what was yielded before a connector gives up part-way
            for outcome in connector.act(ActRequest(target.location, action, list(by_key))):
                outcomes.append(outcome)
        except SweeperError as err:
            stopped = err
        for outcome in outcomes:
            item = by_key.pop(outcome.key)
            state = "done" if outcome.status in ("done", "gone") else "failed"
            details = dict(outcome.details or {})
            if outcome.status == "gone":
                details["note"] = "already gone when acted on"
            finished.append((item, state, outcome.message, details))
        if stopped is None:
            for item in by_key.values():  # a connector that forgot an item: not acted on
                finished.append((item, "failed", "the connector reported no outcome", None))
        return stopped

    def _current_clocks(
        self, target: Target, connector: Connector, current: dict[str, ScannedItem]
    ) -> dict[str, datetime | None]:
        if not isinstance(target.clock, EventClock):
            return {key: item.clock for key, item in current.items()}
        event = self.ropa.event(target.clock.event)
        assert event is not None
        source = self.connectors.get(event.system) or self.event_sources.get(event.system)
        if source is None:
            system = self.ropa.system(event.system)
            assert system is not None
            # Events are only read: a system that is not acted on is opened read-only.
            source = connector_class(system.kind)(
                system, dataclasses.replace(self.context, read_only=True)
            )
            source.check()
            self.event_sources[event.system] = source  # never reused for acting
        subjects = sorted({i.subject for i in current.values() if i.subject is not None})
        dates = source.read_event(event, subjects, self.now, target.tz)
        return {
            key: dates.get(item.subject) if item.subject is not None else None
            for key, item in current.items()
        }

    def _verify(
        self,
        target: Target,
        label: str,
        item: dict[str, Any],
        current: dict[str, ScannedItem],
        clocks: dict[str, datetime | None],
        holds: HoldIndex,
        resumed: bool,
    ) -> tuple[str, str | None, dict[str, Any] | None] | None:
        """Return None if the item may be acted on, else (state, reason, details)."""
        now_item = current.get(item["key"])
        subject = now_item.subject if now_item is not None else item["subject"]
        hold = holds.match(label, item["key"], subject) or (
            holds.match(label, item["key"], item["subject"])
        )
        if hold is not None:
            return "skipped", f"held by hold {hold.id}", None
        if now_item is None:
            if resumed:
                return "done", "completed by an interrupted run", {"recovered": True}
            return "skipped", "no longer exists", None
        if now_item.refused == "unverifiable":
            return "skipped", f"cannot be checked now: {now_item.reason}", None
        if resumed and item["action"] == "disable" and now_item.disabled and not now_item.refused:
            # Disabling changed the fingerprint: the interrupted run got that far.
            recovered = {"recovered": True, "fingerprint": now_item.fingerprint}
            return "done", "completed by an interrupted run", recovered
        if now_item.fingerprint != item["fingerprint"]:
            return "skipped", "changed since the plan was made", None
        if now_item.refused is not None:
            return "skipped", f"{now_item.refused} now: {now_item.reason}", None
        if item["action"] == "delete" and target.disabled_for is not None and not now_item.disabled:
            return "skipped", "no longer disabled: it is deleted only after being disabled", None
        if item["status"] == LEGACY_DUE:
            return None
        clock = clocks.get(item["key"])
        if clock is None:
            if isinstance(target.clock, EventClock):
                return (
                    "skipped",
                    f"event {target.clock.event!r} no longer holds for the subject",
                    None,
                )
            return "skipped", "its clock can no longer be read", None
        due = due_date(clock, target.rule.period, target.rule.grace)
        if due > self.now:
            return "skipped", f"no longer due: now due on {due:%Y-%m-%d}", None
        return None

    # -- journal and audit -----------------------------------------------------------

    def _journal_states(self, seqs: Sequence[int]) -> dict[int, str]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(journal.c.seq, journal.c.state).where(
                    journal.c.plan_id == self.plan_id,
                    journal.c.seq >= min(seqs),
                    journal.c.seq <= max(seqs),
                )
            ).all()
        return {seq: state for seq, state in rows}

    def _journal_pending(self, items: list[dict[str, Any]]) -> None:
        seqs = [i["seq"] for i in items]
        with self.store.engine.begin() as conn:
            conn.execute(
                journal.delete().where(journal.c.plan_id == self.plan_id, journal.c.seq.in_(seqs))
            )
            conn.execute(
                journal.insert(),
                [
                    {
                        "plan_id": self.plan_id,
                        "seq": s,
                        "state": "pending",
                        "reason": None,
                        "at": self.now,
                        "run_id": self.run_id,
                    }
                    for s in seqs
                ],
            )

    def _finish(
        self,
        target: Target,
        label: str,
        finished: list[tuple[dict[str, Any], str, str | None, dict[str, Any] | None]],
        approvers: list[str],
        result: LocationResult,
    ) -> None:
        if not finished:
            return
        rule = _rule_text(target)
        approved_by = approvers or (["auto_approve"] if target.rule.auto_approve else [])
        recovered = [i["seq"] for i, _, _, d in finished if d and d.get("recovered")]
        already = self._audited_done() if recovered else set()
        records = []
        for item, state, reason, details in finished:
            result.counts[state] += 1
            if state == "done":
                result.acted[item["action"]] += 1
            if state == "done" and item["seq"] in already:
                continue  # the interrupted run audited it before it could update the journal
            records.append(
                {
                    "event": f"item_{state}",
                    "subject": item["subject"],
                    "seq": item["seq"],
                    "activity": target.activity.id,
                    "system": target.system.id,
                    "location": label,
                    "key_ref": self.audit.subject_ref(item["key"]),
                    "action": item["action"],
                    "rule": rule,
                    "status": item["status"],
                    "reason": reason,
                    "approved_by": approved_by,
                    **_safe_details(details),
                }
            )
        self._audit_many(records)
        seqs = [i["seq"] for i, *_ in finished]
        with self.store.engine.begin() as conn:
            conn.execute(
                journal.delete().where(journal.c.plan_id == self.plan_id, journal.c.seq.in_(seqs))
            )
            conn.execute(
                journal.insert(),
                [
                    {
                        "plan_id": self.plan_id,
                        "seq": i["seq"],
                        "state": state,
                        "reason": reason,
                        "at": self.now,
                        "run_id": self.run_id,
                    }
                    for i, state, reason, _ in finished
                ],
            )
            self._track_disabled(conn, target, label, finished)
            quarantined = [  # not items that vanished before they could be moved
                i
                for i, state, _, d in finished
                if state == "done"
                and target.rule.action.value == "quarantine"
                and not (d and d.get("note") == "already gone when acted on")
            ]
            if quarantined:
                until = target.rule.quarantine_for.add_to(self.now)
                conn.execute(
                    quarantine.insert(),
                    [
                        {
                            "plan_id": self.plan_id,
                            "seq": i["seq"],
                            "system": target.system.id,
                            "location": label,
                            "item_key": i["key"],
                            "quarantined_at": self.now,
                            "restorable_until": until,
                            "state": "quarantined",
                        }
                        for i in quarantined
                    ],
                )
        self.options.progress.advance(len(finished))

    def _track_disabled(
        self,
        conn: sa.Connection,
        target: Target,
        label: str,
        finished: list[tuple[dict[str, Any], str, str | None, dict[str, Any] | None]],
    ) -> None:
        """Record in the state store when the sweeper disabled accounts (a staged delete
        waits from then), forget deleted ones, and keep the record of accounts it moved or
        anonymised (its own change did not re-enable them)."""
        system = target.system.id
        disabled, changed, deleted = [], {}, []
        for item, state, _, details in finished:
            fingerprint = (details or {}).get("fingerprint")
            if state != "done":
                continue
            if item["action"] == "disable" and fingerprint:
                disabled.append(
                    {
                        "system": system,
                        "item_key": item["key"],
                        "location": label,
                        "disabled_at": self.now,
                        "fingerprint": fingerprint,
                        "plan_id": self.plan_id,
                        "run_id": self.run_id,
                    }
                )
            elif item["action"] == "delete" and target.disabled_for is not None:
                deleted.append(item["key"])
            elif fingerprint:
                changed[item["key"]] = fingerprint
        record_disabled(conn, disabled)
        forget_disabled(conn, system, deleted)
        refresh_disabled(conn, system, changed)

    def _audited_done(self) -> set[int]:
        if self.audited_done is None:
            self.audited_done = {
                int(r["details"]["seq"])
                for r in self.audit.records(plan_id=self.plan_id, event="item_done")
            }
        return self.audited_done

    def _audit(self, event: str, **details: Any) -> None:
        self.audit.append(event, self.options.actor, plan_id=self.plan_id, **details)

    def _audit_many(self, records: list[dict[str, Any]]) -> None:
        self.audit.append_many(records, actor=self.options.actor, plan_id=self.plan_id)

    # -- quarantine --------------------------------------------------------------------

    def _purge_quarantine(self) -> int:
        """Purge quarantined items whose restore period has ended (from any plan)."""
        with self.store.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(quarantine).where(
                        quarantine.c.state == "quarantined",
                        quarantine.c.restorable_until <= self.now,
                    )
                )
                .mappings()
                .all()
            )
        if not rows:
            return 0
        return _act_on_quarantine(
            self.ropa,
            self.context,
            self.store,
            self.audit,
            list(rows),
            "purge",
            self.options.actor,
            self.now,
        )


def restore(
    loaded: LoadedRopa,
    settings: Settings,
    store: Store,
    plan_id: str,
    *,
    keys: Sequence[str] | None,
    by: str,
    now: datetime,
) -> int:
    """Move quarantined items of a plan back; return how many. Raise SweeperError if none
    can be restored (none quarantined, or their restore period has ended)."""
    with store.engine.connect() as conn:
        query = sa.select(quarantine).where(
            quarantine.c.plan_id == plan_id, quarantine.c.state == "quarantined"
        )
        if keys:
            query = query.where(quarantine.c.item_key.in_(list(keys)))
        rows = conn.execute(query).mappings().all()
    if not rows:
        raise SweeperError(
            f"plan {plan_id} has no quarantined items" + (" with those keys" if keys else "")
        )
    expired = [r for r in rows if r["restorable_until"] <= now]
    if expired:
        raise SweeperError(
            f"{len(expired)} item(s) could be restored only until "
            f"{min(r['restorable_until'] for r in expired):%Y-%m-%d %H:%M} UTC; they are purged "
            "at the next execution"
        )
    context = ConnectorContext(
        base_dir=loaded.base_dir, credential=settings.credential, read_only=False
    )
    restored = _act_on_quarantine(
        loaded.ropa,
        context,
        store,
        AuditLog.open(settings, store),
        list(rows),
        "restore",
        by,
        now,
    )
    if restored < len(rows):
        raise SweeperError(
            f"{restored} of {len(rows)} item(s) restored; `sweeper audit show --event "
            "restore_failed` says why the others were not"
        )
    return restored


def _act_on_quarantine(
    ropa: Ropa,
    context: ConnectorContext,
    store: Store,
    audit: AuditLog,
    rows: list[Any],
    action: str,
    actor: str,
    now: datetime,
) -> int:
    """Restore or purge quarantine rows, grouped by location; return how many succeeded."""
    by_label = {t.label: t for t in targets_of(ropa)}
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(row["location"], []).append(row)
    count = 0
    for label, group in groups.items():
        target = by_label.get(label)
        if target is None:
            audit.append(
                f"{action}_failed",
                actor,
                location=label,
                reason="the location is no longer in the RoPA",
            )
            continue
        try:
            connector = connector_class(target.system.kind)(target.system, context)
            try:
                outcomes = {
                    o.key: o
                    for o in connector.act(
                        ActRequest(target.location, action, [r["item_key"] for r in group])
                    )
                }
            finally:
                connector.close()
        except SweeperError as err:  # one unreachable system must not stop the others
            audit.append(f"{action}_failed", actor, location=label, reason=str(err))
            continue
        state = "restored" if action == "restore" else "purged"
        records, succeeded = [], []
        for row in group:
            outcome = outcomes.get(row["item_key"])
            ok = outcome is not None and outcome.status in ("done", "gone")
            records.append(
                {
                    "event": f"item_{state}" if ok else f"{action}_failed",
                    "plan_id": row["plan_id"],
                    "seq": row["seq"],
                    "location": label,
                    "key_ref": audit.subject_ref(row["item_key"]),
                    "reason": None if ok or outcome is None else outcome.message,
                }
            )
            if ok:
                succeeded.append(row["id"])
        # Audit first, then the state (never append inside an open state-store transaction).
        audit.append_many(records, actor=actor)
        if succeeded:
            with store.engine.begin() as conn:
                conn.execute(
                    quarantine.update()
                    .where(quarantine.c.id.in_(succeeded))
                    .values(state=state, changed_at=now, changed_by=actor)
                )
        count += len(succeeded)
    return count


_AUDITABLE_DETAILS = (
    "rows",
    "note",
    "recovered",
    "versions",
    "delete_markers",
    "overrode_governance",
)


def _safe_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """Only what a connector reports that is not itself personal data (no paths, no values)."""
    if not details:
        return {}
    kept = {k: details[k] for k in _AUDITABLE_DETAILS if k in details}
    return {"result": kept} if kept else {}


def _by_action(items: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Given items, return them grouped by their planned action, in order of first use."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item["action"], []).append(item)
    return list(groups.items())


def _rule_text(target: Target) -> str:
    clock = target.clock if isinstance(target.clock, str) else target.clock.model_dump()
    return f"{target.rule.period} from {clock}, then {target.rule.action.value}"


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
