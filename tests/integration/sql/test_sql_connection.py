"""Connecting: check(), credentials, secrets kept out of errors, read-only dry runs."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
from sql_databases import (
    MARIADB,
    MARIADB_URL,
    ODBC,
    ODBC_URL,
    PG_URL,
    POSTGRES,
    SQLITE,
    Database,
    backend_with,
    free_port,
)
from sql_sis import students

from sweeper.errors import SystemUnreachable

# A password with characters that URLs, ODBC connection strings and SQL all treat specially.
PASSWORD = "Pw@1:/;}{x'" + secrets.token_hex(4)


def check_error(db: Database, url: str, secret: str | None = None) -> SystemUnreachable:
    """Run check() against url with the given password; return the SystemUnreachable raised."""
    if secret is not None:
        db.secrets["sis-db"] = secret
    system = db.system(url=url, credential="sis-db" if secret is not None else None)
    with db.connector(system=system) as connector, pytest.raises(SystemUnreachable) as raised:
        connector.check()
    assert raised.value.__cause__ is not None, "raised without 'from' the driver's error"
    return raised.value


def mariadb_user(db: Database, password: str, request: pytest.FixtureRequest) -> str:
    """Create a MariaDB user with the password and every right on the test's database, dropped
    after the test; return its name.
    """
    user = "sweeper_" + secrets.token_hex(4)
    with db.admin.begin() as conn:
        conn.execute(
            sa.text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY :pw"), {"pw": password}
        )
        conn.execute(sa.text(f"GRANT ALL ON `{db.schema}`.* TO '{user}'@'127.0.0.1'"))

    def drop() -> None:
        with db.admin.begin() as conn:
            conn.execute(sa.text(f"DROP USER '{user}'@'127.0.0.1'"))

    request.addfinalizer(drop)
    return user


def user_url(db: Database, user: str) -> str:
    return db.url.replace("root@", f"{user}@", 1)


def test_check_passes_on_a_running_server(db: Database) -> None:
    """check() succeeds when the database answers."""
    with db.connector() as connector:
        connector.check()


@pytest.mark.parametrize(
    ("db", "template"),
    [
        backend_with(POSTGRES, PG_URL),
        backend_with(MARIADB, MARIADB_URL),
        backend_with(ODBC, ODBC_URL),
    ],
    indirect=["db"],
)
def test_dead_port_is_unreachable_without_the_password(db: Database, template: str) -> None:
    """check() on a port where nothing listens raises SystemUnreachable, password left out."""
    error = check_error(db, template.format(port=free_port(), database="test"), PASSWORD)
    assert PASSWORD not in str(error)
    assert "127.0.0.1" in str(error)


@pytest.mark.parametrize("db", [MARIADB, ODBC], indirect=True)
def test_password_with_special_characters_logs_in(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """A password with URL and ODBC metacharacters reaches the server intact."""
    user = mariadb_user(db, PASSWORD, request)
    db.secrets["sis-db"] = PASSWORD
    system = db.system(url=user_url(db, user), credential="sis-db")
    with db.connector(system=system) as connector:
        connector.check()


@pytest.mark.parametrize("db", [MARIADB, ODBC], indirect=True)
def test_wrong_password_is_unreachable_without_the_password(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """A refused login raises SystemUnreachable that names the refusal, not the password."""
    user = mariadb_user(db, PASSWORD, request)
    wrong = PASSWORD[::-1]
    error = check_error(db, user_url(db, user), wrong)
    assert "Access denied" in str(error)
    assert wrong not in str(error)


@pytest.mark.parametrize(
    ("db", "template"),
    [backend_with(POSTGRES, PG_URL), backend_with(MARIADB, MARIADB_URL)],
    indirect=["db"],
)
def test_password_echoed_by_the_server_is_redacted(
    db: Database, template: str, request: pytest.FixtureRequest
) -> None:
    """Even when the server's message repeats the secret, the error shows *** instead."""
    secret = "echo" + secrets.token_hex(6)
    # The secret is also the database's name, which the refusal repeats.
    url = template.format(port=5432 if db.backend == "postgresql" else 3306, database=secret)
    if db.backend == "mariadb":
        url = url.replace("root@", f"{mariadb_user(db, secret, request)}@")
    error = check_error(db, url, secret)
    assert secret not in str(error)
    assert "***" in str(error)


def test_missing_sqlite_file_is_unreachable_and_not_created(tmp_path: Path) -> None:
    """A SQLite path that does not exist is an error, and no empty database appears there."""
    db = Database("sqlite", "sqlite:///missing.db", sa.create_engine("sqlite://"), tmp_path, "main")
    for read_only in (True, False):
        with db.connector(read_only=read_only) as connector, pytest.raises(SystemUnreachable):
            connector.check()
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize("db", [SQLITE], indirect=True)
def test_relative_sqlite_path_resolves_against_base_dir(
    sis: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative SQLite URL names a file in the RoPA's folder, not the working directory."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with sis.connector() as connector:
        connector.check()


def test_write_through_read_only_connector_fails(sis: Database) -> None:
    """In a dry run the connector's connections refuse writes; the row stays as it was."""
    db = sis
    with (
        db.connector(read_only=True) as connector,
        connector.engine.connect() as conn,
        pytest.raises(sa.exc.DBAPIError),
    ):
        conn.execute(students.update().where(students.c.id == 1).values(name="changed"))
        conn.commit()
    with db.admin.connect() as conn:
        name = conn.execute(sa.select(students.c.name).where(students.c.id == 1)).scalar_one()
    assert name == "Anna"


def test_write_through_read_write_connector_succeeds(sis: Database) -> None:
    """Outside a dry run the same write goes through: the refusal above is the read-only mode."""
    db = sis
    with db.connector(read_only=False) as connector, connector.engine.begin() as conn:
        conn.execute(students.update().where(students.c.id == 1).values(name="changed"))
    with db.admin.connect() as conn:
        name = conn.execute(sa.select(students.c.name).where(students.c.id == 1)).scalar_one()
    assert name == "changed"


def test_close_releases_pooled_connections(sis: Database) -> None:
    """close() disposes of the engine: no pooled connection stays open."""
    connector = sis.connector()
    connector.check()
    pool = connector.engine.pool
    assert pool.checkedin() == 1
    connector.close()
    assert pool.checkedin() == 0
