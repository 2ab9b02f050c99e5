"""``sweeper daemon`` and ``sweeper run --once JOB``: the jobs, their timetable, and systemd.

Jobs (``JOBS``):

* ``plan``: a dry run of the configured RoPA; a stored plan and its reports for review: JSON
  and CSV, and the privacy officer's HTML report unless ``plan_job_html`` is false.
* ``execute``: approved plans not yet finished (never run, stopped, failed, or approved again
  since they last ran), oldest first; and, when the RoPA has ``auto_approve`` rules, a fresh
  dry run of those rules' activities and its execution. Execution only ever acts from a stored
  plan (DESIGN invariant 1) and under the execution lock (``sweeper.lock``).
* ``discover``: discovery of shadow data (``sweeper.discover``): every system's stores,
  compared with the RoPA's locations and sampled within the discovery bounds; a stored,
  audited run with its coverage and JSON report. It changes nothing on any system.
* ``prune``: the sweeper's own plans, reports and job records older than ``plan_retention``,
  and audit segments older than ``audit_retention``.

The daemon loads and checks everything before it says READY=1 to systemd: the settings, the
RoPA, the timetable, the state directory (writable), the state store, and every credential
the RoPA names (present and readable). Any problem stops it with every problem listed and
without READY. Then it runs jobs from the timetable, one at a time, and:

* SIGTERM (or SIGINT): a dry run is abandoned (nothing was changed; the plan stays unfinished
  and can never be executed); an execution finishes the batch in hand, records where it
  stopped, and the next execution resumes there. The daemon exits 0.
* SIGHUP: settings and RoPA are loaded again; if anything is invalid every problem is logged
  and the old ones stay in force.
* STATUS= says what it is doing; WATCHDOG=1 is sent every half ``WatchdogSec`` while the
  daemon makes progress (the loop ticks every second; jobs report each batch). A job that
  reports nothing for ``schedule.stall_timeout`` is taken as hung: the pings stop and
  systemd restarts the daemon (execution is resumable after any kill).
* After every job, the metrics (``sweeper.metrics``) are written to their textfile.

Every run is recorded in the state store's ``job_runs`` table, so ``sweeper status`` works
while the daemon runs and after it stopped.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import schedule
import sqlalchemy as sa
import structlog

from sweeper.errors import CredentialMissing, Problem, SettingsInvalid, SweeperError
from sweeper.lock import LockBusy, execution_lock
from sweeper.ropa.load import LoadedRopa
from sweeper.settings import Settings, load_settings
from sweeper.store import Store, job_runs
from sweeper.timetable import Timing

log = structlog.get_logger("sweeper.daemon")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Stopped(Exception):
    """Raised inside a dry run when a stop was requested: the dry run is abandoned."""


@dataclass
class Outcome:
    """How a job ended: ``ok``, ``failed``, ``stopped`` or ``busy`` (the execution lock was
    held), what it did, and its details."""

    result: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Runtime:
    """What a job needs: the settings and RoPA in force, a stop flag, a progress sink."""

    settings: Settings
    loaded: LoadedRopa
    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[str], None] = lambda status: None
    actor: str = field(default_factory=lambda: f"{getpass.getuser()} (sweeper daemon)")

    def stopping(self) -> bool:
        return self.stop.is_set()


class JobProgress:
    """The plan builder's and executor's progress display, for a daemon job: it says what is
    being done (throttled) and, in a dry run, abandons it when a stop is requested."""

    # per job: what its STATUS lines say it does to the label, and what it counts
    WORDS = {"plan": ("scanning ", "items"), "discover": ("", "items")}

    def __init__(self, runtime: Runtime, job: str, *, abandon_on_stop: bool) -> None:
        self.runtime = runtime
        self.job = job
        self.abandon = abandon_on_stop
        self.label = ""
        self.count = 0
        self.total: int | None = None
        self._said = 0.0

    def start(self, label: str, total: int | None = None) -> None:
        self.label, self.count, self.total = label, 0, total
        self._say(force=True)

    def advance(self, count: int) -> None:
        self.count += count
        self._say()

    def finish(self, label: str, outcome: str) -> None:
        self._say(force=True)

    def _say(self, force: bool = False) -> None:
        if self.abandon and self.runtime.stopping():
            raise Stopped(f"{self.job} stopped on request")
        now = time.monotonic()
        if force or now - self._said >= 1.0:
            self._said = now
            of = f"/{self.total}" if self.total else ""
            verb, unit = self.WORDS.get(self.job, ("acting on ", "items"))
            self.runtime.on_progress(f"{self.job}: {verb}{self.label}, {self.count}{of} {unit}")


# -- the jobs ----------------------------------------------------------------------------------


def plan_job(runtime: Runtime) -> Outcome:
    """Dry-run the RoPA: store a plan and write its reports."""
    from sweeper.plan import PlanOptions, build_plan

    settings = runtime.settings
    store = Store.open(settings.state_database_url)
    try:
        progress = JobProgress(runtime, "plan", abandon_on_stop=True)
        options = PlanOptions(
            progress=progress, reports_dir=settings.reports_path, created_by=runtime.actor
        )
        try:
            result = build_plan(runtime.loaded, settings, store, options)
        except Stopped:
            return Outcome(
                "stopped",
                "the dry run was stopped on request; its plan stays unfinished and is never "
                "executed",
            )
        errors = _plan_errors(store, result.plan_id, result.summary)
        details = {
            "plan": result.plan_id,
            "items": result.item_count,
            "complete": result.complete,
            "errors": errors,
        }
        html_problem = _html_report(store, settings, result.plan_id, details)
    finally:
        store.close()
    totals = result.summary.get("totals", {})
    message = (
        f"plan {result.plan_id}: {result.item_count} item(s), "
        f"{totals.get('due', 0) + totals.get('legacy_due', 0)} due"
    )
    if html_problem:
        message += f"; {html_problem}"
    if not result.complete:
        failed = ", ".join(sorted(errors))
        return Outcome("failed", f"{message}; incomplete, failed: {failed}", details)
    return Outcome("ok", message, details)


def _html_report(
    store: Store, settings: Settings, plan_id: str, details: dict[str, Any]
) -> str | None:
    """Write the plan's HTML report next to its JSON and CSV (unless ``plan_job_html`` is
    false) and name it in ``details``; return what went wrong, if anything. A report that
    cannot be written leaves the stored plan as it is: it can be rendered again with
    ``sweeper report PLAN --format html``."""
    from jinja2 import TemplateError

    from sweeper.report_html import ReportOptions, save_report

    if not settings.plan_job_html:
        return None
    target = settings.reports_path / f"plan-{plan_id}.html"
    try:
        save_report(store, plan_id, target, ReportOptions.from_settings(settings, plan_id))
    except (OSError, TemplateError, SweeperError) as err:
        log.error("the HTML report could not be written", plan_id=plan_id, error=str(err))
        return (
            f"the HTML report could not be written ({err}); sweeper report {plan_id} --format html"
        )
    details["html"] = str(target)
    return None


def execute_job(runtime: Runtime) -> Outcome:
    """Execute approved plans not yet finished, and auto_approve rules from a fresh dry run."""
    settings = runtime.settings
    store = Store.open(settings.state_database_url)
    try:
        fresh = _auto_approve_plan(runtime, store)
        if fresh.result == "stopped":
            return fresh
        with execution_lock(
            settings,
            store,
            "sweeper daemon: execute job",
            stop=runtime.stopping,
            waiting=lambda holder: runtime.on_progress(f"execute: waiting for the lock ({holder})"),
        ):
            plan_ids = pending_plans(store, settings, runtime.loaded.digest, _utc_now())
            if fresh.details.get("plan") and fresh.details.get("due"):
                plan_ids.append(fresh.details["plan"])
            return _execute_plans(runtime, store, plan_ids, fresh)
    finally:
        store.close()


def _auto_approve_plan(runtime: Runtime, store: Store) -> Outcome:
    """Dry-run the activities whose rule is auto_approve; return the plan's outcome."""
    from sweeper.plan import DUE, LEGACY_DUE, PlanOptions, build_plan

    auto = frozenset(
        a.id for a in runtime.loaded.ropa.activities if a.retention and a.retention.auto_approve
    )
    if not auto:
        return Outcome("ok", "no auto_approve rules")
    options = PlanOptions(
        progress=JobProgress(runtime, "execute", abandon_on_stop=True),
        reports_dir=runtime.settings.reports_path,
        created_by=runtime.actor,
        activities=auto,
    )
    try:
        result = build_plan(runtime.loaded, runtime.settings, store, options)
    except Stopped:
        return Outcome("stopped", "the dry run of the auto_approve rules was stopped on request")
    totals = result.summary.get("totals", {})
    due = totals.get(DUE, 0) + totals.get(LEGACY_DUE, 0)
    return Outcome(
        "ok" if result.complete else "failed",
        f"auto_approve dry run {result.plan_id}: {due} due",
        {
            "plan": result.plan_id,
            "due": due,
            "errors": _plan_errors(store, result.plan_id, result.summary),
        },
    )


def _execute_plans(runtime: Runtime, store: Store, plan_ids: list[str], fresh: Outcome) -> Outcome:
    from sweeper.approve import PlanRefused
    from sweeper.execute import ExecuteOptions, execute

    done: list[dict[str, Any]] = []
    errors: dict[str, int] = dict(fresh.details.get("errors", {}))
    result = "failed" if fresh.result == "failed" else "ok"
    for plan_id in plan_ids:
        if runtime.stopping():
            result = "stopped"
            break
        options = ExecuteOptions(
            actor=runtime.actor,
            progress=JobProgress(runtime, "execute", abandon_on_stop=False),
            stop=runtime.stopping,
        )
        try:
            executed = execute(runtime.loaded, runtime.settings, store, plan_id, options)
        except PlanRefused as err:
            log.warning("plan refused", plan_id=plan_id, reason=str(err))
            done.append({"plan": plan_id, "outcome": "refused", "reason": str(err)})
            _record_execution(store, plan_id, None, "refused")
            result = "failed"
            continue
        outcome = "stopped" if executed.stopped else ("finished" if executed.ok else "failed")
        for loc in executed.locations:
            if loc.outcome == "failed" or loc.counts["failed"]:
                errors[loc.system] = errors.get(loc.system, 0) + max(1, loc.counts["failed"])
        _record_execution(store, plan_id, executed.run_id, outcome)
        done.append(
            {
                "plan": plan_id,
                "run": executed.run_id,
                "outcome": outcome,
                **{k: executed.total(k) for k in ("done", "skipped", "failed", "review")},
                "stopped_at": executed.stopped,
            }
        )
        if outcome == "stopped":
            result = "stopped"
            break
        if outcome == "failed":
            result = "failed"
    acted = sum(p.get("done", 0) for p in done)
    message = f"{len(done)} plan(s) executed, {acted} item(s) done"
    if result == "stopped":
        where = next((p["stopped_at"] for p in done if p.get("stopped_at")), None)
        message += f"; stopped on request at {where}" if where else "; stopped on request"
    if fresh.details.get("plan"):
        message += f"; {fresh.message}"
    return Outcome(result, message, {"plans": done, "errors": errors, **_fresh(fresh)})


def _fresh(fresh: Outcome) -> dict[str, Any]:
    return {"auto_approve_plan": fresh.details["plan"]} if fresh.details.get("plan") else {}


def _record_execution(store: Store, plan_id: str, run_id: str | None, outcome: str) -> None:
    from sweeper.store import executions

    with store.engine.begin() as conn:
        conn.execute(
            executions.insert().values(
                run_id=run_id, plan_id=plan_id, finished_at=_utc_now(), outcome=outcome
            )
        )


def discover_job(runtime: Runtime) -> Outcome:
    """Discover stores holding personal data the RoPA does not cover: a stored, audited run
    with its coverage and JSON report. A stop abandons it (it has changed nothing and stores
    nothing until it ends)."""
    from sweeper.coverage import percent
    from sweeper.discover import DiscoveryOptions, run_discovery

    settings = runtime.settings
    store = Store.open(settings.state_database_url)
    try:
        options = DiscoveryOptions(
            progress=JobProgress(runtime, "discover", abandon_on_stop=True),
            reports_dir=settings.reports_path,
            created_by=runtime.actor,
        )
        try:
            result = run_discovery(runtime.loaded, settings, store, options)
        except Stopped:
            return Outcome("stopped", "discovery was stopped on request; nothing of it was stored")
    finally:
        store.close()
    coverage = result.coverage
    failed = {s.system: s.reason for s in result.systems if s.outcome == "failed"}
    details = {
        "run": result.run_id,
        "complete": result.complete,
        "stores": len(result.stores),
        "findings": len(result.findings),
        "report": str(result.report) if result.report else None,
        "coverage": {
            **coverage.shares(),
            "legacy_systems_with_data": coverage.legacy_systems_with_data,
        },
        "errors": {system: 1 for system in failed},
    }
    message = (
        f"discovery {result.run_id}: {len(result.stores)} store(s), "
        f"{len(result.findings)} finding(s); registered: {percent(coverage.stores_share)} of "
        f"the stores, {percent(coverage.personal_share)} of those with personal data"
    )
    if not result.complete:
        return Outcome("failed", f"{message}; incomplete, failed: {', '.join(failed)}", details)
    return Outcome("ok", message, details)


def pending_plans(store: Store, settings: Settings, digest: str, now: datetime) -> list[str]:
    """Return the ids of approved plans an execute job should run, oldest first: plans made
    from this RoPA, ready, not rejected, not expired, and either never executed, or last
    stopped or failed, or approved again since they last ran."""
    from sweeper.approve import decisions
    from sweeper.store import executions, plans

    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(plans.c.id, plans.c.created_at, plans.c.content_hash)
            .where(plans.c.state == "ready", plans.c.ropa_digest == digest)
            .order_by(plans.c.created_at)
        ).all()
        last_runs = {
            r.plan_id: r
            for r in conn.execute(
                sa.select(
                    executions.c.plan_id, executions.c.finished_at, executions.c.outcome
                ).order_by(executions.c.finished_at)
            )
        }
    found = []
    for plan_id, created_at, content_hash in rows:
        if settings.plan_max_age.add_to(created_at) <= now:
            continue
        verdicts = decisions(store, plan_id)
        if any(d.decision == "rejected" for d in verdicts):
            continue
        approved = [
            d.at for d in verdicts if d.decision == "approved" and d.content_hash == content_hash
        ]
        if not approved:
            continue
        last = last_runs.get(plan_id)
        if (
            last is None
            or last.outcome in ("stopped", "failed")  # a refused plan waits for a new approval
            or max(approved) > last.finished_at
        ):
            found.append(plan_id)
    return found


def prune_job(runtime: Runtime) -> Outcome:
    """Remove the sweeper's own plans, reports and job records past plan_retention, and audit
    segments past audit_retention."""
    from sweeper.audit import AuditLog

    settings = runtime.settings
    now = _utc_now()
    store = Store.open(settings.state_database_url)
    try:
        with execution_lock(settings, store, "sweeper daemon: prune job", stop=runtime.stopping):
            audit = AuditLog.open(settings, store)
            removed = prune_plans(store, settings, audit, runtime.actor, now)
            segments = audit.prune(now, actor=runtime.actor)
    finally:
        store.close()
    return Outcome(
        "ok",
        f"{len(removed)} plan(s) removed (older than {settings.plan_retention}, or unfinished "
        f"and older than {settings.plan_max_age}) and {len(segments)} audit segment(s) older "
        f"than {settings.audit_retention}",
        {"plans": removed, "segments": [p.name for p in segments]},
    )


def prune_plans(
    store: Store, settings: Settings, audit: Any, actor: str, now: datetime
) -> list[str]:
    """Remove plans (with their items, approvals, journal and reports) created before
    now - plan_retention, and unfinished ones older than plan_max_age, except plans with items
    still in quarantine; audit the removal first; return the removed plans' ids."""
    from sweeper import store as tables

    cutoff = settings.plan_retention.subtract_from(now)
    # A dry run that never finished can never be executed: it goes once it is too old to be.
    unfinished = settings.plan_max_age.subtract_from(now)
    plans = tables.plans
    with store.engine.connect() as conn:
        old = [
            r[0]
            for r in conn.execute(
                sa.select(plans.c.id)
                .where(
                    (plans.c.created_at < cutoff)
                    | ((plans.c.state == "building") & (plans.c.created_at < unfinished))
                )
                .order_by(plans.c.created_at)
            )
        ]
        kept = {
            r[0]
            for r in conn.execute(
                sa.select(tables.quarantine.c.plan_id)
                .where(tables.quarantine.c.state == "quarantined")
                .distinct()
            )
        }
    removable = [p for p in old if p not in kept]
    if removable:
        audit.append(
            "plans_pruned",
            actor,
            plans=removable,
            retention=str(settings.plan_retention),
            kept_for_quarantine=sorted(set(old) & kept),
        )
    children = (
        tables.plan_items,
        tables.plan_locations,
        tables.plan_findings,
        tables.approvals,
        tables.journal,
        tables.quarantine,
        tables.executions,
    )
    for plan_id in removable:
        with store.engine.begin() as conn:
            for table in children:
                conn.execute(table.delete().where(table.c.plan_id == plan_id))
            conn.execute(tables.plans.delete().where(tables.plans.c.id == plan_id))
        for report in settings.reports_path.glob(f"plan-{plan_id}.*"):
            report.unlink(missing_ok=True)
    with store.engine.begin() as conn:
        conn.execute(job_runs.delete().where(job_runs.c.started_at < cutoff))
    return removable


def _plan_errors(store: Store, plan_id: str, summary: dict[str, Any]) -> dict[str, int]:
    """Return the number of failures per system in a plan: failed locations, and 1 for a
    system that could not be reached."""
    errors: dict[str, int] = {}
    for loc in store.locations(plan_id):
        if loc["outcome"] == "failed":
            errors[loc["system"]] = errors.get(loc["system"], 0) + 1
    for system in summary.get("failed_systems", {}):
        errors.setdefault(system, 1)
    return errors


# Where each job is done.
JOBS: dict[str, Callable[[Runtime], Outcome]] = {
    "plan": plan_job,
    "execute": execute_job,
    "discover": discover_job,
    "prune": prune_job,
}


# -- running one job -------------------------------------------------------------------------


def run_recorded(runtime: Runtime, job: str, trigger: str) -> Outcome:
    """Run one job, recorded in the state store's job_runs, logged, and with the metrics
    written after it. A SweeperError ends the job as failed, never the daemon."""
    function = JOBS[job]
    settings = runtime.settings
    store = Store.open(settings.state_database_url)
    started = _utc_now()
    try:
        with store.engine.begin() as conn:
            inserted = conn.execute(
                job_runs.insert().values(
                    job=job,
                    trigger=trigger,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    started_at=started,
                    result="running",
                )
            ).inserted_primary_key
        assert inserted is not None
        run_id = int(inserted[0])
        bound = log.bind(job=job, job_run=run_id)
        bound.info("job started", trigger=trigger)
        try:
            outcome = function(runtime)
        except LockBusy as err:  # lock.on_busy refuse, the wait timed out, or a stop came
            outcome = Outcome("stopped" if runtime.stopping() else "busy", str(err))
        except SweeperError as err:
            outcome = Outcome("failed", str(err))
        except sa.exc.SQLAlchemyError as err:  # the state store went away mid-job
            outcome = Outcome("failed", f"the state store failed: {type(err).__name__}: {err}")
        finished = _utc_now()
        with store.engine.begin() as conn:
            conn.execute(
                job_runs.update()
                .where(job_runs.c.id == run_id)
                .values(
                    finished_at=finished,
                    result=outcome.result,
                    message=outcome.message,
                    details=json.dumps(outcome.details, default=str),
                )
            )
        level = bound.info if outcome.result == "ok" else bound.warning
        level(
            "job finished",
            result=outcome.result,
            seconds=round((finished - started).total_seconds(), 3),
            message=outcome.message,
        )
        return outcome
    finally:
        store.close()


def mark_interrupted(store: Store) -> None:
    """Mark job runs of this host left 'running' by a process that is gone as interrupted."""
    host = socket.gethostname()
    with store.engine.begin() as conn:
        rows = conn.execute(
            sa.select(job_runs.c.id, job_runs.c.pid).where(
                job_runs.c.result == "running", job_runs.c.host == host
            )
        ).all()
        gone = [r.id for r in rows if not Path(f"/proc/{r.pid}").exists()]
        if gone:
            conn.execute(
                job_runs.update()
                .where(job_runs.c.id.in_(gone))
                .values(result="interrupted", message="the process running it was killed")
            )


# -- start-up checks -------------------------------------------------------------------------


def load_everything(
    config: Path | None, overrides: dict[str, Any], ropa_path: Path | None
) -> tuple[Settings, LoadedRopa]:
    """Load and check settings, RoPA, timetable, state directory, state store and credentials.
    Raise SettingsInvalid, RopaInvalid or SweeperError listing every problem found."""
    from sweeper.ropa import load_ropa

    settings = load_settings(config, **overrides)
    source = str(config or os.environ.get("SWEEPER_CONFIG") or "settings")
    path = ropa_path or settings.ropa
    if path is None:
        raise SettingsInvalid(
            [Problem(source, "ropa", "the daemon needs a RoPA: set 'ropa' or pass --ropa PATH")]
        )
    loaded = load_ropa(path)
    problems = check_writable(settings)
    problems += check_credentials(settings, loaded)
    if problems:
        raise SettingsInvalid(problems)
    store = Store.open(settings.state_database_url)
    try:
        from sweeper.audit import AuditLog

        AuditLog.open(settings, store)  # an unreadable audit key fails here, not mid-job
    finally:
        store.close()
    return settings, loaded


def check_writable(settings: Settings) -> list[Problem]:
    """Return a problem for each folder the sweeper writes to that it cannot write to."""
    problems = []
    folders = {
        "state_dir": settings.state_dir,
        "reports_dir": settings.reports_path,
        "audit_dir": settings.audit_path,
        "metrics.textfile": settings.metrics_path.parent,
    }
    for name, folder in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".sweeper-write-test-"):
                pass
        except OSError as err:
            problems.append(
                Problem(
                    name,
                    str(folder),
                    f"cannot write there ({err.strerror}) as user {getpass.getuser()}: make it "
                    "writable by the sweeper's user (under systemd, StateDirectory= and "
                    "LogsDirectory= create theirs; other folders need ReadWritePaths=)",
                )
            )
    return problems


def check_credentials(settings: Settings, loaded: LoadedRopa) -> list[Problem]:
    """Return a problem for each credential the RoPA names that is missing or unreadable."""
    problems = []
    for system in loaded.ropa.systems:
        connection = getattr(system, "connection", None)
        names = [
            value
            for key, value in (vars(connection).items() if connection is not None else [])
            if (key == "credential" or key.endswith("_credential")) and isinstance(value, str)
        ]
        for name in names:
            try:
                settings.credential(name)
            except CredentialMissing as err:
                problems.append(
                    Problem(loaded.where("systems", system.id), f"systems.{system.id}", str(err))
                )
    return problems


# -- the daemon ------------------------------------------------------------------------------


class _Job(schedule.Job):
    """A schedule job placed by a ``Timing`` in the daemon's timezone, on the daemon's clock
    (schedule's own placement uses the host's naive local time)."""

    def __init__(
        self, name: str, timing: Timing, tz: ZoneInfo, clock: Clock, scheduler: schedule.Scheduler
    ) -> None:
        super().__init__(1, scheduler)
        self.unit = "seconds"  # schedule's own placement is not used (see _schedule_next_run)
        self.name = name
        self.timing = timing
        self.tz = tz
        self.clock = clock
        self.next_at: datetime | None = None

    def _schedule_next_run(self) -> None:
        now = self.clock()
        previous = self.next_at
        self.next_at = self.timing.next_after(now, self.tz)
        self.next_run = self.next_at.astimezone(UTC).replace(tzinfo=None)
        if previous is not None:
            missed, slot = 0, self.timing.next_after(previous, self.tz)
            while slot <= now and missed < 10_000:
                missed, slot = missed + 1, self.timing.next_after(slot, self.tz)
            if missed:
                log.warning(
                    "job overran its next slot(s); they are not run again",
                    job=self.name,
                    missed=missed,
                    next_run=self.next_at.isoformat(),
                )

    @property
    def should_run(self) -> bool:
        return self.next_at is not None and self.clock() >= self.next_at


class Timetable:
    """The jobs of the timetable on a ``schedule.Scheduler``."""

    def __init__(self, settings: Settings, loaded: LoadedRopa, clock: Clock = _utc_now) -> None:
        self.tz = ZoneInfo(settings.schedule.timezone or loaded.ropa.timezone)
        self.scheduler = schedule.Scheduler()
        self.jobs: dict[str, _Job] = {}
        self.clock = clock
        self.timings = {job: getattr(settings.schedule, job) for job in JOBS}

    def start(self, run: Callable[[str], None]) -> None:
        """Place every job that is not 'never'; ``run(name)`` is called when one is due."""
        self.scheduler.clear()
        self.jobs = {}
        for name, timing in self.timings.items():
            if timing.never:
                continue
            job = _Job(name, timing, self.tz, self.clock, self.scheduler)
            job.do(run, name)
            self.jobs[name] = job

    def run_pending(self) -> None:
        self.scheduler.run_pending()

    def next_runs(self) -> dict[str, datetime | None]:
        return {
            name: (self.jobs[name].next_at if name in self.jobs else None) for name in self.timings
        }

    def seconds_to_next(self) -> float | None:
        times = [j.next_at for j in self.jobs.values() if j.next_at is not None]
        if not times:
            return None
        return max(0.0, (min(times) - self.clock()).total_seconds())


class Daemon:
    """The long-running ``sweeper daemon``; create it with the settings' sources, then
    ``run()``."""

    def __init__(
        self,
        config: Path | None,
        overrides: dict[str, Any],
        ropa_path: Path | None,
        clock: Clock = _utc_now,
    ) -> None:
        from sweeper.notify import Notifier

        self.config = config
        self.overrides = overrides
        self.ropa_path = ropa_path
        self.clock = clock
        self.notifier = Notifier.from_environment()
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.heartbeat = time.monotonic()
        self.current = "starting"
        self.settings: Settings
        self.loaded: LoadedRopa
        self.timetable: Timetable
        self.metrics: Any = None

    def start(self) -> None:
        """Load and check everything, then say READY. Raise on any problem (no READY)."""
        self.settings, self.loaded = load_everything(self.config, self.overrides, self.ropa_path)
        self.timetable = Timetable(self.settings, self.loaded, self.clock)
        store = Store.open(self.settings.state_database_url)
        try:
            mark_interrupted(store)
        finally:
            store.close()
        self.metrics = _publisher(self.settings)
        self._publish()
        # A forked child (the plan writer) must not inherit these handlers: it would ignore
        # the terminate() with which an abandoned dry run stops it.
        os.register_at_fork(after_in_child=_default_signals)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self.timetable.start(self._run_job)
        self.notifier.ready(self._idle_status())
        self._watchdog()
        log.info(
            "daemon ready",
            ropa=str(self.loaded.path),
            timezone=str(self.timetable.tz),
            next_runs={
                k: v.isoformat() if v else None for k, v in self.timetable.next_runs().items()
            },
        )

    def run(self) -> int:
        """Run jobs until asked to stop; return the exit code (0)."""
        status_said = ""
        while not self.stop.is_set():
            self.heartbeat = time.monotonic()
            if self.reload.is_set():
                self.reload.clear()
                self._reload()
            self.timetable.run_pending()
            status = self._idle_status()
            if status != status_said and not self.stop.is_set():
                self.notifier.status(status)
                status_said = status
            wait = self.timetable.seconds_to_next()
            self.stop.wait(min(1.0, wait if wait is not None else 1.0))
        self.notifier.stopping("stopping")
        forget_next_runs(self.settings)
        log.info("daemon stopped")
        if self.metrics is not None:
            self.metrics.close()
        self.notifier.close()
        return 0

    # -- jobs ---------------------------------------------------------------------------

    def _run_job(self, name: str) -> None:
        if self.stop.is_set():
            return
        runtime = Runtime(self.settings, self.loaded, self.stop, self._progress)
        self.current = name
        self._progress(f"{name}: started")
        try:
            outcome = run_recorded(runtime, name, "schedule")
            self._progress(f"{name}: {outcome.result}: {outcome.message}")
        except (SweeperError, sa.exc.SQLAlchemyError) as err:  # the state store failed
            log.error("job could not run; it runs again at its next slot", job=name, error=str(err))
        finally:
            self.current = "idle"
            self._publish()

    def _publish(self) -> None:
        """Record the next runs and write the metrics; a failure is logged, never fatal (the
        next job tries again)."""
        try:
            record_next_runs(self.settings, self.timetable)
            self.metrics.publish(self.timetable.next_runs())
        except (SweeperError, sa.exc.SQLAlchemyError, OSError) as err:
            log.error("cannot record the next runs or write the metrics", error=str(err))

    def _progress(self, status: str) -> None:
        self.heartbeat = time.monotonic()
        self.notifier.status(status)

    def _idle_status(self) -> str:
        upcoming = [(at, name) for name, at in self.timetable.next_runs().items() if at]
        if not upcoming:
            return "idle: no job on the timetable"
        at, name = min(upcoming)
        return f"idle; next: {name} at {at.astimezone(self.timetable.tz):%Y-%m-%d %H:%M:%S %Z}"

    # -- signals --------------------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: Any) -> None:
        self.stop.set()
        self.notifier.stopping(
            f"stopping on {signal.Signals(signum).name}: finishing the "
            f"batch in hand ({self.current})"
        )

    def _on_reload(self, _signum: int, _frame: Any) -> None:
        self.reload.set()

    def _reload(self) -> None:
        monotonic = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notifier.send(RELOADING="1", MONOTONIC_USEC=str(monotonic), STATUS="reloading")
        try:
            settings, loaded = load_everything(self.config, self.overrides, self.ropa_path)
            timetable = Timetable(settings, loaded, self.clock)
        except SweeperError as err:
            problems = getattr(err, "problems", None) or [Problem("", "", str(err))]
            for problem in problems:
                log.error("reload refused", problem=str(problem))
            log.error(
                "reload refused: the settings and RoPA in force stay in force",
                problems=len(problems),
                ropa=str(self.loaded.path),
            )
            self.notifier.ready(
                f"reload refused ({len(problems)} problem(s)); {self._idle_status()}"
            )
            return
        self.settings, self.loaded, self.timetable = settings, loaded, timetable
        self.timetable.start(self._run_job)
        self.metrics.close()
        try:
            self.metrics = _publisher(settings)
        except SettingsInvalid as err:
            log.error("metrics are not served", problem=str(err.problems[0]))
            self.metrics = _publisher(settings, serve=False)
        self._publish()
        log.info("reloaded", ropa=str(loaded.path), digest=loaded.digest[:12])
        self.notifier.ready(f"reloaded; {self._idle_status()}")

    # -- the watchdog ---------------------------------------------------------------------

    def _watchdog(self) -> None:
        interval = self.notifier.watchdog
        if interval is None:
            return
        stall = _seconds(self.settings.schedule.stall_timeout)

        def ping() -> None:
            stalled = False
            while not self.stop.wait(interval.total_seconds() / 2):
                if time.monotonic() - self.heartbeat < stall:
                    self.notifier.ping()
                    stalled = False
                elif not stalled:
                    stalled = True
                    log.error(
                        "no progress: the watchdog stops so that systemd restarts the daemon",
                        job=self.current,
                        stall_timeout=str(self.settings.schedule.stall_timeout),
                    )

        self.notifier.ping()
        threading.Thread(target=ping, name="sweeper-watchdog", daemon=True).start()


def _default_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def record_next_runs(settings: Settings, timetable: Timetable) -> None:
    """Keep this host's daemon's next runs in the state store, for ``sweeper status``."""
    from sweeper.store import daemon_schedule

    host, now = socket.gethostname(), _utc_now()
    store = Store.open(settings.state_database_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(daemon_schedule.delete().where(daemon_schedule.c.host == host))
            conn.execute(
                daemon_schedule.insert(),
                [
                    {
                        "host": host,
                        "job": job,
                        "pid": os.getpid(),
                        "timing": str(timetable.timings[job]),
                        "next_at": at,
                        "updated_at": now,
                    }
                    for job, at in timetable.next_runs().items()
                ],
            )
    finally:
        store.close()


def forget_next_runs(settings: Settings) -> None:
    """Remove this host's daemon's next runs: it no longer runs (best effort)."""
    from sweeper.store import daemon_schedule

    try:
        store = Store.open(settings.state_database_url)
        try:
            with store.engine.begin() as conn:
                conn.execute(
                    daemon_schedule.delete().where(
                        daemon_schedule.c.host == socket.gethostname(),
                        daemon_schedule.c.pid == os.getpid(),
                    )
                )
        finally:
            store.close()
    except (SweeperError, sa.exc.SQLAlchemyError) as err:
        log.warning("cannot remove the recorded next runs", error=str(err))


def _publisher(settings: Settings, *, serve: bool = True) -> Any:
    """Return the metrics publisher. Raise SettingsInvalid if metrics.listen is taken."""
    from sweeper.metrics import MetricsPublisher

    try:
        return MetricsPublisher(settings, serve=serve)
    except OSError as err:
        raise SettingsInvalid(
            [
                Problem(
                    "settings",
                    "metrics.listen",
                    f"cannot listen on {settings.metrics.listen}: {err.strerror}",
                )
            ]
        ) from err


def _seconds(period: Any) -> float:
    now = datetime.now(UTC)
    return float((period.add_to(now) - now) / timedelta(seconds=1))
