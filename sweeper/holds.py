"""Legal holds: a hold on a subject, an item, a location or a whole system wins over every rule.

Holds live in the state store. A plan marks held items ``held`` with the hold's id and reason;
execution checks holds again at the moment it acts, so a hold placed after approval still wins.
A hold ends when it is released, or at its ``until`` time if it has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from sweeper.errors import SweeperError
from sweeper.store import Store, holds

if TYPE_CHECKING:
    from sweeper.audit import AuditLog

Scope = Literal["subject", "item", "location", "system"]


class HoldInvalid(SweeperError):
    """A hold was refused: missing reason, unknown subject format, unknown hold."""

    exit_code = 2


@dataclass(frozen=True)
class Hold:
    id: int
    scope: Scope
    system: str | None
    location: str | None
    subject: str | None
    item_key: str | None
    reason: str
    placed_by: str
    placed_at: datetime
    until: datetime | None
    released_by: str | None = None
    released_at: datetime | None = None
    release_reason: str | None = None

    def active(self, now: datetime) -> bool:
        return self.released_at is None and (self.until is None or self.until > now)

    @property
    def target(self) -> str:
        if self.scope == "subject":
            return f"subject {self.subject}"
        if self.scope == "system":
            return f"system {self.system}"
        if self.scope == "location":
            return f"location {self.location}"
        return f"item {self.item_key} in {self.location}"

    def explain(self) -> str:
        return f"hold {self.id} on {self.target}: {self.reason}"


def location_system(label: str) -> str:
    """Given a location label ``system:table`` or ``system:patterns``, return the system."""
    return label.split(":", 1)[0]


def place(
    store: Store,
    scope: Scope,
    *,
    reason: str,
    by: str,
    now: datetime,
    subject: str | None = None,
    system: str | None = None,
    location: str | None = None,
    item_key: str | None = None,
    until: datetime | None = None,
    subject_pattern: str = r"^.+$",
    audit: AuditLog,
) -> Hold:
    """Store a new hold with its audit record and return it. Raise HoldInvalid if it is
    incomplete or malformed. If the audit log refuses the record, the hold is taken back and
    the audit error raised."""
    problems = []
    if not reason or not reason.strip():
        problems.append("a hold needs a reason (--reason): why must this data be kept?")
    if not by or not by.strip():
        problems.append("a hold needs the name of who places it (--by)")
    if until is not None and until <= now:
        problems.append(f"--until {until.isoformat()} is not in the future")
    if scope == "subject":
        if not subject:
            problems.append("a subject hold needs --subject")
        elif not re.fullmatch(subject_pattern, subject):
            problems.append(
                f"subject {subject!r} does not look like a subject id "
                f"(the setting subject_pattern is {subject_pattern})"
            )
    elif scope == "system" and not system:
        problems.append("a system hold needs --system")
    elif scope == "location" and not location:
        problems.append(
            "a location hold needs --location, the location as plans label it "
            "(SYSTEM:TABLE, SYSTEM:PATTERNS, SYSTEM:BUCKET/PREFIX or SYSTEM:BASE_DN)"
        )
    elif scope == "item" and not (location and item_key):
        problems.append("an item hold needs --location and --item KEY (as the plan shows them)")
    if problems:
        raise HoldInvalid("hold refused: " + "; ".join(problems))
    if location is not None:
        system = location_system(location)
    row = {
        "scope": scope,
        "system": system,
        "location": location,
        "subject": subject,
        "item_key": item_key,
        "reason": reason.strip(),
        "placed_by": by.strip(),
        "placed_at": now,
        "until": until,
    }
    with store.engine.begin() as conn:
        inserted = conn.execute(holds.insert().values(**row)).inserted_primary_key
    assert inserted is not None
    placed = Hold(id=int(inserted[0]), **row)  # type: ignore[arg-type]
    try:
        audit.append(
            "hold_placed",
            placed.placed_by,
            subject=subject,
            hold=placed.id,
            scope=placed.scope,
            target=placed.target if placed.scope != "subject" else None,
            reason=placed.reason,
            until=placed.until,
        )
    except BaseException:
        with store.engine.begin() as conn:
            conn.execute(holds.delete().where(holds.c.id == placed.id))
        raise
    return placed


def release(
    store: Store, hold_id: int, *, by: str, reason: str, now: datetime, audit: AuditLog
) -> Hold:
    """Release a hold and audit it. Raise HoldInvalid if it does not exist, is released, or
    no reason is given. If the audit log refuses the record, the hold stays in force and the
    audit error is raised: a hold never ends unaudited."""
    if not reason or not reason.strip() or not by or not by.strip():
        raise HoldInvalid("releasing a hold needs --by and --reason")
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(holds).where(holds.c.id == hold_id)).mappings().first()
        if row is None:
            raise HoldInvalid(f"no hold {hold_id} (sweeper hold list shows them)")
        if row["released_at"] is not None:
            raise HoldInvalid(f"hold {hold_id} was already released by {row['released_by']}")
        conn.execute(
            holds.update()
            .where(holds.c.id == hold_id)
            .values(released_by=by.strip(), released_at=now, release_reason=reason.strip())
        )
    try:
        audit.append(
            "hold_released", by.strip(), subject=row["subject"], hold=hold_id, reason=reason
        )
    except BaseException:
        with store.engine.begin() as conn:
            conn.execute(
                holds.update()
                .where(holds.c.id == hold_id)
                .values(released_by=None, released_at=None, release_reason=None)
            )
        raise
    return _hold({**row, "released_by": by, "released_at": now, "release_reason": reason})


def all_holds(store: Store) -> list[Hold]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(holds).order_by(holds.c.id)).mappings().all()
    return [_hold(r) for r in rows]


def _hold(row: Any) -> Hold:
    return Hold(**{k: row[k] for k in Hold.__dataclass_fields__})


class HoldIndex:
    """The holds active at one moment, indexed for matching millions of items quickly."""

    def __init__(self, active: Iterable[Hold]) -> None:
        self.subjects: dict[str, Hold] = {}
        self.systems: dict[str, Hold] = {}
        self.locations: dict[str, Hold] = {}
        self.items: dict[tuple[str, str], Hold] = {}
        for hold in active:
            if hold.scope == "subject" and hold.subject is not None:
                self.subjects.setdefault(hold.subject, hold)
            elif hold.scope == "system" and hold.system is not None:
                self.systems.setdefault(hold.system, hold)
            elif hold.scope == "location" and hold.location is not None:
                self.locations.setdefault(hold.location, hold)
            elif hold.location is not None and hold.item_key is not None:
                self.items.setdefault((hold.location, hold.item_key), hold)

    @classmethod
    def load(cls, store: Store, now: datetime) -> HoldIndex:
        return cls(h for h in all_holds(store) if h.active(now))

    def __bool__(self) -> bool:
        return bool(self.subjects or self.systems or self.locations or self.items)

    def location_hold(self, system: str, location: str) -> Hold | None:
        """The hold covering a whole location (or its system), if any."""
        return self.systems.get(system) or self.locations.get(location)

    def match(self, location: str, key: str, subject: str | None) -> Hold | None:
        """The hold covering one item of a location (already checked for location holds)."""
        if subject is not None and (hold := self.subjects.get(subject)) is not None:
            return hold
        return self.items.get((location, key))
