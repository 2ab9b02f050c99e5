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

from sweeper.store import Store, discovery_coverage, discovery_runs

__all__ = ["Coverage", "coverage_history", "latest_coverage"]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


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

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready data, with the three shares."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["activities_share"] = self.activities_share
        data["stores_share"] = self.stores_share
        data["personal_share"] = self.personal_share
        return data

    def row(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "legacy_systems"}
        data["details"] = json.dumps({"legacy_systems": self.legacy_systems}, default=str)
        return data


def _from_row(row: Any) -> Coverage:
    values = dict(row)
    details = json.loads(values.pop("details") or "{}")
    return Coverage(**values, legacy_systems=details.get("legacy_systems", []))


def save_coverage(conn: sa.Connection, coverage: Coverage) -> None:
    conn.execute(discovery_coverage.insert(), [coverage.row()])


def latest_coverage(store: Store) -> Coverage | None:
    """Return the coverage of the latest discovery run, or None if discovery never ran."""
    history = coverage_history(store, 1)
    return history[0] if history else None


def coverage_history(store: Store, limit: int | None = None) -> list[Coverage]:
    """Return the coverage of the latest ``limit`` discovery runs (all by default), oldest
    first: the trend."""
    stmt = (
        sa.select(discovery_coverage)
        .join(discovery_runs, discovery_runs.c.id == discovery_coverage.c.run_id)
        .order_by(discovery_runs.c.started_at.desc(), discovery_coverage.c.run_id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [_from_row(r) for r in reversed(rows)]
