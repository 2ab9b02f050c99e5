"""Prometheus metrics, read from the state store: what the latest plan found, and how the jobs ran.

Written after every job (and at start-up) to ``metrics.textfile`` for node_exporter's textfile
collector, atomically (a temporary file renamed over the old one); served on a loopback HTTP
port too when ``metrics.listen`` is set. Metrics never carry a subject, a key or a path: only
activity, system and job ids and numbers.

From the latest complete-RoPA plan (not the daemon's dry runs of auto_approve rules):

=====================================================  ===========================================
``sweeper_plan_timestamp_seconds``                       the plan's clock
``sweeper_items{activity,system,status}``                items per status: due, legacy_due, held,
                                                         locked, protected, no_clock, not_due, …
``sweeper_bytes_due{activity,system}``                   size of the due items
``sweeper_overdue_days{activity,system}``                days the oldest due item is overdue
``sweeper_legacy_system_items{system}``                  items a decommissioned system still holds
``sweeper_legacy_system_subjects{system}``               data subjects it still holds
``sweeper_legacy_system_reachable{system}``              1 if it still answers (a top finding)
``sweeper_legacy_system_decommissioned_days{system}``    days since it was decommissioned
=====================================================  ===========================================

From the latest discovery run (``sweeper discover`` or the discover job; see
``sweeper.coverage``):

==========================================================  =====================================
``sweeper_discovery_timestamp_seconds{run}``                  the run's clock
``sweeper_discovery_complete``                                1 if every system was discovered
``sweeper_coverage_activities_enforceable_ratio``             activities with a rule and a location
``sweeper_coverage_stores_registered_ratio``                  discovered stores that are registered
``sweeper_coverage_personal_stores_registered_ratio``         stores with personal data registered
``sweeper_coverage_personal_records_registered_ratio``        estimated personal records in
                                                              registered stores
``sweeper_coverage_legacy_systems_with_data``                 legacy systems still holding data
``sweeper_coverage_uninspectable``                            places that could not be inspected
``sweeper_discovery_unregistered_stores{system}``             stores holding data no location
                                                              covers entirely (acknowledged too)
``sweeper_discovery_unregistered_personal_stores{system}``    those with personal data
``sweeper_discovery_open_findings{system}``                   findings not acknowledged
==========================================================  =====================================

A share without a whole (no activities, no store) has no sample.

From the jobs: ``sweeper_job_last_run_timestamp_seconds{job}``,
``sweeper_job_last_run_duration_seconds{job}``, ``sweeper_job_last_run_success{job}`` (1 ok,
0 otherwise) with ``sweeper_job_last_run_result{job,result}``,
``sweeper_job_next_run_timestamp_seconds{job}`` (daemon only), and
``sweeper_system_errors{job,system}``: failed locations, unreachable systems and failed items
per system in the last run of each job. And ``sweeper_plans_awaiting_approval``,
``sweeper_holds_active``.

``prometheus_client`` does the text format, the atomic textfile and the HTTP server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sweeper.settings import Settings
from sweeper.store import Store, job_runs, plans

JOB_NAMES = ("plan", "execute", "discover", "prune")


def latest_full_plan(store: Store) -> dict[str, Any] | None:
    """Return the newest ready plan of the whole RoPA (not a dry run of some activities)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(plans.c.id, plans.c.summary)
            .where(plans.c.state == "ready")
            .order_by(plans.c.created_at.desc())
            .limit(500)
        ).all()
    for plan_id, summary in rows:
        if "activities" not in json.loads(summary):
            return store.plan(plan_id)
    return None


def last_runs(store: Store) -> dict[str, dict[str, Any]]:
    """Return the last finished run of each job, by job."""
    found: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for job in JOB_NAMES:
            row = (
                conn.execute(
                    sa.select(job_runs)
                    .where(job_runs.c.job == job, job_runs.c.result != "running")
                    .order_by(job_runs.c.started_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if row is not None:
                found[job] = dict(row, details=json.loads(row["details"] or "{}"))
    return found


def families(
    store: Store, next_runs: Mapping[str, datetime | None] | None = None
) -> list[GaugeMetricFamily]:
    """Return every metric, read from the state store now."""
    from sweeper.approve import decisions
    from sweeper.holds import all_holds

    out: list[GaugeMetricFamily] = []
    plan = latest_full_plan(store)
    if plan is not None:
        out += _plan_families(store, plan)
    out += _coverage_families(store)
    out += _job_families(last_runs(store), next_runs or {})
    now = datetime.now(UTC)
    awaiting = 0
    for p in store.plans(200):
        totals = p["summary"].get("totals", {})
        if p["state"] != "ready" or "activities" in p["summary"]:
            continue
        if not totals.get("due", 0) + totals.get("legacy_due", 0):
            continue
        if not decisions(store, p["id"]):
            awaiting += 1
    out.append(
        _gauge(
            "sweeper_plans_awaiting_approval",
            "Plans with due items and no decision",
            [],
            [((), awaiting)],
        )
    )
    active = sum(1 for h in all_holds(store) if h.active(now))
    out.append(_gauge("sweeper_holds_active", "Legal holds in force", [], [((), active)]))
    return out


def _plan_families(store: Store, plan: dict[str, Any]) -> list[GaugeMetricFamily]:
    clock: datetime = plan["clock"]
    items: dict[tuple[str, str, str], int] = {}
    bytes_due: dict[tuple[str, str], int] = {}
    overdue: dict[tuple[str, str], float] = {}
    for loc in store.locations(plan["id"]):
        pair = (loc["activity"], loc["system"])
        for status, count in loc["counts"].items():
            items[(*pair, status)] = items.get((*pair, status), 0) + count
        for status in ("due", "held", "locked"):  # always present, so alerts can say 0
            items.setdefault((*pair, status), 0)
        bytes_due[pair] = bytes_due.get(pair, 0) + loc["bytes_due"]
        if loc["oldest_due"]:
            days = (clock - datetime.fromisoformat(loc["oldest_due"])).total_seconds() / 86400
            overdue[pair] = max(overdue.get(pair, 0.0), days)
    legacy = plan["summary"].get("legacy_systems", [])
    return [
        _gauge(
            "sweeper_plan_timestamp_seconds",
            "Clock of the latest plan of the whole RoPA",
            ["plan"],
            [((plan["id"],), clock.timestamp())],
        ),
        _gauge(
            "sweeper_items",
            "Items per status in the latest plan, per activity and system",
            ["activity", "system", "status"],
            sorted(items.items()),
        ),
        _gauge(
            "sweeper_bytes_due",
            "Bytes of due items in the latest plan",
            ["activity", "system"],
            sorted(bytes_due.items()),
        ),
        _gauge(
            "sweeper_overdue_days",
            "Days the oldest due item is past its due date, at the latest plan's clock",
            ["activity", "system"],
            sorted((k, round(v, 3)) for k, v in overdue.items()),
        ),
        _gauge(
            "sweeper_legacy_system_items",
            "Items a decommissioned system still holds",
            ["system"],
            [((s["system"],), s["items"]) for s in legacy],
        ),
        _gauge(
            "sweeper_legacy_system_subjects",
            "Data subjects a decommissioned system still holds",
            ["system"],
            [((s["system"],), s["subjects"]) for s in legacy],
        ),
        _gauge(
            "sweeper_legacy_system_reachable",
            "1 if a decommissioned system still answers",
            ["system"],
            [((s["system"],), 1 if s["reachable"] else 0) for s in legacy],
        ),
        _gauge(
            "sweeper_legacy_system_decommissioned_days",
            "Days since a legacy system was decommissioned",
            ["system"],
            [((s["system"],), s["days_since"]) for s in legacy],
        ),
    ]


def _coverage_families(store: Store) -> list[GaugeMetricFamily]:
    from sweeper.coverage import latest_coverage
    from sweeper.store import discovery_stores as stores

    coverage = latest_coverage(store)
    if coverage is None:
        return []

    def count(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    # Empty stores do not count, as in the coverage; acknowledged ones are still unregistered.
    not_registered = (sa.func.coalesce(stores.c["items"], -1) != 0) & (
        stores.c.registration != "registered"
    )
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                stores.c.system,
                count(not_registered),
                count(not_registered & stores.c.personal_data),
                count(stores.c.finding.is_not(None) & (stores.c.status != "acknowledged")),
            )
            .where(stores.c.run_id == coverage.run_id)
            .group_by(stores.c.system)
        ).all()
    # every system with stores has a sample, so alerts can say 0
    unregistered = {r[0]: int(r[1] or 0) for r in rows}
    personal = {r[0]: int(r[2] or 0) for r in rows}
    findings = {r[0]: int(r[3] or 0) for r in rows}
    shares = [
        _gauge(
            f"sweeper_coverage_{name}_ratio",
            f"Coverage, latest discovery run: {text}",
            [],
            [] if share is None else [((), share)],
        )
        for name, share, text in (
            (
                "activities_enforceable",
                coverage.activities_share,
                "share of processing activities with a retention rule and a location",
            ),
            (
                "stores_registered",
                coverage.stores_share,
                "share of discovered stores holding data that a location covers entirely",
            ),
            (
                "personal_stores_registered",
                coverage.personal_share,
                "share of stores with personal data that a location covers entirely",
            ),
            (
                "personal_records_registered",
                coverage.records_share,
                "share of the estimated personal records that are in registered stores",
            ),
        )
    ]
    per_system = [
        (
            "unregistered_stores",
            "Stores holding data that no location covers entirely",
            unregistered,
        ),
        ("unregistered_personal_stores", "Unregistered stores with personal data", personal),
        ("open_findings", "Discovery findings not acknowledged", findings),
    ]
    return [
        _gauge(
            "sweeper_discovery_timestamp_seconds",
            "Clock of the latest discovery run",
            ["run"],
            [((coverage.run_id,), coverage.at.timestamp())],
        ),
        _gauge(
            "sweeper_discovery_complete",
            "1 if the latest discovery run reached every system",
            [],
            [((), 1 if coverage.complete else 0)],
        ),
        *shares,
        _gauge(
            "sweeper_coverage_legacy_systems_with_data",
            "Legacy and decommissioned systems that still answer and hold data",
            [],
            [((), coverage.legacy_systems_with_data)],
        ),
        _gauge(
            "sweeper_coverage_uninspectable",
            "Places the latest discovery run could not inspect",
            [],
            [((), coverage.uninspectable)],
        ),
        *(
            _gauge(
                f"sweeper_discovery_{name}",
                f"{text}, latest discovery run",
                ["system"],
                sorted(((s,), n) for s, n in counts.items()),
            )
            for name, text, counts in per_system
        ),
    ]


def _job_families(
    runs: Mapping[str, dict[str, Any]], next_runs: Mapping[str, datetime | None]
) -> list[GaugeMetricFamily]:
    errors: list[tuple[tuple[str, ...], float]] = []
    for job, run in sorted(runs.items()):
        for system, count in sorted(run["details"].get("errors", {}).items()):
            errors.append(((job, system), count))
    finished = {j: r for j, r in runs.items() if r["finished_at"] is not None}
    return [
        _gauge(
            "sweeper_job_last_run_timestamp_seconds",
            "When the last run of each job started",
            ["job"],
            [((j,), r["started_at"].timestamp()) for j, r in sorted(runs.items())],
        ),
        _gauge(
            "sweeper_job_last_run_duration_seconds",
            "How long the last run of each job took",
            ["job"],
            [
                ((j,), (r["finished_at"] - r["started_at"]).total_seconds())
                for j, r in sorted(finished.items())
            ],
        ),
        _gauge(
            "sweeper_job_last_run_success",
            "1 if the last run of each job succeeded",
            ["job"],
            [((j,), 1 if r["result"] == "ok" else 0) for j, r in sorted(runs.items())],
        ),
        _gauge(
            "sweeper_job_last_run_result",
            "The result of the last run of each job (ok, failed, stopped, interrupted)",
            ["job", "result"],
            [((j, r["result"]), 1) for j, r in sorted(runs.items())],
        ),
        _gauge(
            "sweeper_job_next_run_timestamp_seconds",
            "When each job runs next (while the daemon runs)",
            ["job"],
            [((j,), at.timestamp()) for j, at in sorted(next_runs.items()) if at is not None],
        ),
        _gauge(
            "sweeper_system_errors",
            "Failures per system in the last run of each job",
            ["job", "system"],
            errors,
        ),
    ]


def _gauge(
    name: str,
    documentation: str,
    labels: list[str],
    samples: Iterable[tuple[tuple[str, ...], float]],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


class _Snapshot(Collector):
    def __init__(self) -> None:
        self.families: list[GaugeMetricFamily] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(list(self.families))


class MetricsPublisher:
    """Writes the metrics to their textfile, and serves them when ``metrics.listen`` is set
    (the last snapshot: a scrape never touches the state store)."""

    def __init__(self, settings: Settings, *, serve: bool = True) -> None:
        self.settings = settings
        self.snapshot = _Snapshot()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.snapshot)
        self.server: Any = None
        if serve and settings.metrics.listen:
            host, _, port = settings.metrics.listen.rpartition(":")
            self.server, _thread = start_http_server(
                int(port), host.strip("[]"), registry=self.registry
            )

    def publish(self, next_runs: Mapping[str, datetime | None] | None = None) -> None:
        """Read the metrics from the state store and write them out."""
        store = Store.open(self.settings.state_database_url)
        try:
            self.snapshot.families = families(store, next_runs)
        finally:
            store.close()
        path = self.settings.metrics_path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
