"""Discovery for the SQL connector: tables with row counts, sizes, columns and age; bounded
samples of their rows; which locations cover which tables.

Counts: where the database keeps a catalog estimate (PostgreSQL ``pg_class.reltuples``,
MariaDB/MySQL ``information_schema.tables.table_rows``) a table whose estimate is below
``exact_count_below`` is counted exactly with ``COUNT(*)`` and a larger one keeps the
estimate; a table PostgreSQL has never analysed is counted exactly. SQLite and other databases
(SQL Server through SQLAlchemy's inspector) are always counted exactly. Each store says which
(``details.count``: ``exact`` or ``estimate``).

Rights: PostgreSQL's catalogs show every table and its columns, also those the login may not
read; such a table is a store with its estimate and column names and an ``uninspectable``
finding. MariaDB and MySQL show only tables the login has some right on; one it may not
``SELECT`` becomes ``uninspectable`` when it is counted or sampled. Nothing is ever written:
the connection is read-only (see ``connectors.sql``).

Age: the smallest and largest value of up to three date or timestamp columns (``created``,
``modified`` and similar first; birth dates never, since they are no age of the data), for
tables counted exactly.

Places (``locate``): ``("sql", server, database, schema, table)`` where the server is the URL's
dialect, host and port (``postgresql://db:5432``), a SQLite file's database is its real path,
and MariaDB/MySQL's database is ``def`` (their schemas are databases). Two systems whose URLs
name the same server differently (``localhost``, ``127.0.0.1``) are different places.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from connectors.base import (
    FULL,
    NONE,
    PARTIAL,
    DiscoveredStore,
    DiscoverRequest,
    Sample,
    SampleRequest,
    ScanFinding,
)
from sweeper.errors import ConnectorError, SystemUnreachable
from sweeper.ropa.model import Dependent, SqlLocation

if TYPE_CHECKING:
    from connectors.sql import SqlConnector

_SYSTEM_SCHEMAS = {
    "postgresql": {"pg_catalog", "information_schema"},
    "mysql": {"information_schema", "mysql", "performance_schema", "sys"},
    "mssql": {
        "sys",
        "INFORMATION_SCHEMA",
        "guest",
        "db_owner",
        "db_accessadmin",
        "db_securityadmin",
        "db_ddladmin",
        "db_backupoperator",
        "db_datareader",
        "db_datawriter",
        "db_denydatareader",
        "db_denydatawriter",
    },
}
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}
_BINARY = re.compile(r"bytea|blob|binary|image|raw|geometry|geography", re.I)
_TEMPORAL = re.compile(r"date|time(?!zone)|interval", re.I)
_TEXT = re.compile(r"char|text|clob|string|json|xml|citext|name", re.I)
_BIRTH = re.compile(r"geboorte|birth|(^|_)dob($|_)|(^|_)geb($|_)", re.I)
_AGE_FIRST = re.compile(
    r"creat|aangemaakt|insert|regist|ingeschreven|modif|updat|gewijzigd|mutati|datum|date", re.I
)
_MAX_COLUMNS = 200
_MAX_TEXT = 4096


@dataclass
class _Table:
    """A table as the catalog describes it."""

    database: str | None  # None: the connection's own database
    schema: str | None  # None: SQLite's only schema
    name: str
    estimate: int | None = None
    size: int | None = None
    readable: bool | None = None  # None: not known until it is read
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, kind)
    key: list[str] = field(default_factory=list)


def _kind(type_name: str) -> str:
    """Given a column's type as the catalog spells it, return binary, temporal, text, other."""
    if _BINARY.search(type_name):
        return "binary"
    if _TEMPORAL.search(type_name):
        return "temporal"
    if _TEXT.search(type_name):
        return "text"
    return "other"


def dialect(connector: SqlConnector) -> str:
    """Return the connection's dialect family: postgresql, mysql (also MariaDB), sqlite, …."""
    name = make_url(connector.system.connection.url).get_backend_name()
    return "mysql" if name in ("mysql", "mariadb") else name


def server(connector: SqlConnector) -> str:
    """Return the server's name in places: dialect, host and port (a SQLite file: sqlite)."""
    url = make_url(connector.system.connection.url)
    family = dialect(connector)
    if family == "sqlite":
        return "sqlite"
    port = url.port or _DEFAULT_PORTS.get(family)
    in_query = url.query.get("host")
    host = (url.host or (in_query if isinstance(in_query, str) else "") or "localhost").lower()
    return f"{family}://{host}:{port}" if port else f"{family}://{host}"


def own_database(connector: SqlConnector) -> str:
    """Return the connection's database as places name it."""
    family = dialect(connector)
    url = make_url(connector.system.connection.url)
    if family == "sqlite":
        database = url.database or ""
        if database.startswith("file:"):
            database = database[5:].split("?")[0]
        return os.path.realpath(os.path.join(connector.context.base_dir, database))
    if family == "mysql":
        return "def"
    return url.database or url.username or ""


def default_schema(connector: SqlConnector) -> str:
    """Return the schema an unqualified table name refers to (asked once)."""
    cached: str | None = connector._discovery_cache.get("default_schema")
    if cached is not None:
        return cached
    family = dialect(connector)
    if family == "sqlite":
        schema = "main"
    else:
        query = {
            "postgresql": "SELECT current_schema()",
            "mysql": "SELECT DATABASE()",
            "mssql": "SELECT SCHEMA_NAME()",
        }.get(family)
        schema = ""
        if query is not None:
            try:
                with connector.engine.connect() as conn:
                    schema = conn.execute(sa.text(query)).scalar() or ""
            except sa_exc.SQLAlchemyError as err:
                raise connector._error(err, "cannot read the default schema") from err
    connector._discovery_cache["default_schema"] = schema
    return schema


def scope(connector: SqlConnector, request: DiscoverRequest) -> tuple[str, ...]:
    """Return the place discovery with ``request`` reaches."""
    databases = list(request.options.get("databases") or ())
    family = dialect(connector)
    if family == "mysql":
        if databases:
            return ("sql", server(connector), "def")
        return ("sql", server(connector), "def", default_schema(connector))
    if databases and family == "postgresql":
        return ("sql", server(connector))
    return ("sql", server(connector), own_database(connector))


def locate(connector: SqlConnector, store: DiscoveredStore) -> tuple[str, ...]:
    details = store.details or {}
    database = details.get("database") or own_database(connector)
    if dialect(connector) == "mysql":
        database = "def"
    return ("sql", server(connector), database, details.get("schema") or "main", details["table"])


def coverage(
    connector: SqlConnector, location: Any, place: tuple[str, ...], store: DiscoveredStore
) -> str:
    """Given a location of this system and a table's place, return FULL, PARTIAL or NONE: the
    location's table and its dependents are covered, partly when the location filters rows.
    """
    if not isinstance(location, SqlLocation) or store.kind != "table" or len(place) != 5:
        return NONE
    if place[:3] != ("sql", server(connector), own_database(connector)):
        return NONE
    fold = dialect(connector) != "postgresql"  # the others compare names without case
    wanted = (place[3], place[4])
    filtered = bool(location.where)
    for spelled, _ in _tables_of(location.table, location.dependents):
        schema, _, table = spelled.rpartition(".")
        mine = (schema or default_schema(connector), table)
        if _same(mine, wanted, fold):
            return PARTIAL if filtered else FULL
    return NONE


def _tables_of(table: str, dependents: Sequence[Dependent]) -> Iterator[tuple[str, int]]:
    yield table, 0
    for dependent in dependents:
        for name, depth in _tables_of(dependent.table, dependent.dependents):
            yield name, depth + 1


def _same(a: tuple[str, str], b: tuple[str, str], fold: bool) -> bool:
    if fold:
        return a[0].casefold() == b[0].casefold() and a[1].casefold() == b[1].casefold()
    return a == b


# -- discover -----------------------------------------------------------------------------------


def discover(
    connector: SqlConnector, request: DiscoverRequest
) -> Iterator[DiscoveredStore | ScanFinding]:
    """Stream the tables of the connection's database (and, with ``databases``, of others on
    the same server) as stores, and a finding for each that cannot be inspected."""
    family = dialect(connector)
    threshold = int(request.options.get("exact_count_below", 100_000))
    schemas = set(request.options.get("schemas") or ())
    databases = list(request.options.get("databases") or ())
    tz = ZoneInfo(connector.system.timezone) if connector.system.timezone else UTC
    engines: list[tuple[str | None, sa.Engine]] = [(None, connector.engine)]
    if family == "postgresql" and databases:
        own = own_database(connector)
        for name in _pg_databases(connector, databases):
            if name == own or _skipped(request, ("sql", server(connector), name)):
                continue
            engines.append((name, connector._discovery_engine(name)))
    for database, engine in engines:
        try:
            with engine.connect() as conn:
                tables = _catalog(conn, family, database, schemas, databases)
                for table in tables:
                    yield from _store(connector, conn, table, request, threshold, tz)
                    request.listed(1)
        except sa_exc.SQLAlchemyError as err:
            if database is None:
                raise connector._error(err, "discovery failed") from err
            yield ScanFinding(
                "uninspectable",
                f"{database}/",
                f"database {database!r} cannot be inspected: {connector._reason(err)}",
            )


def _pg_databases(connector: SqlConnector, wanted: list[str]) -> list[str]:
    query = sa.text(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
        "AND has_database_privilege(datname, 'CONNECT') ORDER BY datname"
    )
    try:
        with connector.engine.connect() as conn:
            names = [row[0] for row in conn.execute(query)]
    except sa_exc.SQLAlchemyError as err:
        raise connector._error(err, "cannot list the server's databases") from err
    return names if "*" in wanted else [n for n in names if n in wanted]


def _skipped(request: DiscoverRequest, place: tuple[str, ...]) -> bool:
    return any(place[: len(skip)] == skip for skip in request.skip)


def _where(table: _Table) -> str:
    name = table.name if table.schema is None else f"{table.schema}.{table.name}"
    return name if table.database is None else f"{table.database}/{name}"


def _catalog(
    conn: sa.Connection,
    family: str,
    database: str | None,
    schemas: set[str],
    databases: list[str],
) -> list[_Table]:
    if family == "postgresql":
        tables = _pg_catalog(conn, database)
    elif family == "mysql":
        tables = _mysql_catalog(conn, databases)
    else:
        tables = _inspector_catalog(conn, family, database)
    if schemas:
        tables = [t for t in tables if t.schema in schemas or t.schema is None]
    return tables


def _pg_catalog(conn: sa.Connection, database: str | None) -> list[_Table]:
    rows = conn.execute(
        sa.text(
            "SELECT c.oid, n.nspname, c.relname, "
            "CASE WHEN c.relkind = 'p' THEN (SELECT sum(greatest(p.reltuples, 0)) "
            "  FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid "
            "  WHERE t.isleaf) ELSE c.reltuples END, "
            "CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(t.relid)) "
            "  FROM pg_partition_tree(c.oid) t) ELSE pg_total_relation_size(c.oid) END, "
            "has_table_privilege(c.oid, 'SELECT') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
            "ORDER BY n.nspname, c.relname"
        )
    ).all()
    tables: dict[int, _Table] = {}
    for oid, schema, name, estimate, size, readable in rows:
        # reltuples is -1 (PostgreSQL 14+) for a table never vacuumed or analysed.
        known = None if estimate is None or estimate < 0 else int(estimate)
        tables[oid] = _Table(database, schema, name, known, int(size or 0), bool(readable))
    if not tables:
        return []
    columns = conn.execute(
        sa.text(
            "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), "
            "coalesce(a.attnum = ANY(k.conkey), false) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_constraint k ON k.conrelid = a.attrelid AND k.contype = 'p' "
            "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY a.attrelid, a.attnum"
        )
    )
    for oid, name, type_name, in_key in columns:
        table = tables.get(oid)
        if table is not None:
            table.columns.append((name, _kind(type_name)))
            if in_key:
                table.key.append(name)
    return list(tables.values())


def _mysql_catalog(conn: sa.Connection, databases: list[str]) -> list[_Table]:
    system = sorted(_SYSTEM_SCHEMAS["mysql"])
    if "*" in databases:
        scope = sa.text("table_schema NOT IN :system").bindparams(
            sa.bindparam("system", system, expanding=True)
        )
    else:
        scope = sa.text("(table_schema = DATABASE() OR table_schema IN :wanted)").bindparams(
            sa.bindparam("wanted", databases or [""], expanding=True)
        )
    tables: dict[tuple[str, str], _Table] = {}
    rows: Any = conn.execute(
        sa.select(
            sa.column("table_schema"),
            sa.column("table_name"),
            sa.column("table_rows"),
            sa.column("data_length"),
            sa.column("index_length"),
        )
        .select_from(sa.table("tables", schema="information_schema"))
        .where(sa.column("table_type") == "BASE TABLE", scope)
        .order_by(sa.column("table_schema"), sa.column("table_name"))
    )
    for schema, name, estimate, data, index in rows:
        size = None if data is None else int(data) + int(index or 0)
        estimate = None if estimate is None else int(estimate)
        tables[(schema, name)] = _Table(None, schema, name, estimate, size)
    if not tables:
        return []
    columns: Any = conn.execute(
        sa.select(
            sa.column("table_schema"),
            sa.column("table_name"),
            sa.column("column_name"),
            sa.column("column_type"),
            sa.column("column_key"),
        )
        .select_from(sa.table("columns", schema="information_schema"))
        .where(scope)
        .order_by(sa.column("table_schema"), sa.column("table_name"), sa.column("ordinal_position"))
    )
    for schema, name, column, type_name, key in columns:
        table = tables.get((schema, name))
        if table is not None:
            table.columns.append((column, _kind(str(type_name))))
            if key == "PRI":
                table.key.append(column)
    return list(tables.values())


def _inspector_catalog(conn: sa.Connection, family: str, database: str | None) -> list[_Table]:
    inspector = sa.inspect(conn)
    if family == "sqlite":
        schemas: list[str | None] = [None]
    else:
        skip = _SYSTEM_SCHEMAS.get(family, set())
        schemas = [s for s in inspector.get_schema_names() if s not in skip]
    tables = []
    for schema in schemas:
        for name in inspector.get_table_names(schema):
            if family == "sqlite" and name.startswith("sqlite_"):
                continue
            table = _Table(database, schema, name)
            for column in inspector.get_columns(name, schema):
                table.columns.append((column["name"], _kind(str(column["type"]))))
            primary = inspector.get_pk_constraint(name, schema)
            table.key = list(primary.get("constrained_columns") or [])
            tables.append(table)
    return tables


def _store(
    connector: SqlConnector,
    conn: sa.Connection,
    table: _Table,
    request: DiscoverRequest,
    threshold: int,
    tz: tzinfo,
) -> Iterator[DiscoveredStore | ScanFinding]:
    where = _where(table)
    if any(fnmatch.fnmatchcase(where, pattern) for pattern in request.exclude):
        return
    details: dict[str, Any] = {
        "database": table.database,
        "schema": table.schema,
        "table": table.name,
        "columns": [name for name, _ in table.columns[:_MAX_COLUMNS]],
        "key": table.key,
    }
    probe = DiscoveredStore("table", where, details=details)
    if _skipped(request, locate(connector, probe)):
        return
    _remember_kinds(connector, table)
    items, counted = table.estimate, "estimate"
    oldest = newest = None
    problem = None
    if table.readable is not False:
        target = sa.table(table.name, schema=table.schema)
        try:
            if items is None or items < threshold:
                items = conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one()
                counted = "exact"
                oldest, newest = _age(conn, table, target, tz)
            table.readable = True
        except sa_exc.SQLAlchemyError as err:
            if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
                raise SystemUnreachable(
                    connector.system.id, f"lost the connection: {connector._reason(err)}"
                ) from err
            conn.rollback()
            table.readable = False
            problem = connector._reason(err)
    details["count"] = counted if items is not None else None
    details["readable"] = table.readable
    details["age_from"] = _age_columns(table) if oldest is not None else []
    yield DiscoveredStore("table", where, items, table.size, oldest, newest, None, details)
    if table.readable is False:
        yield ScanFinding(
            "uninspectable",
            where,
            f"table {where} cannot be read by this login"
            + (f" ({problem})" if problem else " (no SELECT right on it)")
            + ": its rows were not counted or sampled; grant SELECT to inspect it",
        )


def _age_columns(table: _Table) -> list[str]:
    temporal = [n for n, kind in table.columns if kind == "temporal" and not _BIRTH.search(n)]
    temporal.sort(key=lambda n: 0 if _AGE_FIRST.search(n) else 1)
    return temporal[:3]


def _age(
    conn: sa.Connection, table: _Table, target: Any, tz: tzinfo
) -> tuple[datetime | None, datetime | None]:
    from connectors.sql import _clock

    names = _age_columns(table)
    if not names:
        return None, None
    columns: list[sa.ColumnClause[Any]] = [sa.column(n) for n in names]
    stmt = sa.select(*(f(c) for c in columns for f in (sa.func.min, sa.func.max))).select_from(
        target
    )
    row = conn.execute(stmt).one()
    moments = [m for m in (_clock(v, tz) for v in row) if m is not None]
    if not moments:
        return None, None
    return min(moments), max(moments)


# -- sample -------------------------------------------------------------------------------------


def sample(connector: SqlConnector, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
    """Read up to ``request.rows`` rows of a table, text values cut to 4,096 characters and
    binary columns left out."""
    store = request.store
    details = store.details or {}
    if store.kind != "table" or details.get("readable") is False or request.rows <= 0:
        return
    database = details.get("database")
    engine = connector.engine if database is None else connector._discovery_engine(database)
    names = [str(n) for n in details.get("columns") or []]
    kinds = dict(_column_kinds(connector, engine, details))
    wanted = [n for n in names if kinds.get(n) != "binary"][:_MAX_COLUMNS]
    if not wanted:
        return
    cut = sa.func.substr if dialect(connector) == "sqlite" else sa.func.substring
    columns = [
        cut(sa.column(n), 1, _MAX_TEXT).label(n) if kinds.get(n) == "text" else sa.column(n)
        for n in wanted
    ]
    stmt = (
        sa.select(*columns)
        .select_from(sa.table(details["table"], schema=details.get("schema")))
        .limit(request.rows)
    )
    try:
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(stmt)]
    except sa_exc.SQLAlchemyError as err:
        if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
            raise ConnectorError(
                connector.system.id, f"lost the connection: {connector._reason(err)}"
            ) from err
        yield ScanFinding(
            "uninspectable",
            store.where,
            f"table {store.where} cannot be sampled: {connector._reason(err)}",
        )
        return
    yield Sample(store.where, None, wanted, rows)


def _column_kinds(
    connector: SqlConnector, engine: sa.Engine, details: Any
) -> list[tuple[str, str]]:
    """Return the table's columns with their kinds (kept from discovery, else reflected)."""
    kinds: dict[str, list[tuple[str, str]]] = connector._discovery_cache.setdefault("kinds", {})
    key = f"{details.get('database')}/{details.get('schema')}.{details['table']}"
    if key not in kinds:
        with engine.connect() as conn:
            columns = sa.inspect(conn).get_columns(details["table"], details.get("schema"))
        kinds[key] = [(c["name"], _kind(str(c["type"]))) for c in columns]
    return kinds[key]


def _remember_kinds(connector: SqlConnector, table: _Table) -> None:
    kinds: dict[str, list[tuple[str, str]]] = connector._discovery_cache.setdefault("kinds", {})
    kinds[f"{table.database}/{table.schema}.{table.name}"] = table.columns
