"""The state store: plans, their locations, items and findings, through SQLAlchemy Core.

SQLite in the state directory by default (embedded, nothing to set up); PostgreSQL for
production and for several agents sharing one store. Times are stored as UTC: in plan rows as
timestamps, in item rows as ISO 8601 text so that a plan's content hash can be recomputed
from the store exactly, on any database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sweeper.errors import PlanNotFound, SweeperError

metadata = sa.MetaData()


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime stored as naive UTC, returned as aware UTC, on every database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("clock", UtcDateTime(), nullable=False, comment="the 'now' due dates used"),
    sa.Column("ropa_path", sa.Text, nullable=False),
    sa.Column("ropa_digest", sa.String(64), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, comment="building, ready"),
    sa.Column("complete", sa.Boolean, nullable=False, comment="false if a system failed"),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, comment="JSON: totals and legacy systems"),
)

plan_locations = sa.Table(
    "plan_locations",
    metadata,
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("activity", sa.String(64), nullable=False),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, comment="scanned, failed, skipped"),
    sa.Column("error", sa.Text),
    sa.Column("counts", sa.Text, nullable=False, comment="JSON: items per status"),
    sa.Column("bytes_due", sa.BigInteger, nullable=False),
    sa.Column("oldest_due", sa.String(40), comment="earliest due date among due items"),
    sa.Column("next_due", sa.String(40), comment="earliest due date among items not yet due"),
    sa.Column("details", sa.Text, nullable=False, comment="JSON: rule, clock, action"),
)

plan_items = sa.Table(
    "plan_items",
    metadata,
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("location_idx", sa.Integer, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("subject", sa.Text),
    sa.Column("clock_start", sa.String(40)),
    sa.Column("due_date", sa.String(40)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger),
    sa.Column("reason", sa.Text),
    sa.Column("details", sa.Text),
)

plan_findings = sa.Table(
    "plan_findings",
    metadata,
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("location_idx", sa.Integer),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("where", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scope", sa.String(16), nullable=False, comment="subject, item, location, system"),
    sa.Column("system", sa.String(64), comment="for item, location and system holds"),
    sa.Column("location", sa.Text, comment="location label (system:table / system:patterns)"),
    sa.Column("subject", sa.Text, comment="for subject holds"),
    sa.Column("item_key", sa.Text, comment="for item holds"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("placed_by", sa.String(200), nullable=False),
    sa.Column("placed_at", UtcDateTime(), nullable=False),
    sa.Column("until", UtcDateTime(), comment="null: until released"),
    sa.Column("released_by", sa.String(200)),
    sa.Column("released_at", UtcDateTime()),
    sa.Column("release_reason", sa.Text),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False, comment="approved, rejected"),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("only", sa.Text, comment="JSON: {activity: [...], system: [...]} or null = all"),
)

journal = sa.Table(
    "journal",
    metadata,
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False, comment="pending, done, skipped, failed"),
    sa.Column("reason", sa.Text),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("run_id", sa.String(40), nullable=False),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.String(40), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("item_key", sa.Text, nullable=False),
    sa.Column("quarantined_at", UtcDateTime(), nullable=False),
    sa.Column("restorable_until", UtcDateTime(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, comment="quarantined, restored, purged"),
    sa.Column("changed_at", UtcDateTime()),
    sa.Column("changed_by", sa.String(200)),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, comment="always 1"),
    sa.Column("seq", sa.BigInteger, nullable=False, comment="sequence number of the last record"),
    sa.Column("hash", sa.String(64), nullable=False, comment="hash of the last record"),
    sa.Column("segment", sa.Text, nullable=False, comment="file name of the current segment"),
    sa.Column("at", UtcDateTime(), nullable=False),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(16), nullable=False, comment="plan, execute, discover, prune"),
    sa.Column("trigger", sa.String(16), nullable=False, comment="schedule (daemon), once (CLI)"),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), comment="null while running (or if it crashed)"),
    sa.Column("result", sa.String(16), nullable=False, comment="running, ok, failed, stopped"),
    sa.Column("message", sa.Text, comment="what went wrong, or what was done"),
    sa.Column("details", sa.Text, comment="JSON: plans made or executed, errors per system"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("plan_id", sa.String(40), sa.ForeignKey("plans.id"), nullable=False),
    sa.Column("run_id", sa.String(40), comment="the executor's run id (null if refused)"),
    sa.Column("finished_at", UtcDateTime(), nullable=False),
    sa.Column(
        "outcome", sa.String(16), nullable=False, comment="finished, stopped, failed, refused"
    ),
)

daemon_schedule = sa.Table(
    "daemon_schedule",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("job", sa.String(16), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False, comment="the daemon's process"),
    sa.Column("timing", sa.Text, nullable=False, comment="as the schedule setting says it"),
    sa.Column("next_at", UtcDateTime(), comment="null: not on the timetable"),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

lock_holders = sa.Table(
    "lock_holders",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("since", UtcDateTime(), nullable=False),
)

discovery_runs = sa.Table(
    "discovery_runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime(), comment="null while (or if a crash stopped) running"),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("ropa_path", sa.Text, nullable=False),
    sa.Column("ropa_digest", sa.String(64), nullable=False),
    sa.Column("complete", sa.Boolean, nullable=False, comment="false if a system failed"),
    sa.Column("summary", sa.Text, nullable=False, comment="JSON: systems and their outcome"),
)

discovery_stores = sa.Table(
    "discovery_stores",
    metadata,
    sa.Column("run_id", sa.String(40), sa.ForeignKey("discovery_runs.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("finding_id", sa.String(24), nullable=False, index=True),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, comment="table, folder, bucket, …"),
    sa.Column("where", sa.Text, nullable=False),
    sa.Column("items", sa.BigInteger),
    sa.Column("size", sa.BigInteger),
    sa.Column("oldest", sa.String(40)),
    sa.Column("newest", sa.String(40)),
    sa.Column("registration", sa.String(16), nullable=False, comment="registered, partial, …"),
    sa.Column("finding", sa.String(24), comment="unregistered, partially_registered, …; null"),
    sa.Column("status", sa.String(16), comment="new, acknowledged, under_review"),
    sa.Column("personal_data", sa.Boolean, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False, comment="JSON: the report's entry (no values)"),
)

discovery_coverage = sa.Table(
    "discovery_coverage",
    metadata,
    sa.Column("run_id", sa.String(40), sa.ForeignKey("discovery_runs.id"), primary_key=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("activities", sa.Integer, nullable=False),
    sa.Column("activities_enforceable", sa.Integer, nullable=False),
    sa.Column("stores", sa.Integer, nullable=False),
    sa.Column("stores_registered", sa.Integer, nullable=False),
    sa.Column("stores_partial", sa.Integer, nullable=False),
    sa.Column("personal_stores", sa.Integer, nullable=False),
    sa.Column("personal_stores_registered", sa.Integer, nullable=False),
    sa.Column("legacy_systems_with_data", sa.Integer, nullable=False),
    sa.Column("uninspectable", sa.Integer, nullable=False),
    sa.Column("details", sa.Text, nullable=False, comment="JSON: the legacy systems"),
)

discovery_decisions = sa.Table(
    "discovery_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("finding_id", sa.String(24), nullable=False, index=True),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(16), nullable=False, comment="acknowledged, review"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("detectors", sa.Text, nullable=False, comment="JSON: detectors found then"),
    sa.Column("state", sa.String(16), nullable=False, comment="open, closed"),
    sa.Column("closed_by", sa.String(200)),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.Text),
)

ITEM_FIELDS = (
    "seq",
    "location_idx",
    "key",
    "subject",
    "clock_start",
    "due_date",
    "status",
    "action",
    "fingerprint",
    "size",
    "reason",
    "details",
)


class Store:
    """The state store. Create it with ``Store.open(url)``; it creates its tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._positional_insert: str | None = None
        compiled = plan_items.insert().compile(
            dialect=engine.dialect, column_keys=["plan_id", *ITEM_FIELDS]
        )
        if compiled.positiontup == ["plan_id", *ITEM_FIELDS]:
            self._positional_insert = str(compiled)

    @classmethod
    def open(cls, url: str) -> Store:
        """Given a SQLAlchemy URL, return the store, creating its tables if needed."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = sa.create_engine(url)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            metadata.create_all(engine)
        except sa.exc.SQLAlchemyError as err:
            cause = getattr(err, "orig", None) or err
            raise SweeperError(
                f"cannot open the state store {sa.make_url(url).render_as_string()}: "
                f"{type(cause).__name__}: {cause}"
            ) from err
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- plans -------------------------------------------------------------------------

    def insert_plan(self, conn: sa.Connection, row: Mapping[str, Any]) -> None:
        conn.execute(plans.insert(), [dict(row)])

    def finish_plan(self, conn: sa.Connection, plan_id: str, values: Mapping[str, Any]) -> None:
        conn.execute(plans.update().where(plans.c.id == plan_id).values(**values))

    def insert_items(
        self, conn: sa.Connection, plan_id: str, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Insert item rows given as tuples in ITEM_FIELDS order."""
        if not rows:
            return
        if self._positional_insert is not None:
            # Straight to the driver's executemany: the Core path costs several µs a row.
            conn.exec_driver_sql(self._positional_insert, [(plan_id, *r) for r in rows])
        else:
            conn.execute(
                plan_items.insert(),
                [{"plan_id": plan_id, **dict(zip(ITEM_FIELDS, r, strict=True))} for r in rows],
            )

    def insert_locations(self, conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            conn.execute(plan_locations.insert(), rows)

    def insert_findings(self, conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            conn.execute(plan_findings.insert(), rows)

    def plan(self, plan_id: str) -> dict[str, Any]:
        """Given a plan id (or a unique prefix of one), return its row. Raise PlanNotFound."""
        with self.engine.connect() as conn:
            found = (
                conn.execute(
                    sa.select(plans).where(
                        plans.c.id.like(_escape_like(plan_id) + "%", escape="\\")
                    )
                )
                .mappings()
                .all()
            )
        if not found:
            raise PlanNotFound(f"no plan {plan_id!r} in the state store (sweeper plans lists them)")
        if len(found) > 1 and not any(r["id"] == plan_id for r in found):
            raise PlanNotFound(f"{plan_id!r} matches {len(found)} plans: give more of the id")
        row = next((r for r in found if r["id"] == plan_id), found[0])
        plan = dict(row)
        plan["summary"] = json.loads(plan["summary"])
        return plan

    def plans(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(plans).order_by(plans.c.created_at.desc()).limit(limit)
            ).mappings()
            return [dict(r, summary=json.loads(r["summary"])) for r in rows]

    def locations(self, plan_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(plan_locations)
                .where(plan_locations.c.plan_id == plan_id)
                .order_by(plan_locations.c.idx)
            ).mappings()
            return [
                dict(r, counts=json.loads(r["counts"]), details=json.loads(r["details"]))
                for r in rows
            ]

    def findings(self, plan_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(plan_findings)
                .where(plan_findings.c.plan_id == plan_id)
                .order_by(plan_findings.c.seq)
            ).mappings()
            return [dict(r) for r in rows]

    def item_rows(
        self,
        plan_id: str,
        batch: int = 10_000,
        *,
        location_idx: int | None = None,
        statuses: Sequence[str] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Stream a plan's items (of one location, with some statuses) as tuples in
        ITEM_FIELDS order, in bounded memory (keyset pagination on seq)."""
        last = -1
        columns = [plan_items.c[f] for f in ITEM_FIELDS]
        where = [plan_items.c.plan_id == plan_id]
        if location_idx is not None:
            where.append(plan_items.c.location_idx == location_idx)
        if statuses is not None:
            where.append(plan_items.c.status.in_(statuses))
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(
                    sa.select(*columns)
                    .where(*where, plan_items.c.seq > last)
                    .order_by(plan_items.c.seq)
                    .limit(batch)
                ).all()
                if not rows:
                    return
                for row in rows:
                    yield tuple(row)
                last = rows[-1][0]

    def items(
        self,
        plan_id: str,
        *,
        location_idx: int | None = None,
        statuses: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream a plan's items as dicts keyed by ITEM_FIELDS."""
        for row in self.item_rows(plan_id, location_idx=location_idx, statuses=statuses):
            yield dict(zip(ITEM_FIELDS, row, strict=True))

    def plan_history(self, until: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Return the stored plans (state ready) made at or before ``until``, oldest first, at
        most the ``limit`` latest: id, created_at, clock and summary, for trends over time."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(plans.c.id, plans.c.created_at, plans.c.clock, plans.c.summary)
                .where(plans.c.created_at <= until, plans.c.state == "ready")
                .order_by(plans.c.created_at.desc())
                .limit(limit)
            ).mappings()
            found = [dict(r, summary=json.loads(r["summary"])) for r in rows]
        return found[::-1]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
