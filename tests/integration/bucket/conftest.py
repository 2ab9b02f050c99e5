"""Fixtures for the bucket connector: moto's S3 server (a real HTTP S3 API) on 127.0.0.1.

The server runs in a thread of the test process, for the whole session, on a free port.
Object ages are seeded honestly: an object that must be old is uploaded while freezegun
holds the process's clock (the server's too, as it runs in this process) at that moment, so
the server itself records that LastModified; the clock is released right after. Each test
works in buckets of its own (``store.bucket()``), so tests share the server but not data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from bucket_store import Server, Store, moto_server

# Never let botocore ask an instance-metadata address for credentials.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """moto's S3 server on 127.0.0.1 and a free port."""
    with moto_server() as running:
        yield running


@pytest.fixture
def store(server: Server) -> Store:
    return Store(server.endpoint)
