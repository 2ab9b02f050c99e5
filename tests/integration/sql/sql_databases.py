"""The backends the SQL connector is tested on, and one test's own database on one of them."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.base import ConnectorContext
from connectors.sql import SqlConnector
from sweeper.errors import CredentialMissing
from sweeper.ropa.model import SqlConnection, SqlSystem

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:{port}/{database}"
ODBC_URL = "mysql+pyodbc://root@127.0.0.1:{port}/{database}?driver=MariaDB+Unicode"
ODBC_DRIVER = "MariaDB Unicode"
# PyMySQL builds a TLS context for every connection (~30 ms); loopback tests need no TLS.
NO_TLS: dict[str, str | int | bool] = {"ssl_disabled": True}
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MARIADB_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

SQLITE = pytest.param("sqlite", id="sqlite")
POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres, id="postgresql")
MARIADB = pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb")
ODBC = pytest.param(
    "mysql+pyodbc", marks=[pytest.mark.mariadb, pytest.mark.odbc], id="mysql+pyodbc"
)
SERVERS = [POSTGRES, MARIADB, ODBC]


def backend_with(backend: Any, *values: object) -> Any:
    """Given one of the backend params above, return a param of it followed by more values
    (for ``parametrize`` over several names with ``indirect=["db"]``), keeping its marks.
    """
    return pytest.param(*backend.values, *values, marks=backend.marks, id=backend.id)


def free_port() -> int:
    """Return a loopback port on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Database:
    """One test's own database on one backend.

    Args:
        backend: ``sqlite``, ``postgresql``, ``mariadb`` or ``mysql+pyodbc``.
        url: the URL a RoPA would hold (no password; relative for SQLite).
        admin: an engine with full rights on the same database, to build and check data.
        base_dir: the folder a relative SQLite URL resolves against.
        schema: the name of the test's schema (PostgreSQL), database (MariaDB) or ``main``.
        connect_args: driver arguments the connection needs (PostgreSQL's search_path).
        secrets: the credentials the connector's context supplies, by name.
    """

    backend: str
    url: str
    admin: sa.Engine
    base_dir: Path
    schema: str
    connect_args: dict[str, str | int | bool] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def system(self, url: str | None = None, credential: str | None = None) -> SqlSystem:
        connection = SqlConnection(
            url=url or self.url, credential=credential, connect_args=self.connect_args
        )
        return SqlSystem(
            id="sis", name="Student information system", kind="sql", connection=connection
        )

    def connector(self, *, read_only: bool = True, system: SqlSystem | None = None) -> SqlConnector:
        context = ConnectorContext(
            base_dir=self.base_dir, credential=self._credential, read_only=read_only
        )
        return SqlConnector(system or self.system(), context)

    def _credential(self, name: str) -> SecretStr:
        if name not in self.secrets:
            raise CredentialMissing(f"no credential {name!r}")
        return SecretStr(self.secrets[name])


@contextmanager
def pg_reader_role(database: str) -> Iterator[tuple[str, str]]:
    """Make a PostgreSQL login role and a schema of its own in ``database`` with tables
    ``allowed`` (the role may SELECT it) and ``secret`` (one row with a BSN; the role may
    not); yield (role, schema) and drop both afterwards."""
    schema = "t_" + secrets.token_hex(4)
    role = "sweeper_reader_" + secrets.token_hex(4)
    admin = sa.create_engine(PG_URL.format(port=5432, database=database))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".allowed (id int PRIMARY KEY, naam text)'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".secret (id int PRIMARY KEY, bsn text)'))
        conn.execute(sa.text(f"INSERT INTO \"{schema}\".secret VALUES (1, '123456782')"))
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(sa.text(f'GRANT SELECT ON "{schema}".allowed TO "{role}"'))
    try:
        yield role, schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


@contextmanager
def session_database(prefix: str) -> Iterator[str]:
    """Create a PostgreSQL database named ``prefix`` and a random suffix, yield its name and
    drop it afterwards. Fail (never skip) with the command that starts the server if it does
    not answer."""
    root = sa.create_engine(PG_URL.format(port=5432, database="test"), isolation_level="AUTOCOMMIT")
    name = prefix + secrets.token_hex(4)
    try:
        with root.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as err:
        reason = getattr(err, "orig", None) or err
        pytest.fail(
            f"PostgreSQL on 127.0.0.1:5432 does not answer ({reason}); start it with: {PG_START}",
            pytrace=False,
        )
    try:
        yield name
    finally:
        with root.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        root.dispose()
