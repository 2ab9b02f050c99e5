"""Discovery on real databases: tables, counts, age, rights, samples and what locations cover."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sql_databases import PG_URL, POSTGRES, SERVERS, Database, pg_reader_role

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
from sweeper.ropa.model import SqlConnection, SqlLocation, SqlSystem

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _request(db: Database, **options: Any) -> DiscoverRequest:
    if db.backend == "postgresql":
        options.setdefault("schemas", [db.schema])  # other tests' schemas share the database
    return DiscoverRequest(now=NOW, options=options)


def _discover(db: Database, **options: Any) -> tuple[dict[str, DiscoveredStore], list[ScanFinding]]:
    with db.connector() as connector:
        outputs = list(connector.discover(_request(db, **options)))
    stores = {(o.details or {})["table"]: o for o in outputs if isinstance(o, DiscoveredStore)}
    findings = [o for o in outputs if isinstance(o, ScanFinding)]
    return stores, findings


def _pupils(admin: sa.Engine, rows: int = 3) -> None:
    meta = sa.MetaData()
    pupils = sa.Table(
        "pupils",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("naam", sa.String(100)),
        sa.Column("bsn", sa.String(9)),
        sa.Column("geboortedatum", sa.Date),
        sa.Column("created_at", sa.DateTime),
        sa.Column("photo", sa.LargeBinary),
    )
    sa.Table("courses", meta, sa.Column("code", sa.String(10), primary_key=True))
    meta.create_all(admin)
    with admin.begin() as conn:
        conn.execute(
            pupils.insert(),
            [
                {
                    "id": n,
                    "naam": f"Leerling {n}",
                    "bsn": "123456782",
                    "geboortedatum": date(2010, 1, 1 + n % 28),
                    "created_at": datetime(2019 + n % 3, 8, 1, 9, 0),
                    "photo": b"\x89PNG",
                }
                for n in range(rows)
            ],
        )


def test_tables_are_found_with_exact_counts_columns_keys_and_age(db: Database) -> None:
    """Each table is a store with its exact row count, column names, key and the age of its
    rows from a date column (never from a birth date)."""
    _pupils(db.admin)
    stores, findings = _discover(db)
    assert findings == []
    assert set(stores) == {"pupils", "courses"}
    pupils = stores["pupils"]
    assert pupils.kind == "table"
    assert pupils.items == 3
    details = pupils.details or {}
    assert details["count"] == "exact"
    assert details["columns"] == ["id", "naam", "bsn", "geboortedatum", "created_at", "photo"]
    assert details["key"] == ["id"]
    assert details["age_from"] == ["created_at"]
    assert pupils.oldest is not None and pupils.oldest.year == 2019
    assert pupils.newest is not None and pupils.newest.year == 2021
    assert stores["courses"].items == 0
    expected = "pupils" if db.backend == "sqlite" else f"{db.schema}.pupils"
    assert pupils.where == expected


def test_each_table_is_reported_as_listed_once_it_is_counted(db: Database) -> None:
    """listed hears of each table once its store is given, one table at a time."""
    _pupils(db.admin)
    heard: list[int] = []
    given: list[DiscoveredStore] = []
    with db.connector() as connector:
        request = dataclasses.replace(_request(db), listed=lambda n: heard.append(len(given)))
        for out in connector.discover(request):
            if isinstance(out, DiscoveredStore):
                given.append(out)
    assert len(given) == 2 and heard == [1, 2]


@pytest.mark.parametrize("db", SERVERS, indirect=True)  # SQLite keeps no estimates
def test_a_table_above_the_threshold_keeps_the_catalog_estimate(db: Database) -> None:
    """A table whose catalog estimate is at or above exact_count_below is not counted."""
    _pupils(db.admin, rows=50)
    with db.admin.begin() as conn:
        conn.execute(
            sa.text("ANALYZE pupils" if db.backend == "postgresql" else "ANALYZE TABLE pupils")
        )
    stores, _ = _discover(db, exact_count_below=10)
    pupils = stores["pupils"]
    assert (pupils.details or {})["count"] == "estimate"
    assert pupils.items is not None and 25 <= pupils.items <= 100
    assert pupils.oldest is None  # the age is read only where counting is cheap


def test_exclude_patterns_leave_tables_out(db: Database) -> None:
    """A table matching an exclude pattern is not listed."""
    _pupils(db.admin)
    with db.connector() as connector:
        request = _request(db)
        request = DiscoverRequest(now=NOW, options=request.options, exclude=("*courses",))
        tables = {
            (o.details or {})["table"]
            for o in connector.discover(request)
            if isinstance(o, DiscoveredStore)
        }
    assert tables == {"pupils"}


def test_a_sample_reads_bounded_rows_without_binary_columns(db: Database) -> None:
    """A sample holds at most the requested rows, with every column but binary ones."""
    _pupils(db.admin, rows=20)
    stores, _ = _discover(db)
    with db.connector() as connector:
        out = list(connector.sample(SampleRequest(store=stores["pupils"], rows=5)))
    assert len(out) == 1 and isinstance(out[0], Sample)
    sample = out[0]
    assert sample.fields == ["id", "naam", "bsn", "geboortedatum", "created_at"]
    assert len(sample.rows) == 5
    assert all(row[2] == "123456782" for row in sample.rows)


def test_a_location_covers_its_table_and_its_dependents(db: Database) -> None:
    """A location covers its own table and its dependent tables fully, partly with a where
    condition, and no other table."""
    _pupils(db.admin)
    stores, _ = _discover(db)
    with db.connector() as connector:
        pupils, courses = stores["pupils"], stores["courses"]
        place = connector.locate(pupils)
        plain = SqlLocation(system="sis", table="pupils", key=["id"])
        qualified = SqlLocation(system="sis", table=f"{db.schema}.PUPILS", key=["id"])
        filtered = SqlLocation(
            system="sis", table="pupils", key=["id"], where=[{"column": "id", "value": 1}]
        )
        parent = SqlLocation(
            system="sis",
            table="other",
            key=["id"],
            dependents=[{"table": "courses", "columns": ["code"]}],
        )
        assert connector.coverage(plain, place, pupils) == FULL
        assert connector.coverage(filtered, place, pupils) == PARTIAL
        assert connector.coverage(plain, connector.locate(courses), courses) == NONE
        assert connector.coverage(parent, connector.locate(courses), courses) == FULL
        # Only PostgreSQL tells names apart by case.
        expected = NONE if db.backend == "postgresql" else FULL
        if db.backend != "sqlite":
            assert connector.coverage(qualified, place, pupils) == expected


@pytest.fixture
def pg_role(postgres_database: str) -> Iterator[tuple[str, str, str]]:
    """A PostgreSQL login role in a schema of its own, allowed to read only table 'allowed'."""
    with pg_reader_role(postgres_database) as (role, schema):
        yield role, schema, postgres_database


@pytest.mark.postgres
def test_a_table_without_select_rights_is_a_finding_of_its_own(
    pg_role: tuple[str, str, str],
) -> None:
    """A PostgreSQL table the login may not read is listed with its columns and an
    'uninspectable' finding; the others are counted as usual and nothing fails."""
    role, schema, database = pg_role
    url = f"postgresql+psycopg://{role}@127.0.0.1:5432/{database}"
    db = Database("postgresql", url, sa.create_engine(url), Path("/"), schema)
    try:
        stores, findings = _discover(db)
    finally:
        db.admin.dispose()
    assert stores["allowed"].items == 0
    secret = stores["secret"]
    assert (secret.details or {})["readable"] is False
    assert (secret.details or {})["columns"] == ["id", "bsn"]
    assert secret.items is None  # never analysed, and it cannot be counted
    assert [(f.kind, f.where) for f in findings] == [("uninspectable", f"{schema}.secret")]
    assert "cannot be read" in findings[0].message


@pytest.mark.postgres
@pytest.mark.parametrize("db", [POSTGRES], indirect=True)
def test_other_databases_on_the_server_are_discovered_when_asked(db: Database) -> None:
    """With databases: [NAME] a PostgreSQL server's other database is listed, by its name."""
    name = "sweeper_disc_" + secrets.token_hex(4)
    root = sa.create_engine(PG_URL.format(port=5432, database="test"), isolation_level="AUTOCOMMIT")
    with root.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    other = sa.create_engine(PG_URL.format(port=5432, database=name))
    try:
        with other.begin() as conn:
            conn.execute(sa.text("CREATE TABLE leerlingen (id int PRIMARY KEY, naam text)"))
        other.dispose()
        system = SqlSystem(
            id="server",
            name="Database server",
            kind="sql",
            connection=SqlConnection(url=db.url, connect_args=db.connect_args),
        )
        with db.connector(system=system) as connector:
            request = DiscoverRequest(
                now=NOW, options={"databases": [name], "schemas": ["public", db.schema]}
            )
            wheres = {
                o.where for o in connector.discover(request) if isinstance(o, DiscoveredStore)
            }
            assert connector.scope(request) == ("sql", "postgresql://127.0.0.1:5432")
        assert f"{name}/public.leerlingen" in wheres
    finally:
        other.dispose()
        with root.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        root.dispose()


@pytest.mark.mariadb
def test_a_mariadb_table_the_login_may_not_select_is_a_finding_of_its_own(
    mariadb_root: sa.Engine,
) -> None:
    """On MariaDB a table the login holds another right on (INSERT) but not SELECT is listed,
    not counted, and reported as 'uninspectable'; the readable table is counted."""
    name = "sweeper_test_" + secrets.token_hex(4)
    user = "sweeper_r_" + secrets.token_hex(4)
    with mariadb_root.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
        conn.execute(sa.text(f"CREATE TABLE `{name}`.allowed (id int PRIMARY KEY, naam text)"))
        conn.execute(sa.text(f"CREATE TABLE `{name}`.secret (id int PRIMARY KEY, bsn text)"))
        conn.execute(sa.text(f"CREATE USER '{user}'@'127.0.0.1'"))
        conn.execute(sa.text(f"GRANT SELECT ON `{name}`.allowed TO '{user}'@'127.0.0.1'"))
        conn.execute(sa.text(f"GRANT INSERT ON `{name}`.secret TO '{user}'@'127.0.0.1'"))
    url = f"mysql+pymysql://{user}@127.0.0.1:3306/{name}"
    db = Database("mariadb", url, mariadb_root, Path("/"), name, {"ssl_disabled": True})
    try:
        stores, findings = _discover(db)
    finally:
        with mariadb_root.begin() as conn:
            conn.execute(sa.text(f"DROP USER '{user}'@'127.0.0.1'"))
            conn.execute(sa.text(f"DROP DATABASE `{name}`"))
    assert stores["allowed"].items == 0
    assert (stores["secret"].details or {})["readable"] is False
    assert [(f.kind, f.where) for f in findings] == [("uninspectable", f"{name}.secret")]
    assert "SELECT command denied" in findings[0].message
