"""A small school estate for discovery's tests: a PostgreSQL schema of its own in a database
made for the session, a real file tree, and moto's S3 server.

The SQL tests' helpers (``sql_databases``), the file-share tests' (``fileshare_tree``) and the
bucket tests' (``bucket_store``) are shared: their folders are put on the import path.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

HERE = Path(__file__).parent
for helpers in ("sql", "fileshare", "bucket"):
    if str(HERE.parent / helpers) not in sys.path:
        sys.path.insert(0, str(HERE.parent / helpers))

from bucket_store import Server, moto_server  # noqa: E402
from sql_databases import PG_URL, session_database  # noqa: E402

# Never let botocore ask an instance-metadata address for credentials.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Server]:
    """moto's S3 server on 127.0.0.1 and a free port."""
    with moto_server() as running:
        yield running


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
