"""Discovery of shadow data: which stores hold personal data that the RoPA does not know about.

Flow of ``run_discovery``:

1. Every system of the RoPA is a target (the RoPA's ``discovery.targets`` set depth, base,
   what to leave out and whether to sample, per system; ``enabled: false`` leaves a system
   out). Each is opened read-only and checked; one that fails is reported, the others go on.
2. Where two systems reach the same place (a share root and a share on a folder of it, a
   database server and one of its databases), each place is discovered once, by the most
   specific system: the wider one skips what the narrower one discovers.
3. Each connector lists its stores (``Connector.discover``): tables, folders, buckets and
   prefixes, OUs, with counts, bytes and age; parts it cannot inspect are findings.
4. Each store is compared with every location of every activity on a system of the same kind
   (``Connector.coverage``): covered entirely (``registered``), in part (``partial``), or not
   at all (``unregistered``). A table read by an event is noted, but an event registers nothing.
5. Stores are sampled within the settings' bounds (``Connector.sample``) and the detectors
   (``sweeper.detect``) count personal data in names and values. Values never leave the
   process: only counts, matched field names and masked examples are kept.
6. Each store gets a score (``score``), findings are ranked by it, and earlier decisions
   (acknowledged, under review) are applied.
7. The run, its stores and its coverage are stored in the state store, audited, and written
   as a JSON report (``docs/discovery-report.md``).

Discovery never changes anything: it opens every system read-only and deletes nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog

from connectors.base import (
    FULL,
    NONE,
    PARTIAL,
    Connector,
    ConnectorContext,
    DiscoveredStore,
    DiscoverRequest,
    Sample,
    SampleRequest,
    ScanFinding,
)
from connectors.registry import connector_class
from sweeper.audit import AuditLog
from sweeper.coverage import Coverage, coverage_history, latest_coverage, save_coverage
from sweeper.detect import Detectors, Pattern, Tally, sensitivity
from sweeper.errors import ActionUnsupported, SweeperError
from sweeper.plan import NoProgress, Progress
from sweeper.ropa.load import LoadedRopa
from sweeper.ropa.model import (
    BucketLocation,
    DiscoveryTarget,
    Ropa,
    SqlLocation,
    SystemStatus,
)
from sweeper.settings import Settings
from sweeper.store import (
    Store,
    discovery_decisions,
    discovery_runs,
    discovery_stores,
)

__all__ = [
    "REPORT_FORMAT",
    "DiscoveryOptions",
    "DiscoveryResult",
    "StoreResult",
    "coverage_history",
    "finding_id",
    "latest_coverage",
    "run_discovery",
    "score",
]

log = structlog.get_logger("sweeper.discover")

REPORT_FORMAT = "ropa-sweeper/discovery-report/1"
REGISTERED, PARTLY, UNREGISTERED = "registered", "partial", "unregistered"
UNINSPECTABLE = "uninspectable"
FILE_STORES = frozenset({"folder", "bucket", "prefix"})
"""Kinds of store that hold files or objects: sampled file by file, and a file that cannot be
read leaves the rest of the store inspected."""
FINDING_KINDS = {PARTLY: "partially_registered", UNREGISTERED: "unregistered"}
UNKNOWN_SENSITIVITY = 1.0
"""The sensitivity of a store whose content could not be inspected: above what was inspected
and found clean, below anything that was found."""


def finding_id(system: str, kind: str, where: str) -> str:
    """Given a store's system, kind and name, return its finding's id: the same on every run,
    so that an acknowledgement or a review stays with the store."""
    digest = hashlib.blake2b(f"{system}\0{kind}\0{where}".encode(), digest_size=5)
    return "d" + digest.hexdigest()


def score(
    hits: Iterable[str],
    detectors: Detectors,
    estimated: int,
    oldest: datetime | None,
    now: datetime,
    inspected: bool = True,
) -> float:
    """Given what the detectors found in a store, its estimated number of personal records,
    the oldest item's time and whether it could be inspected, return its score.

    score = sensitivity x (1 + log10(1 + estimated records)) x age factor, where sensitivity is
    the highest detector's weight plus a quarter of the others' (``sweeper.detect``; 1 for a
    store that could not be inspected and showed nothing), and the age factor grows from 1
    for new data to 3 for data ten or more years old.
    """
    weight = sensitivity({h: 1 for h in hits}, detectors.detectors)
    if weight == 0 and not inspected:
        weight = UNKNOWN_SENSITIVITY
    if weight == 0:
        return 0.0
    years = 0.0 if oldest is None else max(0.0, (now - oldest).days / 365.25)
    age = 1 + min(years, 10.0) / 5
    return round(weight * (1 + math.log10(1 + max(0, estimated))) * age, 2)


@dataclass
class StoreResult:
    """One discovered store (or uninspectable place) and what discovery concluded about it."""

    id: str
    system: str
    kind: str
    where: str
    items: int | None
    size: int | None
    oldest: datetime | None
    newest: datetime | None
    stale: int | None
    details: dict[str, Any]
    place: tuple[str, ...]
    registration: str = UNREGISTERED
    covered_by: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    inspected: bool = True
    problems: list[str] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    uncovered: Tally = field(default_factory=Tally)  # evidence outside what locations cover
    sampled: int = 0  # files or tables sampled
    # per sampled file with personal data outside what locations cover: (records, read):
    # read is true for a file whose content was read, false for one judged by its name
    personal_files: list[tuple[int, bool]] = field(default_factory=list)
    read_files: int = 0  # sampled files whose content was read
    covered_files: int = 0  # sampled files of a partly covered folder a location covers
    estimated: int = 0
    score: float = 0.0
    status: str = "new"
    note: str | None = None

    @property
    def empty(self) -> bool:
        """Inspected and counted exactly, and nothing in it (a catalog's estimate of 0 may
        be stale, so it is not taken for empty)."""
        return self.inspected and self.items == 0 and self.details.get("count") != "estimate"

    @property
    def finding(self) -> str | None:
        """The kind of finding this store is, or None for a registered, inspected store and
        for an empty one: it holds no personal data, and coverage does not count it either.
        It becomes a finding on the first run that finds something in it."""
        if not self.inspected:
            return UNINSPECTABLE
        if self.registration == REGISTERED or self.empty:
            return None
        return FINDING_KINDS[self.registration]

    @property
    def personal_data(self) -> bool:
        return self.tally.personal_data

    def record(self, detectors: Detectors) -> dict[str, Any]:
        """Return the store as the JSON report and the state store show it: no value."""
        evidence = self.uncovered if self.registration == PARTLY else self.tally
        return {
            "id": self.id,
            "finding": self.finding,
            "status": self.status,
            "note": self.note,
            "score": self.score,
            "system": self.system,
            "kind": self.kind,
            "where": self.where,
            "registration": self.registration,
            "covered_by": self.covered_by,
            "events": self.events,
            "items": self.items,
            "count": self.details.get("count"),
            "size": self.size,
            "oldest": _iso(self.oldest),
            "newest": _iso(self.newest),
            "stale": self.stale,
            "inspected": self.inspected,
            "problems": self.problems,
            "personal_data": self.personal_data,
            "estimated_personal_records": self.estimated,
            "sensitivity": sensitivity(evidence.hits, detectors.detectors),
            "special_categories": any(
                detectors.detectors[d].special for d in self.tally.hits if d in detectors.detectors
            ),
            "detections": self.tally.as_dict(),
            "uncovered_detections": self.uncovered.as_dict()
            if self.registration == PARTLY
            else None,
            "sampled": self.sampled,
            "details": {k: v for k, v in self.details.items() if k != "count"},
        }


@dataclass(frozen=True)
class DiscoveryOptions:
    """How to run discovery.

    Args:
        now: the moment ages are measured from (aware).
        created_by: who ran it (default: the login name).
        progress: a progress display.
        connectors: returns the connector class for a system kind (tests pass their own).
        reports_dir: where to write the JSON report (default: none).
    """

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    created_by: str = field(default_factory=getpass.getuser)
    progress: Progress = field(default_factory=NoProgress)
    connectors: Callable[[str], type[Connector]] = connector_class
    reports_dir: Path | None = None


@dataclass
class SystemResult:
    """How discovering one system went."""

    system: str
    kind: str
    status: str
    outcome: str = "discovered"  # discovered, failed, skipped, same_place, not_discoverable
    reason: str | None = None
    stores: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "kind": self.kind,
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "stores": self.stores,
        }


@dataclass
class DiscoveryResult:
    run_id: str
    complete: bool
    stores: list[StoreResult]
    systems: list[SystemResult]
    coverage: Coverage
    report: Path | None = None

    @property
    def findings(self) -> list[StoreResult]:
        """The findings to show, ranked: not acknowledged, highest score first."""
        return [s for s in self.stores if s.finding is not None and s.status != "acknowledged"]


def new_run_id(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def run_discovery(
    loaded: LoadedRopa,
    settings: Settings,
    store: Store,
    options: DiscoveryOptions | None = None,
) -> DiscoveryResult:
    """Given a loaded RoPA, discover every system's stores, detect personal data in bounded
    samples, rank what the RoPA does not cover, store and audit the run; return it."""
    options = options or DiscoveryOptions()
    if options.now.tzinfo is None:
        raise ValueError("DiscoveryOptions.now must be timezone-aware")
    return _Run(loaded, settings, store, options).run()


class _Run:
    def __init__(
        self, loaded: LoadedRopa, settings: Settings, store: Store, options: DiscoveryOptions
    ) -> None:
        self.loaded = loaded
        self.ropa: Ropa = loaded.ropa
        self.settings = settings
        self.bounds = settings.discovery
        self.store = store
        self.options = options
        self.now = options.now
        self.run_id = new_run_id(self.now)
        self.log = log.bind(run_id=self.run_id, dry_run=True)
        patterns = [
            Pattern(p.id, p.regex, tuple(p.names), p.sensitivity, p.label or "")
            for p in self.ropa.discovery.patterns
        ]
        self.detectors = Detectors(
            patterns, max_examples=self.bounds.max_examples, today=self.now.date()
        )
        self.context = ConnectorContext(
            base_dir=loaded.base_dir, credential=settings.credential, read_only=True
        )
        self.connectors: dict[str, Connector] = {}
        self.requests: dict[str, DiscoverRequest] = {}
        self.systems: dict[str, SystemResult] = {}
        self.results: list[StoreResult] = []
        self.unsupported: set[str] = set()

    # -- the run -------------------------------------------------------------------------

    def run(self) -> DiscoveryResult:
        started = datetime.now(UTC)
        try:
            self._connect()
            self._overlaps()
            for system_id, connector in self.connectors.items():
                if self.systems[system_id].outcome == "discovered":
                    self._discover(system_id, connector)
            for result in self.results:
                self._cover(result)
            progress = self.options.progress
            progress.start("sampling the stores", total=len(self.results))
            for result in self.results:
                self._sample(result)
                self._score(result)
                progress.advance(1)
            progress.finish("sampling the stores", "done")
        finally:
            for connector in self.connectors.values():
                connector.close()
        self._decisions()
        self.results.sort(key=lambda r: (-r.score, -(r.items or 0), r.system, r.where))
        # A decommissioned system that no longer answers is what should be: not a failure.
        complete = not any(
            s.outcome == "failed" and s.status != SystemStatus.DECOMMISSIONED.value
            for s in self.systems.values()
        )
        coverage = self._coverage(complete)
        report = self._store(started, complete, coverage)
        return DiscoveryResult(
            self.run_id, complete, self.results, list(self.systems.values()), coverage, report
        )

    def _target(self, system_id: str) -> DiscoveryTarget:
        return self.ropa.discovery.target(system_id) or DiscoveryTarget(system=system_id)

    def _connect(self) -> None:
        for system in self.ropa.systems:
            target = self._target(system.id)
            result = SystemResult(system.id, system.kind, system.status.value)
            self.systems[system.id] = result
            try:
                connector = self.options.connectors(system.kind)(system, self.context)
                if not target.enabled:
                    # Not discovered, but its locations may still cover what others find.
                    result.outcome, result.reason = "skipped", "discovery.targets: enabled: false"
                    self.connectors[system.id] = connector
                    continue
                connector.check()
            except SweeperError as err:
                result.outcome, result.reason = "failed", str(err)
                self.log.warning("system unreachable", system=system.id, reason=str(err))
                continue
            self.connectors[system.id] = connector
            stale = self.bounds.stale_after.add_to(self.now) - self.now
            self.requests[system.id] = DiscoverRequest(
                now=self.now,
                depth=target.depth if target.depth is not None else self.bounds.depth,
                stale_after=stale,
                base=target.base,
                exclude=tuple(target.exclude),
                options={
                    "databases": list(target.databases),
                    "schemas": list(target.schemas),
                    "exact_count_below": self.bounds.exact_count_below,
                    "sample_files": self._bound(target.sample_files, self.bounds.sample_files)
                    if target.sample
                    else 0,
                    "sample_names": self.bounds.sample_names if target.sample else 0,
                    "buckets": sorted(
                        {
                            loc.bucket
                            for a in self.ropa.activities
                            for loc in a.locations
                            if isinstance(loc, BucketLocation) and loc.system == system.id
                        }
                    ),
                },
            )

    def _overlaps(self) -> None:
        """Where systems reach the same place, discover it once: a system skips the places of
        narrower systems of its kind; of systems reaching the very same place, the first that
        a discovery target names (a site's discovery-only system for a whole S3 account, say,
        whose credentials may list more than an activity's), else the first used by an
        activity, else the first, discovers it. Every system skips the systems' quarantines
        (the sweeper's own, purged when quarantine_for ends)."""
        used = {loc.system for a in self.ropa.activities for loc in a.locations}
        named = {t.system for t in self.ropa.discovery.targets}
        scopes: dict[str, tuple[str, ...]] = {}
        for system_id, connector in list(self.connectors.items()):
            if system_id not in self.requests:
                continue  # skipped: not discovered
            try:
                scopes[system_id] = connector.scope(self.requests[system_id])
            except SweeperError as err:
                self.systems[system_id].outcome = "failed"
                self.systems[system_id].reason = str(err)
        ordered = sorted(scopes, key=lambda s: (s not in named, s not in used, self._order(s)))
        owners: dict[tuple[str, ...], str] = {}
        for system_id in ordered:
            place = scopes[system_id]
            if place in owners:
                same = self.systems[system_id]
                same.outcome = "same_place"
                same.reason = (
                    f"reaches the same place as system {owners[place]!r}, which discovers it"
                )
                continue
            owners[place] = system_id
        quarantines = {q for c in self.connectors.values() for q in c.quarantine_places()}
        for wide_id, wide in scopes.items():
            skip = [
                place
                for place, owner in owners.items()
                if owner != wide_id and len(place) > len(wide) and place[: len(wide)] == wide
            ]
            skip += sorted(q for q in quarantines if len(q) > len(wide) and q[: len(wide)] == wide)
            if skip:
                self.requests[wide_id] = replace(self.requests[wide_id], skip=tuple(skip))

    def _order(self, system_id: str) -> int:
        return next(i for i, s in enumerate(self.ropa.systems) if s.id == system_id)

    def _discover(self, system_id: str, connector: Connector) -> None:
        system = self.systems[system_id]
        progress = self.options.progress
        progress.start(f"discovering {system_id}")
        found: dict[str, StoreResult] = {}
        loose: list[ScanFinding] = []
        request = replace(self.requests[system_id], listed=progress.advance)
        try:
            for out in connector.discover(request):
                if isinstance(out, DiscoveredStore):
                    found[out.where] = self._result(system_id, connector, out)
                elif out.kind == UNINSPECTABLE:
                    loose.append(out)
        except ActionUnsupported as err:
            system.outcome, system.reason = "not_discoverable", str(err)
        except SweeperError as err:
            system.outcome, system.reason = "failed", str(err)
            self.log.warning("discovery failed", system=system_id, reason=str(err))
        for finding in loose:
            result = found.get(finding.where)
            if result is None:
                kind = {"fileshare": "folder"}.get(system.kind, "place")
                probe = DiscoveredStore(kind, finding.where, details={"extent": "subtree"})
                result = found[finding.where] = self._result(system_id, connector, probe)
            result.inspected = False
            result.problems.append(finding.message)
        system.stores = len(found)
        self.results.extend(found.values())
        progress.finish(f"discovering {system_id}", system.outcome)

    def _result(self, system_id: str, connector: Connector, store: DiscoveredStore) -> StoreResult:
        details = dict(store.details or {})
        return StoreResult(
            id=finding_id(system_id, store.kind, store.where),
            system=system_id,
            kind=store.kind,
            where=store.where,
            items=store.items,
            size=store.size,
            oldest=store.oldest,
            newest=store.newest,
            stale=store.stale,
            details=details,
            place=connector.locate(store),
            inspected=details.get("readable") is not False,
            tally=self.detectors.tally(),
            uncovered=self.detectors.tally(),
        )

    # -- coverage ------------------------------------------------------------------------

    def _locations(self) -> Iterator[tuple[str, Any, Connector]]:
        for activity in self.ropa.activities:
            for location in activity.locations:
                connector = self.connectors.get(location.system)
                if connector is not None:
                    yield activity.id, location, connector

    def _covers(
        self, location: Any, connector: Connector, store: DiscoveredStore, place: tuple[str, ...]
    ) -> str:
        try:
            return connector.coverage(location, place, store)
        except ActionUnsupported:
            self.unsupported.add(connector.system.id)
            return NONE
        except SweeperError as err:
            self.log.warning("coverage unknown", system=connector.system.id, reason=str(err))
            return NONE

    def _cover(self, result: StoreResult) -> None:
        store = DiscoveredStore(result.kind, result.where, details=result.details)
        kind = self.systems[result.system].kind
        best = NONE
        for activity, location, connector in self._locations():
            if connector.kind != kind:
                continue
            found = self._covers(location, connector, store, result.place)
            if found != NONE:
                result.covered_by.append(f"{activity}:{location.label}")
                if found == FULL or best == NONE:
                    best = found
        result.registration = {FULL: REGISTERED, PARTIAL: PARTLY}.get(best, UNREGISTERED)
        if kind == "sql":
            for event in self.ropa.events:
                reader = self.connectors.get(event.system)
                if reader is None:
                    continue
                pseudo = SqlLocation(system=event.system, table=event.table, key=[event.subject])
                if self._covers(pseudo, reader, store, result.place) != NONE:
                    result.events.append(event.id)

    def _file_covered(self, result: StoreResult, key: str) -> bool:
        """Whether a sampled file of a partly covered folder is covered by a location."""
        connector = self.connectors[result.system]
        file = DiscoveredStore("file", key)
        place = connector.locate(file)
        return any(
            self._covers(location, c, file, place) == FULL
            for _, location, c in self._locations()
            if c.kind == connector.kind
        )

    # -- sampling and detection ----------------------------------------------------------

    def _bound(self, asked: int | None, most: int) -> int:
        return most if asked is None else min(asked, most)

    def _sample(self, result: StoreResult) -> None:
        target = self._target(result.system)
        columns = result.details.get("columns")
        can_sample = (
            target.sample
            and result.inspected
            and result.items != 0
            and result.system in self.connectors
            and result.kind != "place"
        )
        sampled_names = False
        if can_sample:
            request = SampleRequest(
                store=DiscoveredStore(
                    result.kind,
                    result.where,
                    result.items,
                    result.size,
                    result.oldest,
                    result.newest,
                    result.stale,
                    result.details,
                ),
                rows=self._bound(target.sample_rows, self.bounds.sample_rows),
                bytes=self._bound(target.sample_bytes, self.bounds.sample_bytes),
                files=self._bound(target.sample_files, self.bounds.sample_files),
                names=self.bounds.sample_names,
                keep_access_times=self.bounds.keep_access_times,
            )
            try:
                for out in self.connectors[result.system].sample(request):
                    if isinstance(out, ScanFinding):
                        result.problems.append(out.message)
                        if result.kind not in FILE_STORES:
                            result.inspected = False
                        continue
                    sampled_names = sampled_names or out.fields is not None
                    self._detect(result, out)
            except ActionUnsupported:
                pass
            except SweeperError as err:
                result.problems.append(f"sampling failed: {err}")
        if result.registration == PARTLY and result.kind in FILE_STORES and result.items:
            # Every file was sampled: the files themselves say what the patterns cover.
            if result.sampled >= result.items and result.covered_files >= result.items:
                result.registration = REGISTERED
            elif result.sampled >= result.items and result.covered_files == 0:
                result.registration = UNREGISTERED
        if columns and not sampled_names:  # names still tell, where no row was read
            tally = self.detectors.tally()
            self.detectors.table([str(c) for c in columns], [], tally)
            self._count(result, tally, covered=False)

    def _detect(self, result: StoreResult, sample: Sample) -> None:
        tally = self.detectors.tally()
        if sample.name is not None:
            self.detectors.file_name(sample.name, tally)
        if sample.fields is not None:
            self.detectors.table(list(sample.fields), sample.rows, tally)
        elif sample.rows:
            rows = list(sample.rows)
            header = rows[0] if rows and _looks_like_header(rows[0]) else None
            body = rows[1:] if header is not None else rows
            fields = [str(c) if c is not None else "" for c in header] if header else None
            self.detectors.table(fields, body, tally)
        if sample.text is not None:
            self.detectors.text(sample.text, tally)
        if sample.skipped is None and sample.sheet in (None, 1):
            tally.files += 1 if sample.name is not None else 0
        elif sample.skipped is not None:
            tally.names_only += 1
        read = sample.text is not None or bool(sample.rows)
        if sample.sheet in (None, 1):
            result.sampled += 1
            result.read_files += 1 if read and sample.name is not None else 0
        covered = (
            result.registration == PARTLY
            and sample.name is not None
            and self._file_covered(result, sample.where)
        )
        if covered and sample.sheet in (None, 1):
            result.covered_files += 1
        self._count(result, tally, covered, sample, read)

    def _count(
        self,
        result: StoreResult,
        tally: Tally,
        covered: bool,
        sample: Sample | None = None,
        read: bool = False,
    ) -> None:
        result.tally.merge(tally)
        if not covered:
            result.uncovered.merge(tally)
        if sample is None or sample.name is None or not tally.personal_data or covered:
            return
        # A file with personal data holds about as many records as it has rows with it (the
        # sample's share of the file extrapolated), or one (a CV, a scanned passport) if only
        # its name says so.
        records = max(1, tally.with_values, tally.named_records)
        if sample.fraction:
            records = max(1, round(records / sample.fraction))
        result.personal_files.append((records, read))

    def _score(self, result: StoreResult) -> None:
        evidence = result.tally if result.registration != PARTLY else result.uncovered
        if result.kind in FILE_STORES or result.personal_files:
            result.estimated = _file_estimate(result)
        elif evidence.records:
            share = max(evidence.with_values, evidence.named_records) / evidence.records
            rows = result.items if result.items is not None else evidence.records
            result.estimated = int(share * rows)
        elif evidence.hits:
            result.estimated = result.items or 0
        result.score = score(
            evidence.hits,
            self.detectors,
            result.estimated,
            result.oldest,
            self.now,
            result.inspected,
        )

    # -- decisions -----------------------------------------------------------------------

    def _decisions(self) -> None:
        with self.store.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(discovery_decisions)
                    .where(discovery_decisions.c.state == "open")
                    .order_by(discovery_decisions.c.id)
                )
                .mappings()
                .all()
            )
        decided: dict[str, dict[str, Any]] = {r["finding_id"]: dict(r) for r in rows}
        for result in self.results:
            decision = decided.get(result.id)
            if decision is None or result.finding is None:
                continue
            row = decision
            if row["decision"] == "review":
                result.status = "under_review"
                result.note = (
                    f"under review since {row['at']:%Y-%m-%d} ({row['by']}: {row['reason']})"
                )
                continue
            seen = set(json.loads(row["detectors"]))
            new = sorted(set(result.tally.hits) - seen)
            if new:
                result.note = (
                    f"acknowledged by {row['by']} on {row['at']:%Y-%m-%d}, but it now also "
                    f"holds: {', '.join(new)}"
                )
            else:
                result.status = "acknowledged"
                result.note = (
                    f"acknowledged by {row['by']} on {row['at']:%Y-%m-%d}: {row['reason']}"
                )

    # -- coverage and storing ------------------------------------------------------------

    def _coverage(self, complete: bool) -> Coverage:
        known = {s.id for s in self.ropa.systems}
        activities = self.ropa.activities
        enforceable = [
            a
            for a in activities
            if a.retention is not None and any(loc.system in known for loc in a.locations)
        ]
        counted = [r for r in self.results if r.items != 0]
        personal = [r for r in counted if r.personal_data]
        legacy = []
        for system in self.ropa.systems:
            if system.status is SystemStatus.ACTIVE:
                continue
            mine = [r for r in counted if r.system == system.id]
            outcome = self.systems[system.id]
            if outcome.outcome != "discovered" or not mine:
                continue
            legacy.append(
                {
                    "system": system.id,
                    "name": system.name,
                    "status": system.status.value,
                    "decommissioned_on": _iso(system.decommissioned_on),
                    "stores": len(mine),
                    "items": sum(r.items or 0 for r in mine),
                    "personal_stores": sum(1 for r in mine if r.personal_data),
                }
            )
        return Coverage(
            run_id=self.run_id,
            at=self.now,
            complete=complete,
            activities=len(activities),
            activities_enforceable=len(enforceable),
            stores=len(counted),
            stores_registered=sum(1 for r in counted if r.registration == REGISTERED),
            stores_partial=sum(1 for r in counted if r.registration == PARTLY),
            personal_stores=len(personal),
            personal_stores_registered=sum(1 for r in personal if r.registration == REGISTERED),
            legacy_systems_with_data=len(legacy),
            uninspectable=sum(1 for r in self.results if not r.inspected),
            legacy_systems=legacy,
            personal_records=sum(r.estimated for r in personal),
            personal_records_registered=sum(
                r.estimated for r in personal if r.registration == REGISTERED
            ),
        )

    def _summary(self) -> dict[str, Any]:
        return {
            "systems": [s.as_dict() for s in self.systems.values()],
            "findings": sum(1 for r in self.results if r.finding is not None),
            "acknowledged": sum(1 for r in self.results if r.status == "acknowledged"),
            "coverage_unknown_for": sorted(self.unsupported),
            "bounds": self.bounds.model_dump(mode="json"),
        }

    def _store(self, started: datetime, complete: bool, coverage: Coverage) -> Path | None:
        summary = self._summary()
        records = [r.record(self.detectors) for r in self.results]
        rows = [
            {
                "run_id": self.run_id,
                "seq": seq,
                "finding_id": r.id,
                "system": r.system,
                "kind": r.kind,
                "where": r.where,
                "items": r.items,
                "size": r.size,
                "oldest": _iso(r.oldest),
                "newest": _iso(r.newest),
                "registration": r.registration,
                "finding": r.finding,
                "status": r.status,
                "personal_data": r.personal_data,
                "score": r.score,
                "record": json.dumps(record, default=str, sort_keys=True),
            }
            for seq, (r, record) in enumerate(zip(self.results, records, strict=True))
        ]
        with self.store.engine.begin() as conn:
            conn.execute(
                discovery_runs.insert(),
                [
                    {
                        "id": self.run_id,
                        "started_at": started,
                        "finished_at": datetime.now(UTC),
                        "created_by": self.options.created_by,
                        "ropa_path": str(self.loaded.path.resolve()),
                        "ropa_digest": self.loaded.digest,
                        "complete": complete,
                        "summary": json.dumps(summary, default=str),
                    }
                ],
            )
            for start in range(0, len(rows), 1000):
                conn.execute(discovery_stores.insert(), rows[start : start + 1000])
            save_coverage(conn, coverage)
        AuditLog.open(self.settings, self.store).append(
            "discovery_run",
            self.options.created_by,
            run_id=self.run_id,
            ropa_digest=self.loaded.digest,
            complete=complete,
            stores=len(self.results),
            findings=summary["findings"],
            coverage={
                **coverage.shares(),
                "legacy_systems_with_data": coverage.legacy_systems_with_data,
            },
            failed_systems={
                s.system: s.reason for s in self.systems.values() if s.outcome == "failed"
            },
        )
        self.log.info("discovery stored", stores=len(self.results), complete=complete)
        if self.options.reports_dir is None:
            return None
        head = {
            "id": self.run_id,
            "started_at": started.isoformat(),
            "clock": self.now.isoformat(),
            "created_by": self.options.created_by,
            "ropa_path": str(self.loaded.path.resolve()),
            "ropa_digest": self.loaded.digest,
            "complete": complete,
        }
        trend = coverage_history(self.store, self.bounds.trend_runs)
        return write_report(self.options.reports_dir, head, summary, coverage, trend, records)


def _file_estimate(result: StoreResult) -> int:
    """Given a folder's sampled files with personal data, return the personal records its
    files are estimated to hold: the files read and those judged by name stand each for the
    folder's files of their kind (readable types: ``details.readable_files``, where the
    connector counts them)."""
    read = [r for r, was_read in result.personal_files if was_read]
    named = [r for r, was_read in result.personal_files if not was_read]
    items = result.items if result.items is not None else result.sampled
    readable = result.details.get("readable_files")
    if not isinstance(readable, int):
        return int(sum(read + named) / max(1, result.sampled) * items)
    others = max(0, items - readable)
    named_sampled = result.sampled - result.read_files
    estimate = sum(read) / max(1, result.read_files) * readable
    estimate += sum(named) / max(1, named_sampled) * others
    return int(estimate)


def _looks_like_header(row: Sequence[Any]) -> bool:
    """Given the first row of a CSV file or a sheet, return whether it names the columns:
    short texts without long numbers or '@', mostly letters."""
    cells = [c for c in row if c not in (None, "")]
    if not cells or not all(isinstance(c, str) for c in cells):
        return False
    for cell in cells:
        text = str(cell)
        if len(text) > 64 or "@" in text or sum(ch.isdigit() for ch in text) >= 4:
            return False
    return sum(1 for c in cells if any(ch.isalpha() for ch in str(c))) * 2 >= len(cells)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value.isoformat())


def write_report(
    directory: Path,
    run: dict[str, Any],
    summary: dict[str, Any],
    coverage: Coverage,
    trend: Sequence[Coverage],
    stores: Sequence[dict[str, Any]],
) -> Path:
    """Write ``discovery-RUN.json`` (docs/discovery-report.md) and return its path; written
    to a temporary name first, so a report is either whole or absent."""
    directory.mkdir(parents=True, exist_ok=True)
    findings = [s for s in stores if s["finding"] is not None and s["status"] != "acknowledged"]
    document = {
        "format": REPORT_FORMAT,
        "run": run,
        "coverage": coverage.as_dict(),
        "trend": [c.as_dict() for c in trend],
        "systems": summary["systems"],
        "findings": findings,
        "acknowledged": [s for s in stores if s["status"] == "acknowledged"],
        "stores": stores,
        "notes": {
            "coverage_unknown_for": summary["coverage_unknown_for"],
            "bounds": summary["bounds"],
        },
    }
    path = directory / f"discovery-{run['id']}.json"
    partial = path.with_suffix(".json.partial")
    with partial.open("w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, default=str, ensure_ascii=False)
        out.write("\n")
    os.replace(partial, path)
    return path


# -- acting on findings -------------------------------------------------------------------------


class FindingNotFound(SweeperError):
    """No discovery run holds a finding with the given id."""

    exit_code = 2


def stored_finding(store: Store, wanted: str, run_id: str | None = None) -> dict[str, Any]:
    """Given a finding id (or a unique prefix of one), return its record from the latest run
    that holds it (or from ``run_id``). Raise FindingNotFound."""
    like = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    stmt = (
        sa.select(discovery_stores.c.record, discovery_stores.c.run_id)
        .join(discovery_runs, discovery_runs.c.id == discovery_stores.c.run_id)
        .where(discovery_stores.c.finding_id.like(like, escape="\\"))
        .order_by(discovery_runs.c.started_at.desc())
    )
    if run_id is not None:
        stmt = stmt.where(discovery_stores.c.run_id == run_id)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        raise FindingNotFound(
            f"no finding {wanted!r} in the stored discovery runs (sweeper discover lists them)"
        )
    latest = rows[0][1]
    records = [json.loads(r[0]) for r in rows if r[1] == latest]
    ids = {r["id"] for r in records}
    if len(ids) > 1:
        raise FindingNotFound(f"{wanted!r} matches {len(ids)} findings: give more of the id")
    record: dict[str, Any] = records[0]
    record["run_id"] = latest
    return record


def decide(
    store: Store,
    settings: Settings,
    record: dict[str, Any],
    *,
    decision: str,
    by: str,
    reason: str,
    now: datetime,
) -> int:
    """Record a decision on a finding (``acknowledged``: it stops appearing while it holds
    nothing new; ``review``: a review item is opened) and audit it; return its id.
    Acknowledging closes the finding's open review."""
    if decision not in ("acknowledged", "review"):
        raise ValueError(f"unknown decision {decision!r}")
    if not by.strip() or not reason.strip():
        raise SweeperError("--by and --reason must not be empty: an auditor asks who and why")
    detectors = sorted(record.get("detections") or {})
    with store.engine.begin() as conn:
        open_ = (discovery_decisions.c.finding_id == record["id"]) & (
            discovery_decisions.c.state == "open"
        )
        closes = discovery_decisions.c.decision.in_(
            ["acknowledged", "review"] if decision == "acknowledged" else ["review"]
        )
        conn.execute(
            discovery_decisions.update()
            .where(open_, closes)
            .values(state="closed", closed_by=by, closed_at=now, close_reason=f"{decision}")
        )
        inserted = conn.execute(
            discovery_decisions.insert().values(
                finding_id=record["id"],
                system=record["system"],
                decision=decision,
                reason=reason,
                by=by,
                at=now,
                detectors=json.dumps(detectors),
                state="open",
            )
        )
        primary = inserted.inserted_primary_key
        assert primary is not None
        decision_id = int(primary[0])
    audit = AuditLog.open(settings, store)
    audit.append(
        "discovery_acknowledged" if decision == "acknowledged" else "discovery_review_opened",
        by,
        finding=record["id"],
        decision_id=decision_id,
        run_id=record.get("run_id"),
        system=record["system"],
        store_kind=record["kind"],
        where_ref=audit.subject_ref(record["where"]),
        registration=record["registration"],
        detectors=detectors,
        reason=reason,
    )
    return decision_id


def open_reviews(store: Store, *, include_closed: bool = False) -> list[dict[str, Any]]:
    """Return the review items (open ones unless ``include_closed``), newest first."""
    stmt = sa.select(discovery_decisions).where(discovery_decisions.c.decision == "review")
    if not include_closed:
        stmt = stmt.where(discovery_decisions.c.state == "open")
    with store.engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(stmt.order_by(discovery_decisions.c.id.desc())).mappings()
        ]


def stored_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """Return the latest discovery runs, newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(discovery_runs).order_by(discovery_runs.c.started_at.desc()).limit(limit)
        ).mappings()
        return [dict(r, summary=json.loads(r["summary"])) for r in rows]


def suggest(loaded: LoadedRopa, record: dict[str, Any]) -> str:
    """Given a finding's record, return a RoPA snippet that registers its store: a location
    to paste under an activity (and a system where the store is on a database the RoPA's
    system does not reach)."""
    system = loaded.ropa.system(record["system"])
    details = record.get("details") or {}
    detections = record.get("detections") or {}
    lines = [
        f"# finding {record['id']}: {record['kind']} {record['where']} on system "
        f"{record['system']} ({record['registration']})",
    ]
    if detections:
        found = ", ".join(
            f"{d} ({h['values']} values)"
            if h["values"]
            else f"{d} ({', '.join(h['names'])})"
            if h["names"]
            else d
            for d, h in detections.items()
        )
        lines.append(f"# detected: {found}")
    lines.append(
        "# Paste the location under `locations:` of the activity this data belongs to, or make "
        "it an activity of its own (name, purposes, legal_basis, retention, locations)."
    )
    system_id = record["system"]
    if record["kind"] == "ou" and system is not None and system.kind == "directory":
        lines += _suggest_ou(record, system_id, details, detections)
    elif record["kind"] == "table" and system is not None and system.kind == "sql":
        database = details.get("database")
        if database:
            from sqlalchemy.engine import make_url

            url = make_url(system.connection.url).set(database=database)
            system_id = f"{system.id}-{database}"[:64]
            lines += [
                "# The table is in another database on the server: add a system for it under "
                "`systems:`",
                f"- id: {system_id}",
                f"  name: {system.name} ({database})",
                "  kind: sql",
                f"  owner: {system.owner or 'WHO ANSWERS FOR IT'}",
                "  connection:",
                f"    url: {json.dumps(url.render_as_string(hide_password=True))}",
            ]
            if system.connection.credential:
                lines.append(f"    credential: {system.connection.credential}")
        table = details.get("table")
        schema = details.get("schema")
        name = f"{schema}.{table}" if schema else table
        subject = next((n for n in (detections.get("student_number") or {}).get("names", [])), None)
        age = (details.get("age_from") or [None])[0]
        lines += [
            f"- system: {system_id}",
            f"  table: {json.dumps(name)}",
            f"  key: {json.dumps(details.get('key') or ['CHECK: the primary key column'])}",
        ]
        if subject:
            lines.append(f"  subject: {json.dumps(subject)}   # the student or staff number")
        if age:
            lines.append(f"  clock: {{column: {json.dumps(age)}}}   # check: when it starts")
        else:
            lines.append("  # clock: {column: NAME}   # the date column the period starts from")
    elif record["kind"] == "folder":
        from connectors.fileshare import glob_literal

        where = record["where"]
        if where.startswith("!b64:"):
            lines.append(
                "# The folder's name is not valid UTF-8, so no pattern can name it: rename it"
            )
        pattern = "**" if where == "." else glob_literal(where) + "/**"
        if details.get("extent") == "files":
            pattern = "*" if where == "." else glob_literal(where) + "/*"
        lines += [
            f"- system: {system_id}",
            f"  include: [{json.dumps(pattern)}]",
            "  clock: modified   # check: or created, {path_date: GROUP}, {event: ID}",
        ]
    elif record["kind"] in ("bucket", "prefix") and system is not None and system.kind == "bucket":
        bucket, _, prefix = record["where"].partition("/")
        if details.get("extent") == "objects":
            lines.append(
                "# The prefix covers the keys below it too, which discovery counts in stores "
                "of their own: narrow it with key_regex if they belong elsewhere"
            )
        lines += [
            f"- system: {system_id}",
            f"  bucket: {json.dumps(bucket)}",
            f"  prefix: {json.dumps(prefix)}",
            "  clock: modified   # check: or created, {path_date: GROUP}, {tag: KEY}, {event: ID}",
        ]
    else:
        lines += [
            f"# a location for the {record['kind']} {record['where']!r} on system "
            f"{system_id}, in the terms of a {system.kind if system else 'its'} location",
            f"- system: {system_id}",
        ]
    return "\n".join(lines) + "\n"


def _suggest_ou(
    record: dict[str, Any], system_id: str, details: dict[str, Any], detections: dict[str, Any]
) -> list[str]:
    """Given an OU's finding, return the lines of a directory location for it."""
    subject = next(iter((detections.get("student_number") or {}).get("names", [])), None)
    lines = [f"- system: {system_id}", f"  base_dn: {json.dumps(record['where'])}"]
    if details.get("extent") == "one":
        lines.append("  scope: one   # its own accounts; the OUs below it are stores of their own")
    if subject:
        lines.append(f"  subject: {json.dumps(subject)}   # the student or staff number")
    lines.append("  clock: last_login   # check: or created, {attribute: NAME}, {event: ID}")
    return lines
