"""Coverage: how much of what holds personal data the RoPA knows about, per discovery run.

``sweeper discover`` stores one ``Coverage`` per run in the state store; ``latest_coverage``
and ``coverage_history`` read them back, for ``sweeper status``, the metrics and the reports.
Importing this module needs only the state store.

The figures of a run:

* ``activities_enforceable`` of ``activities``: processing activities with a retention rule and
  at least one location on a system the RoPA names;
* ``stores_registered`` of ``stores``: discovered stores holding data (or whose content could
  not be counted) that a location of an activity covers entirely; ``stores_partial`` are
  covered in part (a filter, a pattern) and count as not registered;
* ``personal_stores_registered`` of ``personal_stores``: the same for the stores in which the
  detectors found personal data;
* ``personal_records_registered`` of ``personal_records``: the personal records discovery
  estimates in the stores with personal data (in a partly registered store, those outside what
  its locations cover), and how many of them are in registered stores: the share weighs each
  store by how much personal data it holds;
* ``legacy_systems_with_data``: legacy or decommissioned systems that still answer and still
  hold data;
* ``uninspectable``: findings of places that could not be inspected (no rights, unreadable).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sweeper.store import Store, discovery_coverage, discovery_runs, discovery_stores

__all__ = [
    "Coverage",
    "change",
    "coverage_history",
    "latest_coverage",
    "open_findings",
    "percent",
]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percent(share: float | None) -> str:
    """Given a share (0 to 1, or None), return it as a whole percentage, or '-'."""
    return "-" if share is None else f"{share * 100:.0f}%"


@dataclass(frozen=True)
class Coverage:
    """The coverage figures of one discovery run (see the module docstring)."""

    run_id: str
    at: datetime
    complete: bool
    activities: int
    activities_enforceable: int
    stores: int
    stores_registered: int
    stores_partial: int
    personal_stores: int
    personal_stores_registered: int
    legacy_systems_with_data: int
    uninspectable: int
    legacy_systems: list[dict[str, Any]] = field(default_factory=list)
    personal_records: int = 0
    personal_records_registered: int = 0

    @property
    def activities_share(self) -> float | None:
        """Share of activities that are enforceable, 0 to 1; None without activities."""
        return _share(self.activities_enforceable, self.activities)

    @property
    def stores_share(self) -> float | None:
        """Share of discovered stores that are registered; None if none was discovered."""
        return _share(self.stores_registered, self.stores)

    @property
    def personal_share(self) -> float | None:
        """Share of stores holding personal data that are registered."""
        return _share(self.personal_stores_registered, self.personal_stores)

    @property
    def records_share(self) -> float | None:
        """Share of the estimated personal records that are in registered stores."""
        return _share(self.personal_records_registered, self.personal_records)

    def shares(self) -> dict[str, float | None]:
        """The four shares by their names in ``as_dict``."""
        return {
            "activities_share": self.activities_share,
            "stores_share": self.stores_share,
            "personal_share": self.personal_share,
            "records_share": self.records_share,
        }

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready data, with the three shares."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["activities_share"] = self.activities_share
        data["stores_share"] = self.stores_share
        data["personal_share"] = self.personal_share
        data["records_share"] = self.records_share
        return data

    def row(self) -> dict[str, Any]:
        # The figures without a column of their own go in details (no schema change).
        extra = ("legacy_systems", *_IN_DETAILS)
        data = {k: v for k, v in asdict(self).items() if k not in extra}
        details = {k: getattr(self, k) for k in extra}
        data["details"] = json.dumps(details, default=str)
        return data


_IN_DETAILS = ("personal_records", "personal_records_registered")


def _from_row(row: Any) -> Coverage:
    values = dict(row)
    details = json.loads(values.pop("details") or "{}")
    values.update({k: int(details.get(k) or 0) for k in _IN_DETAILS})
    return Coverage(**values, legacy_systems=details.get("legacy_systems", []))


def change(history: list[Coverage]) -> dict[str, float | None]:
    """Given the trend (oldest first), return how each share moved from the run before the
    latest to the latest, in percentage points (None where either has no share)."""
    if len(history) < 2:
        return {}
    before, latest = history[-2].shares(), history[-1].shares()
    moved: dict[str, float | None] = {}
    for name, now in latest.items():
        then = before[name]
        moved[name] = None if now is None or then is None else round((now - then) * 100, 1)
    return moved


def save_coverage(conn: sa.Connection, coverage: Coverage) -> None:
    conn.execute(discovery_coverage.insert(), [coverage.row()])


def latest_coverage(store: Store) -> Coverage | None:
    """Return the coverage of the latest discovery run, or None if discovery never ran."""
    history = coverage_history(store, 1)
    return history[0] if history else None


def coverage_history(
    store: Store, limit: int | None = None, until: datetime | None = None
) -> list[Coverage]:
    """Return the coverage of the latest ``limit`` discovery runs (all by default; with
    ``until``, those started at or before it), oldest first: the trend."""
    stmt = (
        sa.select(discovery_coverage)
        .join(discovery_runs, discovery_runs.c.id == discovery_coverage.c.run_id)
        .order_by(discovery_runs.c.started_at.desc(), discovery_coverage.c.run_id.desc())
    )
    if until is not None:
        stmt = stmt.where(discovery_runs.c.started_at <= until)
    if limit is not None:
        stmt = stmt.limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [_from_row(r) for r in reversed(rows)]


def open_findings(store: Store, run_id: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Return the records of a discovery run's ``limit`` highest-scoring findings that are not
    acknowledged and score above 0 (docs/discovery-report.md), and how many such findings
    the run has in all."""
    wanted = (
        (discovery_stores.c.run_id == run_id)
        & discovery_stores.c.finding.is_not(None)
        & (discovery_stores.c.status != "acknowledged")
        & (discovery_stores.c.score > 0)
    )
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).where(wanted)).scalar_one()
        rows = conn.execute(
            sa.select(discovery_stores.c.record)
            .where(wanted)
            .order_by(discovery_stores.c.seq)
            .limit(limit)
        ).all()
    return [json.loads(r[0]) for r in rows], int(total)
