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

Acting (``lookup`` re-reads items by key exactly as ``scan`` reads them; ``act`` changes them):

* one transaction per batch of up to ``BATCH`` items: the rows are read and locked
  (``SELECT … FOR UPDATE``; a row that is gone or no longer meets the location's conditions is
  ``gone``), then each dependent table is emptied of their rows with one DELETE per batch,
  deepest first (nested dependents through a join: ``DELETE … USING`` / ``FROM``, or
  ``IN (SELECT …)`` on SQLite), then the rows themselves; ``anonymise`` is one UPDATE;
* if that transaction fails (a FOREIGN KEY from a table the RoPA does not declare, a lock
  timeout, a lost connection), each item is tried again in a transaction of its own, so an item
  is deleted whole or not at all and one bad item fails alone;
* SQLite connections turn ``PRAGMA foreign_keys`` on, which SQLite otherwise leaves off;
* keys are matched in the way each database finds a thousand of them fastest (see ``_in``);
  on PostgreSQL the DELETEs also return what they deleted per item.

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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.mssql import DATETIMEOFFSET
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, make_url

from connectors import _sqldiscovery
from connectors.base import (
    ActRequest,
    Connector,
    ConnectorContext,
    DiscoveredStore,
    DiscoverRequest,
    LocationModel,
    NotDueSummary,
    Outcome,
    Sample,
    SampleRequest,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from sweeper.errors import (
    ActionUnsupported,
    ConnectorError,
    LocationInvalid,
    SystemUnreachable,
)
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

_GIVE_UP = 3
"""Items retried one by one that fail in a row, not for their data, before ``act`` gives up."""

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
        self._discovery_engines: dict[str, sa.Engine] = {}
        self._discovery_cache: dict[str, Any] = {}

    # -- connection -----------------------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, created on first use (read-only when the context says so)."""
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self, database: str | None = None) -> sa.Engine:
        """Return a new engine for the system's URL (with another database on the same server
        when ``database`` is given, for discovery)."""
        settings = self.system.connection
        try:
            url = make_url(settings.url)
        except sa_exc.ArgumentError as err:
            raise ConnectorError(self.system.id, f"invalid URL: {err}") from err
        if database is not None:
            url = url.set(database=database)
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
        if backend == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_foreign_keys)
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
        for engine in self._discovery_engines.values():
            engine.dispose()
        self._discovery_engines.clear()

    # -- discovery (see connectors._sqldiscovery) ------------------------------------------------

    def discover(self, request: DiscoverRequest) -> Iterator[DiscoveredStore | ScanFinding]:
        """Stream the tables (and materialised views) as stores with row counts (exact below
        ``exact_count_below``, else the catalog's estimate), sizes, columns and age, and an
        ``uninspectable`` finding for each table this login cannot read."""
        return _sqldiscovery.discover(self, request)

    def sample(self, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
        """Read up to ``request.rows`` rows of a discovered table (text cut short, binary
        columns left out)."""
        return _sqldiscovery.sample(self, request)

    def scope(self, request: DiscoverRequest) -> tuple[str, ...]:
        """Return the place discovery reaches: the database, or with ``databases`` the server."""
        return _sqldiscovery.scope(self, request)

    def locate(self, store: DiscoveredStore) -> tuple[str, ...]:
        """Return a table's place: ``("sql", server, database, schema, table)``."""
        return _sqldiscovery.locate(self, store)

    def coverage(self, location: Any, place: tuple[str, ...], store: DiscoveredStore) -> str:
        """Return whether the location covers the table at ``place``: its own table and its
        dependent tables fully, or partly when the location has ``where`` conditions."""
        return _sqldiscovery.coverage(self, location, place, store)

    def _discovery_engine(self, database: str) -> sa.Engine:
        """Return an engine for another database on the same server (read-only as the rest)."""
        engine = self._discovery_engines.get(database)
        if engine is None:
            engine = self._discovery_engines[database] = self._create_engine(database)
        return engine

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

    def _plan(self, location: LocationModel, clock: Clock | None) -> _Plan:
        """Given a location and its clock (None when acting, which reads no clock), return it
        resolved against the database. Raise LocationInvalid naming every unknown name.
        """
        if not isinstance(location, SqlLocation):
            raise LocationInvalid(self.system.id, "a SQL system needs a location with a table")
        cache_key = location.model_dump_json() + repr(clock)
        if (plan := self._plans.get(cache_key)) is not None:
            return plan
        problems: list[str] = []
        if clock is not None and not isinstance(clock, ColumnClock | EventClock):
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
        stmt, position, clock_at = self._item_select(plan)
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

    def _item_select(self, plan: _Plan) -> tuple[sa.Select[Any], dict[_Col, int], int | None]:
        """Given a plan, return the SELECT of its items' columns (under its conditions), the
        position of each selected column, and the position of the clock as stored.

        ``scan`` and ``lookup`` both read rows through it, so they fingerprint the same values.
        """
        selected = plan.selected
        position = {c: i for i, c in enumerate(selected)}
        stmt = sa.select(*selected).where(*plan.where)
        clock_at = position.get(plan.clock) if plan.clock is not None else None
        if plan.clock is not None and (clock_at is None or self._parses_dates_in_python):
            stmt = stmt.add_columns(self._as_stored(plan.clock))
            clock_at = len(selected)
        return stmt, position, clock_at

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
                    .where(self._in(group, chunk))
                    .group_by(*group)
                )
                for *found, count in conn.execute(stmt):
                    for i in index.get(tuple(found)):
                        counts[i][chain[-1].name] += int(count)
        return counts

    # -- lookup and act -------------------------------------------------------------------------

    def lookup(
        self, location: LocationModel, clock: Clock, tz: tzinfo, keys: Sequence[str]
    ) -> dict[str, ScannedItem]:
        """Given item keys, return the items that still exist, read as ``scan`` reads them.

        One SELECT per ``BATCH`` keys. Each item has the same key, subject, clock and
        fingerprint that a scan would give it now (but no dependent counts). A row that is gone,
        or no longer meets the location's conditions, is absent. Works on a read-only
        connector. Raise LocationInvalid if a key does not fit the location's key columns.
        """
        plan = self._plan(location, clock)
        wanted = self._wanted(plan, keys)
        stmt, position, clock_at = self._item_select(plan)
        reader = _Reader(plan, position, clock_at, tz)
        key_at = [position[c] for c in plan.key]
        found: dict[str, ScannedItem] = {}
        try:
            with self.engine.connect() as conn:
                for chunk in _chunks(wanted.keys(), _per_statement(plan.key)):
                    for row in conn.execute(stmt.where(self._in(plan.key, chunk))):
                        item = reader.item(row, None)
                        for key in wanted.get(tuple(row[i] for i in key_at)):
                            found[key] = item._replace(key=key)
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"lookup in {plan.table.fullname!r} failed") from err
        except ValueError as err:
            raise ConnectorError(
                self.system.id,
                f"lookup in {plan.table.fullname!r} failed: a value does not fit its column: {err}",
            ) from err
        return found

    def act(self, request: ActRequest) -> Iterator[Outcome]:
        """Delete or anonymise items; return an iterator of one Outcome per distinct key.

        ``delete`` removes each row with all its dependent rows, the deepest dependents first;
        ``anonymise`` sets the location's ``anonymise`` columns to NULL or their fixed value.
        Up to ``BATCH`` items share one transaction, with one statement per table. If that
        transaction fails, it is rolled back and each of its items is tried again in a
        transaction of its own, so one bad item (say, a row of a table the RoPA does not
        declare refers to it) fails alone and unchanged. A row that no longer exists, or no
        longer meets the location's conditions, is ``gone`` and left as it is.

        Everything is checked before the first change: raise ActionUnsupported on a read-only
        connector or for another action, LocationInvalid for an unknown or unusable column or
        a key that does not fit. While acting, raise SystemUnreachable if the database cannot
        be reached; the items without an Outcome then are unchanged.
        """
        if self.context.read_only:
            raise ActionUnsupported(
                self.system.id, f"cannot {request.action}: the connector is read-only (dry run)"
            )
        if request.action not in ("delete", "anonymise"):
            raise ActionUnsupported(
                self.system.id,
                f"a SQL system cannot {request.action!r} rows: it can delete or anonymise them",
            )
        location = request.location
        plan = self._plan(location, None)
        values = self._anonymised(plan, location) if request.action == "anonymise" else None
        wanted = self._wanted(plan, request.keys)
        return self._act(plan, location, wanted, values)

    def _act(
        self,
        plan: _Plan,
        location: SqlLocation,
        wanted: _Index,
        values: Mapping[_Col, Any] | None,
    ) -> Iterator[Outcome]:
        for batch in _chunks(wanted.keys(), BATCH):
            try:
                outcomes = self._act_once(plan, location, wanted, batch, values)
            except _Failed:
                # Retry one by one: the transaction rolled back, so nothing of any item changed.
                yield from self._act_one_by_one(plan, location, wanted, batch, values)
                continue
            yield from outcomes

    def _act_one_by_one(
        self,
        plan: _Plan,
        location: SqlLocation,
        wanted: _Index,
        batch: Sequence[tuple[Any, ...]],
        values: Mapping[_Col, Any] | None,
    ) -> Iterator[Outcome]:
        """Act on each item in a transaction of its own; an item that fails is ``failed``.

        Raise SystemUnreachable if the connection is lost, ConnectorError if items keep
        failing for a reason that is not their data (a locked database, a lock that is not
        released), rather than wait out a timeout for every item.
        """
        streak = 0
        for one in batch:
            try:
                outcomes = self._act_once(plan, location, wanted, [one], values)
                streak = 0
            except _Failed as failed:
                if failed.disconnected:
                    raise SystemUnreachable(self.system.id, failed.message) from failed
                streak = 0 if failed.about_the_item else streak + 1
                if streak == _GIVE_UP:
                    raise ConnectorError(
                        self.system.id,
                        f"{_GIVE_UP} items in a row failed, the last with {failed.message}; "
                        "the items after them were left unchanged",
                    ) from failed
                outcomes = [Outcome(k, "failed", failed.message) for k in wanted.get(one)]
            yield from outcomes

    def _act_once(
        self,
        plan: _Plan,
        location: SqlLocation,
        wanted: _Index,
        batch: Sequence[tuple[Any, ...]],
        values: Mapping[_Col, Any] | None,
    ) -> list[Outcome]:
        """Given key values, act on their rows in one transaction; return their outcomes.

        Raise _Failed (after the rollback) if a statement or the commit fails, SystemUnreachable
        if no connection can be made.
        """
        references = [c for d in plan.dependents for c in d.references]
        selected = tuple(dict.fromkeys([*plan.key, *references]))
        position = {c: i for i, c in enumerate(selected)}
        columns: list[sa.ColumnElement[Any]] = list(selected)
        if plan.where:  # read whether each row still meets the conditions, in the same query
            columns.append(sa.case((sa.and_(*plan.where), 1), else_=0))
        try:
            conn = self.engine.connect()
        except sa_exc.SQLAlchemyError as err:
            raise self._error(err, f"cannot connect to act on {plan.table.fullname!r}") from err
        try:
            with conn, conn.begin():
                rows: list[sa.Row[Any]] = []
                with self._step(f"reading {location.table}"):
                    for chunk in _chunks(batch, _per_statement(plan.key)):
                        # Locked until the commit: no new dependent row can refer to them now.
                        stmt = sa.select(*columns).where(self._in(plan.key, chunk))
                        rows += conn.execute(stmt.with_for_update()).all()
                meets = [r for r in rows if not plan.where or r[len(selected)]]
                details: list[Mapping[str, Any]]
                if values is None:
                    counts = self._delete(conn, plan, location, position, meets)
                    # Items with the same counts share one (read-only) mapping.
                    shared: dict[tuple[tuple[str, int], ...], Mapping[str, Any]] = {}
                    details = [
                        shared.get(c) or shared.setdefault(c, {"rows": dict(c)}) for c in counts
                    ]
                else:
                    self._update(conn, plan, location, position, meets, values)
                    anonymised = sorted(c.name for c in values)
                    details = [{"rows": {location.table: 1}, "columns": anonymised}] * len(meets)
        except _Failed:
            raise
        except sa_exc.SQLAlchemyError as err:
            raise self._failed(err, "committing") from err
        n = len(plan.key)  # the key comes first in each row
        status: dict[str, Outcome] = {}
        for row in rows:
            for key in wanted.get(tuple(row[:n])):
                status[key] = Outcome(key, "gone", "no longer meets the location's conditions")
        for row, facts in zip(meets, details, strict=True):
            for key in wanted.get(tuple(row[:n])):
                status[key] = Outcome(key, "done", None, facts)
        return [
            status.get(key) or Outcome(key, "gone")
            for values_ in batch
            for key in wanted.get(values_)
        ]

    def _delete(
        self,
        conn: sa.Connection,
        plan: _Plan,
        location: SqlLocation,
        position: Mapping[_Col, int],
        rows: Sequence[sa.Row[Any]],
    ) -> list[tuple[tuple[str, int], ...]]:
        """Given locked rows, delete them with their dependent rows, deepest dependents first.

        Return per row the number of rows deleted from its table and each dependent table, as
        (table, count) pairs, the location's own table first, tables named as the location
        names them. On PostgreSQL the counts are read from the DELETEs (``RETURNING`` the
        column that leads to the row); elsewhere one grouped query per dependent table counts
        them beforehand.
        """
        if not rows:
            return []
        returning = self.engine.dialect.name == "postgresql"
        if not returning:
            with self._step("counting dependent rows"):
                counted = self._count_dependents(conn, plan, position, rows)
        # Per dependent table, the rows deleted for each of ``rows``.
        deleted = {chain[-1].name: [0] * len(rows) for chain in plan.chains}
        indexes: dict[tuple[_Col, ...], _Index] = {}
        for chain in sorted(plan.chains, key=len, reverse=True):
            top, name = chain[0], chain[-1].name
            if (owners := indexes.get(top.references)) is None:
                owners = indexes[top.references] = _Index()
                at = [position[c] for c in top.references]
                for i, row in enumerate(rows):
                    values = tuple(row[j] for j in at)
                    if None not in values:
                        owners.add(values, i)
            with self._step(f"deleting from {name}", chain[-1].table):
                for chunk in _chunks(owners.keys(), _per_statement(top.columns)):
                    stmt, owner = self._delete_chain(chain, chunk)
                    if not returning:
                        conn.execute(stmt)
                        continue
                    # Counted in the database: a thousand rows back, not one per deleted row.
                    gone = stmt.returning(*owner).cte("gone")
                    per_owner = sa.select(*gone.c, sa.func.count()).group_by(*gone.c)
                    for *found, n in conn.execute(per_owner).all():
                        for i in owners.get(tuple(found)):
                            deleted[name][i] += n
        keys = [tuple(row[position[c]] for c in plan.key) for row in rows]
        with self._step(f"deleting from {location.table}", plan.table):
            for chunk in _chunks(keys, _per_statement(plan.key)):
                conn.execute(sa.delete(plan.table).where(self._in(plan.key, chunk)))
        own = (location.table, 1)
        if not returning:
            return [(own, *dependents.items()) for dependents in counted]
        tables = list(deleted.items())
        return [(own, *((name, n[i]) for name, n in tables)) for i in range(len(rows))]

    def _delete_chain(
        self, chain: Sequence[_Dependent], values: Sequence[tuple[Any, ...]]
    ) -> tuple[sa.Delete, Sequence[sa.ColumnElement[Any]]]:
        """Given a path of dependents and the parent values its first one refers to, return
        the DELETE of the rows of its last table that belong to those parents, and the columns
        of the first dependent that hold those values (for ``RETURNING``).
        """
        top, last = chain[0], chain[-1]
        if len(chain) == 1:
            return sa.delete(last.table).where(self._in(top.columns, values)), top.columns
        # The tables in between, as aliases: a table may occur twice in a path.
        between = [d.table.alias() for d in chain[:-1]]
        links = [
            child.c[c.name] == parent.c[r.name]
            for level in range(1, len(chain) - 1)
            for child, parent in [(between[level], between[level - 1])]
            for c, r in zip(chain[level].columns, chain[level].references, strict=True)
        ]
        owner = [between[0].c[c.name] for c in top.columns]
        within = self._in(owner, values)
        parents = between[-1]
        if self.engine.dialect.name == "sqlite":
            # SQLite has no multi-table DELETE; its IN (SELECT …) is planned well.
            owners = sa.select(*(parents.c[r.name] for r in last.references)).where(*links, within)
            target = last.columns[0] if len(last.columns) == 1 else sa.tuple_(*last.columns)
            return sa.delete(last.table).where(target.in_(owners)), owner
        # A join (DELETE … USING, or FROM on SQL Server): MariaDB before 11.1 and MySQL before
        # 8.0.21 run a subquery in a DELETE once for every row of the table.
        own = [c == parents.c[r.name] for c, r in zip(last.columns, last.references, strict=True)]
        return sa.delete(last.table).where(*own, *links, within), owner

    def _in(
        self, columns: Sequence[sa.ColumnElement[Any]], values: Sequence[tuple[Any, ...]]
    ) -> sa.ColumnElement[bool]:
        """Given columns and value tuples, return "the columns hold one of the tuples", written
        so that each database finds a thousand tuples through the index quickly.

        * PostgreSQL: each column's values are one array parameter, ``= ANY(…)`` or
          ``IN (SELECT unnest(…), unnest(…))``: a short statement that psycopg prepares once
          (a thousand ``OR``-ed pairs take PostgreSQL over 100 ms to plan);
        * SQLite: ``IN (SELECT * FROM (VALUES …))`` for several columns (a plain row-value
          ``IN`` list scans the table, and a thousand ``OR``-ed pairs exceed its expression
          depth);
        * MySQL and MariaDB: a row-value ``IN`` list (ten times faster than ``OR``);
        * others (SQL Server has no row values): ``OR`` of ``AND``.
        """
        dialect = self.engine.dialect.name
        if dialect == "postgresql" and not any(
            isinstance(c.type, sa.types.NullType | ARRAY) for c in columns
        ):
            arrays = [
                sa.bindparam(None, [v[i] for v in values], type_=ARRAY(c.type))
                for i, c in enumerate(columns)
            ]
            if len(columns) == 1:
                within: sa.ColumnElement[bool] = columns[0] == sa.any_(arrays[0])
                return within
            return sa.tuple_(*columns).in_(sa.select(*(sa.func.unnest(a) for a in arrays)))
        if len(columns) == 1:
            return _matches(columns, values)
        if dialect == "sqlite":
            rows = ", ".join(
                "(" + ", ".join(f":v{i}_{j}" for j in range(len(columns))) + ")"
                for i in range(len(values))
            )
            # Only generated placeholders go into this text; the values are bound with the
            # columns' types. (SQLAlchemy's own VALUES names its columns, which SQLite refuses.)
            listed = sa.text(f"SELECT * FROM (VALUES {rows})").bindparams(  # noqa: S608
                *(
                    sa.bindparam(f"v{i}_{j}", value, type_=column.type)
                    for i, row in enumerate(values)
                    for j, (column, value) in enumerate(zip(columns, row, strict=True))
                )
            )
            return sa.tuple_(*columns).in_(listed.columns(*columns))
        if dialect in ("mysql", "mariadb"):
            return sa.tuple_(*columns).in_(values)
        return _matches(columns, values)

    def _update(
        self,
        conn: sa.Connection,
        plan: _Plan,
        location: SqlLocation,
        position: Mapping[_Col, int],
        rows: Sequence[sa.Row[Any]],
        values: Mapping[_Col, Any],
    ) -> None:
        keys = [tuple(row[position[c]] for c in plan.key) for row in rows]
        with self._step(f"anonymising {location.table}"):
            for chunk in _chunks(keys, _per_statement(plan.key)):
                stmt = sa.update(plan.table).where(self._in(plan.key, chunk)).values(values)
                conn.execute(stmt)

    def _anonymised(self, plan: _Plan, location: SqlLocation) -> dict[_Col, Any]:
        """Given a location, return its anonymise columns with their typed new values.

        Raise LocationInvalid if it has none, or one is unknown, a key column, NOT NULL but
        to be NULL, unique but to hold one fixed value, or given a value it cannot hold.
        """
        name = location.table
        problems: list[str] = []
        if not location.anonymise:
            problems.append(
                f"location {name!r} has no columns to anonymise: list them under 'anonymise'"
            )
        keys = {c.name for c in (*plan.key, *plan.table.primary_key.columns)}
        values: dict[_Col, Any] = {}
        for spelled, value in location.anonymise.items():
            column = self._column(plan.table, name, spelled, "anonymise", problems)
            if column is None:
                continue
            if column.name in keys:
                problems.append(
                    f"column {spelled!r} is part of the key of {name!r} and cannot be anonymised"
                )
                continue
            try:
                typed = _coerce(value, column)
            except ValueError as err:
                problems.append(f"anonymise value for column {spelled!r} of {name!r}: {err}")
                continue
            if typed is None and not column.nullable:
                problems.append(
                    f"column {spelled!r} of {name!r} is NOT NULL: give a fixed value, not null"
                )
            elif typed is not None and _unique(plan.table, column):
                problems.append(
                    f"column {spelled!r} of {name!r} is unique: one fixed value would clash "
                    "from the second row on; use null"
                )
            else:
                values[column] = typed
        self._raise(problems)
        return values

    def _wanted(self, plan: _Plan, keys: Sequence[str]) -> _Index:
        """Given item keys, return an index from their typed key values to the keys.

        Raise LocationInvalid naming the keys that do not fit the location's key columns.
        """
        wanted = _Index()
        problems: list[str] = []
        integer = len(plan.key) == 1 and _python_type(plan.key[0]) is int
        for key in dict.fromkeys(keys):
            try:
                if integer and key.isascii() and key.isdigit():  # the common case, quickly
                    wanted.add((int(key),), key)
                else:
                    wanted.add(decode_key(key, plan.key), key)
            except ValueError as err:
                problems.append(f"item key {key!r}: {err}")
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise LocationInvalid(
                self.system.id,
                f"keys that do not fit the key of {plan.table.fullname!r}: "
                + "; ".join(problems[:3])
                + more,
            )
        return wanted

    @contextmanager
    def _step(self, doing: str, deleting: sa.Table | None = None) -> Iterator[None]:
        """Turn a SQLAlchemy error in the block into _Failed, saying what was being done."""
        try:
            yield
        except sa_exc.SQLAlchemyError as err:
            failed = self._failed(err, doing)
            if (
                deleting is not None
                and isinstance(err, sa_exc.IntegrityError)
                and self.engine.dialect.name == "sqlite"
            ):
                # SQLite's message names no table; name those that can refer to the rows.
                failed.message += self._referrers(deleting)
            raise failed from err

    def _referrers(self, table: sa.Table) -> str:
        """Given a table, return a remark naming the tables with a foreign key to it."""
        try:
            with self.engine.connect() as conn:
                inspector = sa.inspect(conn)
                found = [
                    name
                    for name in inspector.get_table_names(table.schema)
                    for fk in inspector.get_foreign_keys(name, table.schema)
                    if fk["referred_table"] == table.name
                ]
        except sa_exc.SQLAlchemyError:
            return ""  # only a hint: the failure itself is already reported
        names = ", ".join(dict.fromkeys(found))
        return f" (tables with a foreign key to {table.name}: {names})" if names else ""

    def _failed(self, err: sa_exc.SQLAlchemyError, doing: str) -> _Failed:
        disconnected = isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated
        about_the_item = isinstance(err, sa_exc.IntegrityError | sa_exc.DataError)
        return _Failed(f"{doing}: {self._reason(err)}", disconnected, about_the_item)

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


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite enforces FOREIGN KEY constraints only on connections that ask for it: without
    # this a delete would leave the rows of an undeclared dependent pointing at nothing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


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


class _Failed(Exception):
    """A transaction of ``act`` failed and was rolled back; ``message`` is redacted.

    ``disconnected``: the connection was lost. ``about_the_item``: the database refused the
    change for the rows' data (a constraint), not for the state of the database.
    """

    def __init__(self, message: str, disconnected: bool, about_the_item: bool) -> None:
        super().__init__(message)
        self.message = message
        self.disconnected = disconnected
        self.about_the_item = about_the_item


def _per_statement(columns: Sequence[_Col]) -> int:
    """Given the columns an IN list matches, return how many value tuples one statement takes."""
    return max(1, min(BATCH, _MAX_PARAMETERS // max(1, len(columns))))


def _unique(table: sa.Table, column: _Col) -> bool:
    """Given a table and one of its columns, return whether the column alone must be unique."""
    sets = [i.columns for i in table.indexes if i.unique]
    sets += [c.columns for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    return bool(column.unique) or any(len(cols) == 1 and column.name in cols for cols in sets)


class _Index:
    """Maps values read back from the database to what was asked for.

    Falls back to a loose match (trailing blanks and case ignored) for CHAR padding and
    case-insensitive collations, where the database returns another spelling than was sent.
    """

    # Targets are kept in tuples, not lists: a batch holds thousands, and tuples of plain
    # values are left alone by the garbage collector.

    def __init__(self) -> None:
        self._exact: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._loose: dict[tuple[Any, ...], tuple[Any, ...]] | None = None  # on the first miss

    @staticmethod
    def _loosen(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v.rstrip().casefold() if isinstance(v, str) else v for v in values)

    def add(self, values: tuple[Any, ...], target: Any) -> None:
        self._exact[values] = (*self._exact.get(values, ()), target)
        self._loose = None

    def keys(self) -> list[tuple[Any, ...]]:
        return list(self._exact)

    def get(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        found = self._exact.get(values)
        if found is not None:
            return found
        if self._loose is None:
            self._loose = {}
            for exact, targets in self._exact.items():
                loose = self._loosen(exact)
                self._loose[loose] = (*self._loose.get(loose, ()), *targets)
        return self._loose.get(self._loosen(values), ())


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    return (items[i : i + size] for i in range(0, len(items), size))


def _did_you_mean(name: str, candidates: Sequence[str], prefix: str = "") -> str:
    same = [c for c in candidates if c.casefold() == name.casefold() and c != name]
    close = same + difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    close = list(dict.fromkeys(close))[:3]
    if not close:
        return ""
    return " (did you mean " + ", ".join(repr(prefix + c) for c in close) + "?)"
