"""Approval: a privacy officer's yes (or no) to a stored plan, bound to its content hash.

A plan may be executed only when it is ``ready``, not rejected, younger than
``plan_max_age``, made from the RoPA as it is now (same digest), unaltered since it was stored
(its content hash recomputed from the store), and approved by ``approvers_required`` distinct
people for the items in question — or when its rule is ``auto_approve``. An approval can cover
part of a plan (``--only activity=…`` / ``--only system=…``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from sweeper.errors import SweeperError
from sweeper.settings import Settings
from sweeper.store import Store, approvals, plan_locations
from sweeper.writer import canonical

if TYPE_CHECKING:
    from sweeper.audit import AuditLog


class PlanRefused(SweeperError):
    """The plan may not be approved or executed; the message says why."""

    exit_code = 2


@dataclass(frozen=True)
class Scope:
    """What an approval covers: all of the plan, or some activities and/or systems."""

    activities: frozenset[str] | None = None
    systems: frozenset[str] | None = None

    @classmethod
    def parse(cls, only: Sequence[str]) -> Scope:
        """Given ``--only`` values such as ``activity=camera`` or ``system=share``, return
        the scope. Raise PlanRefused for anything else."""
        found: dict[str, set[str]] = {}
        for text in only:
            name, sep, value = text.partition("=")
            if not sep or name not in ("activity", "system") or not value:
                raise PlanRefused(
                    f"--only {text!r}: write activity=ID or system=ID (repeat for more)"
                )
            found.setdefault(name, set()).add(value)
        return cls(
            frozenset(found["activity"]) if "activity" in found else None,
            frozenset(found["system"]) if "system" in found else None,
        )

    def covers(self, activity: str, system: str) -> bool:
        return (self.activities is None or activity in self.activities) and (
            self.systems is None or system in self.systems
        )

    def to_json(self) -> str | None:
        if self.activities is None and self.systems is None:
            return None
        return json.dumps(
            {
                "activity": sorted(self.activities) if self.activities is not None else None,
                "system": sorted(self.systems) if self.systems is not None else None,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> Scope:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            frozenset(data["activity"]) if data.get("activity") is not None else None,
            frozenset(data["system"]) if data.get("system") is not None else None,
        )

    def __str__(self) -> str:
        parts = []
        if self.activities is not None:
            parts.append("activities " + ", ".join(sorted(self.activities)))
        if self.systems is not None:
            parts.append("systems " + ", ".join(sorted(self.systems)))
        return " and ".join(parts) or "the whole plan"


@dataclass(frozen=True)
class Decision:
    by: str
    at: datetime
    decision: str
    note: str | None
    scope: Scope
    content_hash: str


def decisions(store: Store, plan_id: str) -> list[Decision]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(approvals).where(approvals.c.plan_id == plan_id).order_by(approvals.c.id)
        ).mappings()
        return [
            Decision(
                r["by"],
                r["at"],
                r["decision"],
                r["note"],
                Scope.from_json(r["only"]),
                r["content_hash"],
            )
            for r in rows
        ]


def recompute_content_hash(store: Store, plan: dict[str, Any]) -> str:
    """Recompute a stored plan's content hash from its rows in the store."""
    from sweeper.plan import content_hash

    items = hashlib.sha256()
    for row in store.item_rows(plan["id"]):
        items.update(canonical(row))
    with store.engine.connect() as conn:
        locations = [
            dict(r)
            for r in conn.execute(
                sa.select(plan_locations)
                .where(plan_locations.c.plan_id == plan["id"])
                .order_by(plan_locations.c.idx)
            ).mappings()
        ]
    return content_hash(items.hexdigest(), locations, plan["ropa_digest"], plan["clock"])


def check_usable(
    store: Store,
    plan: dict[str, Any],
    settings: Settings,
    now: datetime,
    current_digest: str,
    *,
    verify_hash: bool = True,
) -> None:
    """Raise PlanRefused unless the plan is ready, not rejected, not expired, made from the
    current RoPA and unaltered."""
    plan_id = plan["id"]
    if plan["state"] != "ready":
        raise PlanRefused(
            f"plan {plan_id} was never completed (state {plan['state']}): run sweeper plan again"
        )
    rejected = [d for d in decisions(store, plan_id) if d.decision == "rejected"]
    if rejected:
        r = rejected[0]
        raise PlanRefused(f"plan {plan_id} was rejected by {r.by} on {r.at:%Y-%m-%d}: {r.note}")
    expires = settings.plan_max_age.add_to(plan["created_at"])
    if expires <= now:
        raise PlanRefused(
            f"plan {plan_id} expired on {expires:%Y-%m-%d %H:%M} UTC (plans are valid for "
            f"{settings.plan_max_age}): run sweeper plan again"
        )
    if plan["ropa_digest"] != current_digest:
        raise PlanRefused(
            f"plan {plan_id} was made from another version of the RoPA (digest "
            f"{plan['ropa_digest'][:12]}, the RoPA at {plan['ropa_path']} now has "
            f"{current_digest[:12]}): run sweeper plan again"
        )
    if verify_hash and recompute_content_hash(store, plan) != plan["content_hash"]:
        raise PlanRefused(
            f"plan {plan_id} has been altered in the state store since it was made: "
            "its content no longer matches its content hash"
        )


def approve(
    store: Store,
    plan: dict[str, Any],
    settings: Settings,
    *,
    by: str,
    note: str | None,
    only: Sequence[str],
    now: datetime,
    current_digest: str,
    audit: AuditLog,
) -> list[Decision]:
    """Record an approval and its audit record; return the plan's decisions. Raise
    PlanRefused if not allowed. If the audit log refuses the record, the approval is taken
    back and the audit error raised: no decision stands unaudited."""
    if not by.strip():
        raise PlanRefused("--by must name who approves")
    scope = Scope.parse(only)
    check_usable(store, plan, settings, now, current_digest)
    if settings.approvers_required >= 2 and by == plan["created_by"]:
        raise PlanRefused(
            f"{by} ran this plan and cannot also approve it: {settings.approvers_required} "
            "approvers are required, none of them the person who ran the plan"
        )
    if any(d.by == by and d.decision == "approved" for d in decisions(store, plan["id"])):
        raise PlanRefused(f"{by} has already approved plan {plan['id']}")
    row = {
        "plan_id": plan["id"],
        "content_hash": plan["content_hash"],
        "decision": "approved",
        "by": by,
        "at": now,
        "note": note,
        "only": scope.to_json(),
    }
    _decide(
        store,
        row,
        lambda: audit.append(
            "plan_approved",
            by,
            plan_id=plan["id"],
            scope=str(scope),
            content_hash=plan["content_hash"],
            note=note,
        ),
    )
    return decisions(store, plan["id"])


def reject(
    store: Store, plan: dict[str, Any], *, by: str, reason: str, now: datetime, audit: AuditLog
) -> None:
    """Record a rejection and its audit record: the plan can never be executed."""
    if not by.strip() or not reason.strip():
        raise PlanRefused("rejecting a plan needs --by and --reason")
    row = {
        "plan_id": plan["id"],
        "content_hash": plan["content_hash"],
        "decision": "rejected",
        "by": by,
        "at": now,
        "note": reason,
        "only": None,
    }
    _decide(
        store, row, lambda: audit.append("plan_rejected", by, plan_id=plan["id"], reason=reason)
    )


def _decide(store: Store, row: dict[str, Any], record: Callable[[], object]) -> None:
    """Store a decision, then audit it; take the decision back if the audit log refuses.

    The record is appended outside the state store's transaction (the audit log keeps its
    head in the same store), so the decision is written first and undone on failure.
    """
    with store.engine.begin() as conn:
        decision_id = conn.execute(approvals.insert().values(**row)).inserted_primary_key
    assert decision_id is not None
    try:
        record()
    except BaseException:
        with store.engine.begin() as conn:
            conn.execute(approvals.delete().where(approvals.c.id == decision_id[0]))
        raise


class Coverage:
    """Which (activity, system) pairs of a plan are approved, and by whom."""

    def __init__(self, plan: dict[str, Any], found: list[Decision], required: int) -> None:
        self.required = required
        self.approvals = [
            d for d in found if d.decision == "approved" and d.content_hash == plan["content_hash"]
        ]

    def approvers(self, activity: str, system: str) -> list[str]:
        return sorted({d.by for d in self.approvals if d.scope.covers(activity, system)})

    def approved(self, activity: str, system: str) -> bool:
        return len(self.approvers(activity, system)) >= self.required
