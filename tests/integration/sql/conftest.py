"""Real databases on loopback for the SQL connector's tests.

Each test gets its own SQLite file, PostgreSQL schema (inside a database made for the test
session) or MariaDB database, and it is dropped afterwards. A server that does not answer
fails the test with the command that starts it: these tests never skip.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sql_sis
import sqlalchemy as sa
from sql_databases import (
    MARIADB_START,
    MARIADB_URL,
    NO_TLS,
    ODBC_DRIVER,
    ODBC_URL,
    PG_URL,
    SERVERS,
    SQLITE,
    Database,
    session_database,
)


def _unreachable(what: str, start: str, err: Exception) -> None:
    reason = getattr(err, "orig", None) or err
    pytest.fail(f"{what} does not answer ({reason}); start it with: {start}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database with a random name for this test session."""
    with session_database("sweeper_test_") as name:
        yield name


@pytest.fixture(scope="session")
def mariadb_root() -> Iterator[sa.Engine]:
    """An engine on MariaDB as root, to create and drop the tests' databases."""
    root = sa.create_engine(MARIADB_URL.format(port=3306, database="test"), connect_args=NO_TLS)
    try:
        with root.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as err:
        _unreachable("MariaDB on 127.0.0.1:3306", MARIADB_START, err)
    yield root
    root.dispose()


@pytest.fixture(scope="session")
def odbc_driver() -> str:
    """The name of the MariaDB ODBC driver registered with unixODBC."""
    import pyodbc

    if ODBC_DRIVER not in pyodbc.drivers():
        pytest.fail(
            f"unixODBC has no {ODBC_DRIVER!r} driver (found: {pyodbc.drivers()}); "
            "install it with: bash .ci/packages.sh",
            pytrace=False,
        )
    return ODBC_DRIVER


@pytest.fixture(params=[SQLITE, *SERVERS])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of its own, on each backend in turn."""
    backend: str = request.param
    if backend == "sqlite":
        admin = sa.create_engine(f"sqlite:///{tmp_path / 'sis.db'}")
        sa.event.listen(admin, "connect", _no_fsync)
        with admin.connect():
            pass  # creates the file
        yield Database(backend, "sqlite:///sis.db", admin, tmp_path, "main")
        admin.dispose()
    elif backend == "postgresql":
        yield from _postgres_schema(request.getfixturevalue("postgres_database"), tmp_path)
    else:
        root: sa.Engine = request.getfixturevalue("mariadb_root")
        if backend == "mysql+pyodbc":
            request.getfixturevalue("odbc_driver")
        yield from _mariadb_database(root, backend, tmp_path)


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous = OFF")  # test data need not survive a crash


def _postgres_schema(database: str, tmp_path: Path) -> Iterator[Database]:
    schema = "t_" + secrets.token_hex(4)
    url = PG_URL.format(port=5432, database=database)
    connect_args: dict[str, Any] = {"options": f"-c search_path={schema}"}
    admin = sa.create_engine(url, connect_args=connect_args)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield Database("postgresql", url, admin, tmp_path, schema, connect_args)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _mariadb_database(root: sa.Engine, backend: str, tmp_path: Path) -> Iterator[Database]:
    name = "sweeper_test_" + secrets.token_hex(4)
    with root.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
    admin = sa.create_engine(MARIADB_URL.format(port=3306, database=name), connect_args=NO_TLS)
    if backend == "mysql+pyodbc":
        url, connect_args = ODBC_URL.format(port=3306, database=name), {}
    else:
        url, connect_args = MARIADB_URL.format(port=3306, database=name), dict(NO_TLS)
    yield Database(backend, url, admin, tmp_path, name, connect_args)
    admin.dispose()
    with root.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE `{name}`"))


@pytest.fixture
def sis(db: Database) -> Database:
    """The test's own database holding the SIS tables and rows (see ``sql_sis``)."""
    sql_sis.build(db.admin)
    return db
