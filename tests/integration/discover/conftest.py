"""A small school estate for discovery's tests: a PostgreSQL schema of its own in a database
made for the session, and a real file tree.

The SQL tests' helpers (``sql_databases``) and the file-share tests' (``fileshare_tree``) are
shared: their folders are put on the import path.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

HERE = Path(__file__).parent
for helpers in ("sql", "fileshare"):
    if str(HERE.parent / helpers) not in sys.path:
        sys.path.insert(0, str(HERE.parent / helpers))

from sql_databases import PG_URL, session_database  # noqa: E402


@pytest.fixture(scope="session")
def discovery_database() -> Iterator[str]:
    """A PostgreSQL database with a random name for this test session."""
    with session_database("sweeper_discover_") as name:
        yield name


@pytest.fixture
def pg_schema(discovery_database: str) -> Iterator[tuple[str, sa.Engine]]:
    """A schema of this test's own, and an engine with full rights whose search_path is it."""
    schema = "t_" + secrets.token_hex(4)
    url = PG_URL.format(port=5432, database=discovery_database)
    admin = sa.create_engine(url, connect_args={"options": f"-c search_path={schema}"})
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield schema, admin
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
