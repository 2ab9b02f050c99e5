"""SQL databases through SQLAlchemy 2 Core (no ORM).

A location is a table; an item is one of its rows together with the rows of its dependent
tables. The connector:

* reflects every table a location or event names and checks every name against it, so a typo
  is a ``LocationInvalid`` naming the table or column (with close matches) before any row is
  read;
* lets names reach SQL only as quoted identifiers of reflected ``Table``/``Column`` objects, and
  values only as bound parameters: the RoPA never contributes SQL text;
* pages through a table by its key (``WHERE key > :last ORDER BY key``, ``LIMIT`` a batch) when
  a primary key or a unique index over NOT NULL columns covers it, so no cursor or transaction
  stays open while the caller works on a page; any other table is read through one streamed
  (server-side) cursor;
* pushes a cutoff down: rows not yet due are counted by one aggregate query, not listed;
* counts each item's dependent rows in batches, for the report.

Read-only connections (``context.read_only``, the dry run):

* SQLite opens the file with ``mode=ro`` (and ``mode=rw`` otherwise, so that a mistyped path is
  an error rather than a new, empty database that scans as "no data");
* PostgreSQL sets ``default_transaction_read_only`` on every new connection;
* MariaDB and MySQL run ``SET SESSION TRANSACTION READ ONLY`` on every new connection;
* SQL Server has no session switch that refuses writes (``ApplicationIntent=ReadOnly`` only
  routes the connection to a readable secondary): give the dry run a login that holds only
  ``db_datareader``.

Dates: a DATE is midnight of that day in the request's timezone; a timestamp without time
zone is wall time in that timezone; a timestamp with one keeps its instant. A cutoff is turned
into the column's own convention before it is compared in SQL. SQLite's dates are text parsed
in Python, so there the text is read and a malformed value becomes that item's ``problem``.

Keys: a single key column gives ``str(value)``; a composite key gives a compact JSON array of
the values. ``decode_key`` (or ``SqlConnector.key_values``) turns either back into typed values.

Streaming without a usable index: psycopg and PyMySQL read through a server-side cursor, and
SQL Server's ODBC driver streams by default; MariaDB's ODBC driver holds the whole result in
memory unless it is 3.1.17 or later and the connection sets ``NO_CACHE=1;FORWARDONLY=1``. Give
such tables a primary key or unique index over the key columns, or use ``mysql+pymysql``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import operator
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.mssql import DATETIMEOFFSET
from sqlalchemy.engine import URL, make_url

from connectors.base import (
    Connector,
    ConnectorContext,
    LocationModel,
    NotDueSummary,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from sweeper.errors import ConnectorError, LocationInvalid, SystemUnreachable
from sweeper.ropa.model import (
    Clock,
    ColumnClock,
    Condition,
    Dependent,
    EventClock,
    SqlEvent,
    SqlLocation,
    SqlSystem,
)

__all__ = ["BATCH", "SqlConnector", "decode_key", "encode_key", "fingerprint"]

BATCH = 1000
"""Rows per page, and keys per ``IN (…)`` list."""

_MAX_PARAMETERS = 2000
"""Bound parameters per statement: SQL Server refuses more than 2,100."""

_Col = sa.Column[Any]
_BINARY = (bytes, bytearray, memoryview)
_T = TypeVar("_T")


def encode_key(values: Sequence[Any]) -> str:
    """Given the values of a row's key columns, return the item key.

    One column gives ``str(value)``; several give a compact JSON array. Bytes become hex.
    """
    if len(values) == 1:
        value = values[0]
        return value.hex() if isinstance(value, _BINARY) else str(value)
    parts = [v.hex() if isinstance(v, _BINARY) else v for v in values]
    return json.dumps(parts, separators=(",", ":"), default=str, ensure_ascii=False)


def decode_key(key: str, columns: Sequence[_Col]) -> tuple[Any, ...]:
    """Given an item key and the reflected key columns, return the typed key values.

    Raise ValueError if the key does not fit the columns.
    """
    if len(columns) == 1:
        parts: list[Any] = [key]
    else:
        parts = json.loads(key)
        if not isinstance(parts, list) or len(parts) != len(columns):
            raise ValueError(f"key {key!r} does not hold {len(columns)} values")
    return tuple(_coerce(part, column) for part, column in zip(parts, columns, strict=True))


def fingerprint(values: Sequence[Any]) -> str:
    """Given the values that make up an item, return a short, stable hex digest of them.

    The digest is over the values' ``repr``, which tells apart types JSON would not (1, "1",
    Decimal("1")), and is stable from run to run.
    """
    return hashlib.blake2b(repr(tuple(values)).encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class _Dependent:
    """A dependent table resolved against the database."""

    name: str  # as the RoPA spells it: the key in details["dependents"]
    table: sa.Table
    columns: tuple[_Col, ...]  # foreign-key columns in this table
    references: tuple[_Col, ...]  # the parent's columns they refer to
    dependents: tuple[_Dependent, ...]


@dataclass(frozen=True)
class _Plan:
    """A location resolved against the database: what to select and how to page."""

    table: sa.Table
    key: tuple[_Col, ...]
    subject: _Col | None
    clock: _Col | None
    fingerprint: tuple[_Col, ...]
    where: tuple[sa.ColumnElement[bool], ...]
    dependents: tuple[_Dependent, ...]
    order: tuple[_Col, ...] | None  # the key in index order, when it can be paged by

    @property
    def selected(self) -> tuple[_Col, ...]:
        wanted = [*self.key, self.subject, *self.fingerprint]
        wanted += [c for d in self.dependents for c in d.references]
        return tuple(dict.fromkeys(c for c in wanted if c is not None))

    @property
    def chains(self) -> list[tuple[_Dependent, ...]]:
        """Every dependent with the path to it from the location's table."""

        def walk(path: tuple[_Dependent, ...]) -> Iterator[tuple[_Dependent, ...]]:
            yield path
            for child in path[-1].dependents:
                yield from walk((*path, child))

        return [chain for top in self.dependents for chain in walk((top,))]


@dataclass(frozen=True)
class _Event:
    table: sa.Table
    subject: _Col
    date: _Col
    where: tuple[sa.ColumnElement[bool], ...]


class SqlConnector(Connector):
    """A connection to one SQL database.

    Args:
        system: the ``SqlSystem`` from the RoPA.
        context: base folder, credentials and whether to open read-only connections.
    """

    kind = "sql"
    system: SqlSystem

    def __init__(self, system: SqlSystem, context: ConnectorContext) -> None:
        super().__init__(system, context)
        self._engine: sa.Engine | None = None
        self._secrets: list[str] = []
        self._metadata = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}
        self._plans: dict[str, _Plan] = {}
        self._events: dict[str, _Event] = {}

    # -- connection -----------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, created on first use (read-only when the context says so)."""
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> sa.Engine:
        settings = self.system.connection
        try:
            url = make_url(settings.url)
        except sa_exc.ArgumentError as err:
            raise ConnectorError(self.system.id, f"invalid URL: {err}") from err
        backend, driver = url.get_backend_name(), url.get_driver_name()
        if settings.credential is not None and backend == "sqlite" and driver == "pysqlite":
            raise ConnectorError(
                self.system.id,
                "a SQLite file takes no password: remove connection.credential",
            )
        if settings.credential is not None:
            secret = self.context.credential(settings.credential).get_secret_value()
            self._remember_secret(secret)
            url = url.set(password=secret)
            if "odbc_connect" in url.query and secret:
                # With odbc_connect, SQLAlchemy passes the string through and drops the password.
                odbc = str(url.query["odbc_connect"]).rstrip(";")
                braced = "{" + secret.replace("}", "}}") + "}"
                self._remember_secret(braced)
                url = url.update_query_dict({"odbc_connect": f"{odbc};PWD={braced}"})
        if backend == "sqlite":
            url = self._sqlite_url(url)
        if backend in ("mysql", "mariadb") and driver == "pyodbc":
            url = _odbc_port_in_query(url)
        try:
            engine = sa.create_engine(
                url, connect_args=dict(settings.connect_args), pool_pre_ping=True
            )
        except (sa_exc.ArgumentError, ImportError) as err:
            raise ConnectorError(
                self.system.id, self._redact(f"cannot use the URL: {err}")
            ) from err
        if self.context.read_only:
            if backend == "postgresql":
                sa.event.listen(engine, "connect", _postgresql_read_only)
            elif backend in ("mysql", "mariadb"):
                sa.event.listen(engine, "connect", _mysql_read_only)
        return engine

    def _sqlite_url(self, url: URL) -> URL:
        """Given a SQLite URL, return it as a file URI resolved against the RoPA's folder."""
        database = url.database
        if not database or database == ":memory:":
            return url
        if database.startswith("file:"):
            uri = url.query.get("uri") in ("true", "1")
            return url.update_query_dict({"mode": "ro"}) if uri and self.context.read_only else url
        path = self.context.base_dir / database
        return url.set(database="file:" + quote(path.as_posix())).update_query_dict(
            {"mode": "ro" if self.context.read_only else "rw", "uri": "true"}
        )

    def _remember_secret(self, secret: str) -> None:
        if secret:
            self._secrets += [secret, quote(secret, safe=""), quote_plus(secret)]

    def _redact(self, text: str) -> str:
        """Given a message, return it without any secret this connector knows of."""
        for secret in sorted(set(self._secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return re.sub(r"(?i)\b(pwd|password)\s*=\s*(\{(?:[^}]|\}\})*\}|[^;\s]*)", r"\1=***", text)

    def _reason(self, err: sa_exc.SQLAlchemyError) -> str:
        """Given a SQLAlchemy error, return the driver's reason without secrets."""
        cause: BaseException = err
        if isinstance(err, sa_exc.DBAPIError) and err.orig is not None:
            cause = err.orig
        return self._redact(" ".join(f"{type(cause).__name__}: {cause}".split()))

    def _error(self, err: sa_exc.SQLAlchemyError, doing: str) -> ConnectorError:
        """Given a SQLAlchemy error, return the connector error to raise ``from`` it."""
        unreachable = isinstance(
            err, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError
        ) or (isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated)
        error = SystemUnreachable if unreachable else ConnectorError
        return error(self.system.id, f"{doing}: {self._reason(err)}")

    def check(self) -> None:
        """Connect and run a trivial query. Raise SystemUnreachable with the reason if it fails."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(sa.literal_column("1"))).scalar_one()
        except sa_exc.SQLAlchemyError as err:
            raise SystemUnreachable(self.system.id, self._reason(err)) from err

    def close(self) -> None:
        """Dispose of the engine and its pooled connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- names ----------------------------------------------------------------------------------

    def prepare(self, location: LocationModel, clock: Clock) -> None:
        """Check every table and column the location uses. Raise LocationInvalid naming them."""
        self._plan(location, clock)

    def prepare_event(self, event: SqlEvent) -> None:
        """Check the table and columns an event reads. Raise LocationInvalid naming them."""
        self._event(event)

    def key_values(self, location: SqlLocation, key: str) -> tuple[Any, ...]:
        """Given a location and one of its item keys, return the typed key values.

        Raise LocationInvalid if the key does not fit the location's key columns.
        """
        try:
            return decode_key(key, self.key_columns(location))
        except ValueError as err:
            raise LocationInvalid(self.system.id, f"item key {key!r}: {err}") from err

    def key_columns(self, location: SqlLocation) -> tuple[_Col, ...]:
        """Given a location, return its reflected key columns (for ``decode_key``)."""
        table = self._reflect_or_raise(location.table)
        problems: list[str] = []
        columns = tuple(
            self._column(table, location.table, n, "key", problems) for n in location.key
        )
        self._raise(problems)
        return tuple(c for c in columns if c is not None)

    def _plan(self, location: LocationModel, clock: Clock) -> _Plan:
        if not isinstance(location, SqlLocation):
            raise LocationInvalid(self.system.id, "a SQL system needs a location with a table")
        cache_key = location.model_dump_json() + repr(clock)
        if (plan := self._plans.get(cache_key)) is not None:
            return plan
        problems: list[str] = []
        if not isinstance(clock, ColumnClock | EventClock):
            problems.append(
                f"clock {clock!r} cannot be read from a table: use {{column: NAME}} for a date "
                "or timestamp column of the row, or {event: ID} for an event of its subject"
            )
        try:
            table = self._reflect(location.table, problems)
            if table is None:
                raise LocationInvalid(self.system.id, "; ".join(problems))
            name = location.table
            key = [self._column(table, name, c, "key", problems) for c in location.key]
            subject = (
                self._column(table, name, location.subject, "subject", problems)
                if location.subject is not None
                else None
            )
            clock_column = None
            if isinstance(clock, ColumnClock):
                clock_column = self._column(table, name, clock.column, "clock", problems)
                if clock_column is not None and not _is_temporal(clock_column):
                    problems.append(
                        f"clock column {clock.column!r} of table {name!r} is "
                        f"{clock_column.type}, not a date or timestamp"
                    )
            elif isinstance(clock, EventClock) and location.subject is None:
                problems.append(
                    f"clock {{event: {clock.event}}} needs the location's subject column: "
                    "the event is looked up by subject"
                )
            extra = [
                self._column(table, name, c, "fingerprint", problems) for c in location.fingerprint
            ]
            where = self._conditions(table, name, location.where, problems)
            key_columns = tuple(c for c in key if c is not None)
            dependents = self._dependents(table, name, key_columns, location.dependents, problems)
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"cannot read the definition of {location.table!r}") from err
        self._raise(problems)
        plan = _Plan(
            table=table,
            key=key_columns,
            subject=subject,
            clock=clock_column,
            fingerprint=tuple(c for c in extra if c is not None),
            where=where,
            dependents=dependents,
            order=_keyset_order(table, key_columns),
        )
        self._plans[cache_key] = plan
        return plan

    def _event(self, event: SqlEvent) -> _Event:
        if (resolved := self._events.get(event.id)) is not None:
            return resolved
        problems: list[str] = []
        subject = day = None
        where: tuple[sa.ColumnElement[bool], ...] = ()
        try:
            table = self._reflect(event.table, problems)
            if table is not None:
                what = f"subject of event {event.id!r}"
                subject = self._column(table, event.table, event.subject, what, problems)
                what = f"date of event {event.id!r}"
                day = self._column(table, event.table, event.date, what, problems)
                if day is not None and not _is_temporal(day):
                    problems.append(
                        f"date column {event.date!r} of event {event.id!r} is {day.type}, "
                        "not a date or timestamp"
                    )
                where = self._conditions(table, event.table, event.where, problems)
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"cannot read the definition of {event.table!r}") from err
        self._raise(problems)
        assert table is not None and subject is not None and day is not None
        resolved = _Event(table=table, subject=subject, date=day, where=where)
        self._events[event.id] = resolved
        return resolved

    def _raise(self, problems: list[str]) -> None:
        if problems:
            raise LocationInvalid(self.system.id, "; ".join(problems))

    def _reflect_or_raise(self, name: str) -> sa.Table:
        problems: list[str] = []
        try:
            table = self._reflect(name, problems)
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"cannot read the definition of {name!r}") from err
        self._raise(problems)
        assert table is not None
        return table

    def _reflect(self, spelled: str, problems: list[str]) -> sa.Table | None:
        """Given a table name as the RoPA spells it (``schema.table`` allowed), return the
        reflected table, or None after adding a problem that names it and close matches.
        """
        if (table := self._tables.get(spelled)) is not None:
            return table
        schema, _, name = spelled.rpartition(".")
        try:
            with self.engine.connect() as conn:
                table = sa.Table(
                    name,
                    self._metadata,
                    schema=schema or None,
                    autoload_with=conn,
                    resolve_fks=False,
                )
        except sa_exc.NoSuchTableError:
            problems.append(f"table {spelled!r} does not exist{self._table_hint(schema, name)}")
            return None
        except sa_exc.DBAPIError:
            # An unknown schema is an error from the server on some databases (SQLite, MySQL).
            if not schema or self._schema_exists(schema):
                raise
            problems.append(f"table {spelled!r} does not exist{self._table_hint(schema, name)}")
            return None
        self._tables[spelled] = table
        return table

    def _schema_exists(self, schema: str) -> bool:
        with self.engine.connect() as conn:
            return schema in sa.inspect(conn).get_schema_names()

    def _table_hint(self, schema: str, name: str) -> str:
        """Given a missing table's schema and name, return close matches to suggest."""
        with self.engine.connect() as conn:
            inspector = sa.inspect(conn)
            if schema:
                schemas = inspector.get_schema_names()
                if schema not in schemas:
                    return f": there is no schema {schema!r}" + _did_you_mean(schema, schemas)
            names = inspector.get_table_names(schema or None)
            names += inspector.get_view_names(schema or None)
        return _did_you_mean(name, names, f"{schema}." if schema else "")

    def _column(
        self, table: sa.Table, spelled: str, name: str, role: str, problems: list[str]
    ) -> _Col | None:
        column = table.c.get(name)
        if column is None:
            problems.append(
                f"column {name!r} ({role}) does not exist in table {spelled!r}"
                + _did_you_mean(name, list(table.c.keys()))
            )
        return column

    def _conditions(
        self, table: sa.Table, spelled: str, conditions: Sequence[Condition], problems: list[str]
    ) -> tuple[sa.ColumnElement[bool], ...]:
        clauses = []
        for condition in conditions:
            column = self._column(table, spelled, condition.column, "where", problems)
            if column is None:
                continue
            try:
                value: Any = (
                    [_coerce(v, column) for v in condition.value]
                    if isinstance(condition.value, list)
                    else _coerce(condition.value, column)
                )
            except ValueError as err:
                problems.append(
                    f"condition on column {condition.column!r} of table {spelled!r}: {err}"
                )
                continue
            clauses.append(_condition(column, condition.op, value))
        return tuple(clauses)

    def _dependents(
        self,
        parent: sa.Table,
        parent_name: str,
        parent_key: Sequence[_Col],
        dependents: Sequence[Dependent],
        problems: list[str],
    ) -> tuple[_Dependent, ...]:
        resolved = []
        for dependent in dependents:
            table = self._reflect(dependent.table, problems)
            if dependent.references is not None:
                references = [
                    self._column(
                        parent, parent_name, r, f"referenced by {dependent.table!r}", problems
                    )
                    for r in dependent.references
                ]
            elif not parent_key:
                problems.append(
                    f"table {parent_name!r} has no primary key for dependent "
                    f"{dependent.table!r} to refer to: name the referenced columns in "
                    "'references'"
                )
                references = []
            elif len(parent_key) != len(dependent.columns):
                problems.append(
                    f"dependent {dependent.table!r} has {len(dependent.columns)} column(s) but "
                    f"the key of {parent_name!r} has {len(parent_key)}: name the referenced "
                    "columns in 'references'"
                )
                references = []
            else:
                references = list(parent_key)
            if table is None:
                continue
            columns = [
                self._column(table, dependent.table, c, "dependent column", problems)
                for c in dependent.columns
            ]
            own_key = tuple(table.primary_key.columns)
            children = self._dependents(
                table, dependent.table, own_key, dependent.dependents, problems
            )
            if not references or any(c is None for c in [*columns, *references]):
                continue
            resolved.append(
                _Dependent(
                    name=dependent.table,
                    table=table,
                    columns=tuple(c for c in columns if c is not None),
                    references=tuple(r for r in references if r is not None),
                    dependents=children,
                )
            )
        return tuple(resolved)

    # -- scan -----------------------------------------------------------------------------------

    def scan(self, request: ScanRequest) -> Iterator[ScanOutput]:
        """Stream the location's rows as items, each page of rows at most ``BATCH`` long.

        With a cutoff and a clock column, only rows due by the cutoff (or with a NULL clock)
        are items; the others are counted in one ``NotDueSummary``.
        """
        plan = self._plan(request.location, request.clock)
        selected = plan.selected
        position = {c: i for i, c in enumerate(selected)}
        stmt = sa.select(*selected).where(*plan.where)
        clock_at = position.get(plan.clock) if plan.clock is not None else None
        if plan.clock is not None and (clock_at is None or self._parses_dates_in_python):
            stmt = stmt.add_columns(self._as_stored(plan.clock))
            clock_at = len(selected)
        try:
            if request.cutoff is not None and plan.clock is not None:
                due, not_due = self._due(plan.clock, request.cutoff, request.tz)
                stmt = stmt.where(due)
                yield self._not_due(plan, not_due, request.tz)
            reader = _Reader(plan, position, clock_at, request.tz)
            for rows, counts in self._pages(plan, stmt, position):
                for row, dependents in zip(rows, counts, strict=True):
                    yield reader.item(row, dependents if plan.dependents else None)
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"scan of {plan.table.fullname!r} failed") from err
        except ValueError as err:  # a driver or SQLAlchemy could not convert a stored value
            raise ConnectorError(
                self.system.id,
                f"scan of {plan.table.fullname!r} failed: a value does not fit its column: {err}",
            ) from err

    def _as_stored(self, column: _Col) -> sa.ColumnElement[Any]:
        """Given a date or timestamp column, return the expression to select to read it.

        SQLite keeps dates as text that SQLAlchemy parses in Python, where one malformed value
        fails the whole page; the text is read instead, so that the value becomes that item's
        problem.
        """
        return sa.type_coerce(column, sa.String()) if self._parses_dates_in_python else column

    @property
    def _parses_dates_in_python(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def _due(
        self, clock: _Col, cutoff: datetime, tz: tzinfo
    ) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """Given the clock column and the cutoff, return the conditions "is an item" (due by
        the cutoff, or without a readable clock) and "is not due".
        """
        bound = _bound(clock, cutoff, tz)
        due = sa.or_(clock <= bound, clock.is_(None))
        not_due = clock > bound
        if self._parses_dates_in_python:
            # SQLite compares text: a malformed date would sort as "not due" and go unreported.
            unreadable = sa.func.date(clock).is_(None)
            due, not_due = sa.or_(due, unreadable), sa.and_(not_due, sa.not_(unreadable))
        return due, not_due

    def _not_due(self, plan: _Plan, not_due: sa.ColumnElement[bool], tz: tzinfo) -> NotDueSummary:
        assert plan.clock is not None
        earliest = sa.func.min(self._as_stored(plan.clock))
        stmt = sa.select(sa.func.count(), earliest).where(*plan.where, not_due)
        with self.engine.connect() as conn:
            count, first = conn.execute(stmt).one()
        return NotDueSummary(int(count), _clock(first, tz), 0)

    def _pages(
        self, plan: _Plan, stmt: sa.Select[Any], position: Mapping[_Col, int]
    ) -> Iterator[tuple[Sequence[sa.Row[Any]], list[dict[str, int]]]]:
        """Yield the rows page by page, each with the dependent counts of its rows."""
        if plan.order is None:
            yield from self._streamed_pages(plan, stmt, position)
            return
        order = plan.order
        stmt = stmt.order_by(*order).limit(BATCH)
        after: tuple[Any, ...] | None = None
        while True:
            page = stmt if after is None else stmt.where(_after(order, after))
            with self.engine.connect() as conn:
                rows = conn.execute(page).all()
                counts = self._count_dependents(conn, plan, position, rows)
            if rows:
                yield rows, counts
            if len(rows) < BATCH:
                return
            after = tuple(rows[-1][position[c]] for c in order)

    def _streamed_pages(
        self, plan: _Plan, stmt: sa.Select[Any], position: Mapping[_Col, int]
    ) -> Iterator[tuple[Sequence[sa.Row[Any]], list[dict[str, int]]]]:
        # No index to page by: one server-side cursor, and a second connection for the counts
        # (MySQL and SQL Server cannot run a query while a streamed result is open).
        with self.engine.connect() as conn:
            streamed = conn.execution_options(stream_results=True, yield_per=BATCH)
            result = streamed.execute(stmt)
            for rows in result.partitions():
                if plan.dependents:
                    with self.engine.connect() as side:
                        counts = self._count_dependents(side, plan, position, rows)
                else:
                    counts = [{} for _ in rows]
                yield rows, counts

    def _count_dependents(
        self,
        conn: sa.Connection,
        plan: _Plan,
        position: Mapping[_Col, int],
        rows: Sequence[sa.Row[Any]],
    ) -> list[dict[str, int]]:
        """Given a page of rows, return per row the number of rows in each dependent table.

        A nested dependent is counted through joins up to the location's table.
        """
        if not plan.dependents:
            return [{} for _ in rows]
        chains = plan.chains
        names = [chain[-1].name for chain in chains]
        counts = [dict.fromkeys(names, 0) for _ in rows]
        for chain in chains:
            top = chain[0]
            index = _Index()
            for i, row in enumerate(rows):
                values = tuple(row[position[c]] for c in top.references)
                if None not in values:
                    index.add(values, i)
            aliases = [d.table.alias() for d in chain]
            joined: sa.FromClause = aliases[-1]
            for level in range(len(chain) - 1, 0, -1):
                child, parent, link = aliases[level], aliases[level - 1], chain[level]
                joined = joined.join(
                    parent,
                    sa.and_(
                        *(
                            child.c[c.name] == parent.c[r.name]
                            for c, r in zip(link.columns, link.references, strict=True)
                        )
                    ),
                )
            group = [aliases[0].c[c.name] for c in top.columns]
            size = max(1, min(BATCH, _MAX_PARAMETERS // len(group)))
            for chunk in _chunks(index.keys(), size):
                stmt = (
                    sa.select(*group, sa.func.count())
                    .select_from(joined)
                    .where(_matches(group, chunk))
                    .group_by(*group)
                )
                for *found, count in conn.execute(stmt):
                    for i in index.get(tuple(found)):
                        counts[i][chain[-1].name] += int(count)
        return counts

    # -- events ---------------------------------------------------------------------------------

    def read_event(
        self, event: SqlEvent, subjects: Sequence[str], now: datetime, tz: tzinfo
    ) -> dict[str, datetime]:
        """Given subjects, return the event's date for each subject for whom it has happened.

        The date is the latest ``date`` among the subject's rows (after ``where``); it has
        happened only when no row is open: a NULL date (when ``null_means_open``) or a date
        after ``now``. A subject that cannot be a value of the subject column (a non-numeric
        subject for an integer column) has no event.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        resolved = self._event(event)
        index = _Index()
        for subject in dict.fromkeys(subjects):
            try:
                index.add((_coerce(subject, resolved.subject),), subject)
            except ValueError:
                continue
        found: dict[str, datetime] = {}
        latest = sa.func.max(self._as_stored(resolved.date))
        try:
            with self.engine.connect() as conn:
                for chunk in _chunks(index.keys(), BATCH):
                    values = [v[0] for v in chunk]
                    stmt = (
                        sa.select(
                            resolved.subject,
                            latest,
                            sa.func.count(),
                            sa.func.count(resolved.date),
                        )
                        .where(resolved.subject.in_(values), *resolved.where)
                        .group_by(resolved.subject)
                    )
                    for value, last, rows, dated in conn.execute(stmt):
                        if last is None or (event.null_means_open and dated < rows):
                            continue
                        when = _clock(last, tz)
                        if when is None or when > now:
                            continue
                        for subject in index.get((value,)):
                            found[subject] = when
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"reading event {event.id!r} failed") from err
        return found


# -- helpers ------------------------------------------------------------------------------------


def _postgresql_read_only(dbapi_connection: Any, _record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True  # so the SET does not open a transaction
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.autocommit = autocommit


def _mysql_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION TRANSACTION READ ONLY")
    cursor.close()


def _odbc_port_in_query(url: URL) -> URL:
    """Given a MySQL/MariaDB pyodbc URL, return it with the port as a ``port=`` argument.

    SQLAlchemy writes the host and port as ``Server=host,port`` (SQL Server's convention); the
    MariaDB and MySQL ODBC drivers ignore the ``,port`` and quietly connect to port 3306.
    """
    if url.port is None or "port" in url.query:
        return url
    return url.set(port=None).update_query_dict({"port": str(url.port)})


def _is_temporal(column: _Col) -> bool:
    return isinstance(column.type, sa.Date | sa.DateTime)


def _is_aware(column: _Col) -> bool:
    return isinstance(column.type, DATETIMEOFFSET) or bool(getattr(column.type, "timezone", False))


def _python_type(column: _Col) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _coerce(value: Any, column: _Col) -> Any:
    """Given a value from the RoPA, a subject or a key, return it as the column's type.

    Raise ValueError if the value cannot be one (``"1; DROP TABLE x"`` for an integer column).
    """
    kind = _python_type(column)
    if value is None or kind is None:
        return value
    if kind is datetime and isinstance(value, date) and not isinstance(value, datetime):
        return value if _is_aware(column) else datetime.combine(value, time())
    if isinstance(value, kind):
        return value
    if kind is str and isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if kind is int:
            if not re.fullmatch(r"[+-]?\d+", text):
                raise ValueError
            return int(text)
        if kind is bool:
            return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
        if kind is bytes:
            return bytes.fromhex(text)
        if kind in (float, Decimal, uuid.UUID):
            return kind(text)
        if kind is datetime:
            return datetime.fromisoformat(text)
        if kind is date:
            return date.fromisoformat(text)
        if kind is time:
            return time.fromisoformat(text)
    except (ValueError, KeyError, InvalidOperation):
        raise ValueError(
            f"{value!r} is not a valid {kind.__name__} for column {column.name!r}"
        ) from None
    return value


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda column, values: column.in_(values),
    "not in": lambda column, values: column.not_in(values),
    "is null": lambda column, _: column.is_(None),
    "is not null": lambda column, _: column.is_not(None),
}


def _condition(column: _Col, op: str, value: Any) -> sa.ColumnElement[bool]:
    clause: sa.ColumnElement[bool] = _OPERATORS[op](column, value)
    return clause


def _keyset_order(table: sa.Table, key: Sequence[_Col]) -> tuple[_Col, ...] | None:
    """Given a table and its key columns, return them in the order of a primary key or unique
    index over NOT NULL columns that covers exactly them, or None if there is none.
    """
    if not key:
        return None
    wanted = {c.name for c in key}
    candidates: list[Sequence[_Col]] = [list(table.primary_key.columns)]
    candidates += [list(i.columns) for i in table.indexes if i.unique]
    candidates += [list(c.columns) for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    for columns in candidates:
        if {c.name for c in columns} == wanted and not any(c.nullable for c in columns):
            by_name = {c.name: c for c in key}
            return tuple(by_name[c.name] for c in columns)
    return None


def _after(order: Sequence[_Col], last: Sequence[Any]) -> sa.ColumnElement[bool]:
    """Given the key columns and the last row's values, return "comes after that row".

    Written without row values, which SQL Server lacks; the leading ``>=`` lets any database
    use the index on the first column.
    """
    if len(order) == 1:
        after: sa.ColumnElement[bool] = order[0] > last[0]
        return after
    tie_breaks = [
        sa.and_(*(c == v for c, v in zip(order[:n], last[:n], strict=True)), order[n] > last[n])
        for n in range(1, len(order))
    ]
    return sa.and_(order[0] >= last[0], sa.or_(order[0] > last[0], *tie_breaks))


def _matches(columns: Sequence[Any], values: Sequence[tuple[Any, ...]]) -> sa.ColumnElement[bool]:
    """Given columns and value tuples, return "the columns hold one of the tuples"."""
    if len(columns) == 1:
        within: sa.ColumnElement[bool] = columns[0].in_([v[0] for v in values])
        return within
    return sa.or_(*(sa.and_(*(c == v for c, v in zip(columns, vs, strict=True))) for vs in values))


def _bound(column: _Col, cutoff: datetime, tz: tzinfo) -> Any:
    """Given an aware cutoff, return it in the column's convention for comparing in SQL."""
    if isinstance(column.type, sa.DateTime):
        return cutoff if _is_aware(column) else cutoff.astimezone(tz).replace(tzinfo=None)
    return cutoff.astimezone(tz).date()


def _clock(value: Any, tz: tzinfo) -> datetime | None:
    """Given a date or timestamp read from the database, return the aware clock start."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=tz)
    return None


class _Reader:
    """Turns the rows a plan selects into items."""

    def __init__(
        self, plan: _Plan, at: Mapping[_Col, int], clock_at: int | None, tz: tzinfo
    ) -> None:
        self._key = [at[c] for c in plan.key]
        self._subject = at[plan.subject] if plan.subject is not None else None
        self._clock = clock_at
        self._extra = [at[c] for c in plan.fingerprint]
        self._clock_name = plan.clock.name if plan.clock is not None else ""
        self._tz = tz

    def item(self, row: sa.Row[Any], dependents: dict[str, int] | None) -> ScannedItem:
        key = [row[i] for i in self._key]
        subject = row[self._subject] if self._subject is not None else None
        raw = row[self._clock] if self._clock is not None else None
        clock = problem = None
        if self._clock is not None:
            if raw is None:
                problem = f"clock column {self._clock_name} is NULL"
            elif (clock := _clock(raw, self._tz)) is None:
                problem = f"clock column {self._clock_name} holds {raw!r}, not a date"
        signed = (*key, subject, raw, *[row[i] for i in self._extra])
        return ScannedItem(
            encode_key(key),
            str(subject).strip() if subject is not None else None,
            clock,
            fingerprint(signed),
            None,
            {"dependents": dependents} if dependents is not None else None,
            problem,
        )


class _Index:
    """Maps values read back from the database to what was asked for.

    Falls back to a loose match (trailing blanks and case ignored) for CHAR padding and
    case-insensitive collations, where the database returns another spelling than was sent.
    """

    def __init__(self) -> None:
        self._exact: dict[tuple[Any, ...], list[Any]] = {}
        self._loose: dict[tuple[Any, ...], list[Any]] = {}

    @staticmethod
    def _loosen(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v.rstrip().casefold() if isinstance(v, str) else v for v in values)

    def add(self, values: tuple[Any, ...], target: Any) -> None:
        self._exact.setdefault(values, []).append(target)
        self._loose.setdefault(self._loosen(values), []).append(target)

    def keys(self) -> list[tuple[Any, ...]]:
        return list(self._exact)

    def get(self, values: tuple[Any, ...]) -> list[Any]:
        found = self._exact.get(values)
        return found if found is not None else self._loose.get(self._loosen(values), [])


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _did_you_mean(name: str, candidates: Sequence[str], prefix: str = "") -> str:
    same = [c for c in candidates if c.casefold() == name.casefold() and c != name]
    close = same + difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    close = list(dict.fromkeys(close))[:3]
    if not close:
        return ""
    return " (did you mean " + ", ".join(repr(prefix + c) for c in close) + "?)"
