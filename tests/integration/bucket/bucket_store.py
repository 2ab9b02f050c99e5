"""Helpers for the bucket tests: seeding moto's S3 server, building connectors, a throttling
proxy, and reading back what is left."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
from freezegun import freeze_time
from pydantic import SecretStr

from connectors.base import (
    ActRequest,
    ConnectorContext,
    NotDueSummary,
    Outcome,
    ScanFinding,
    ScannedItem,
    ScanRequest,
)
from connectors.bucket import BucketConnector
from sweeper.ropa.model import BucketConnection, BucketLocation, BucketSystem, Clock

KEY_ID, SECRET = "AKIATESTKEY0000", "test-secret-never-shown"
CREDENTIAL = f"[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
TZ = ZoneInfo("Europe/Amsterdam")
NOW = datetime.now(UTC)
DAY = timedelta(days=1)


@dataclass
class Server:
    endpoint: str


@contextlib.contextmanager
def moto_server() -> Iterator[Server]:
    """moto's S3 server on 127.0.0.1 and a free port, in a thread of this process, for as long
    as the block runs; fails the test with the command that installs it if it is missing."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as err:  # pragma: no cover
        pytest.fail(
            f"moto's server mode is not installed ({err}): run "
            "`.venv/bin/pip install -r requirements.lock` (moto[s3], flask, flask-cors)"
        )
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        yield Server(f"http://{host}:{port}")
    finally:
        moto.stop()


class Store:
    """A test's view of the server: makes buckets, seeds objects, lists what is left."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="eu-central-1",
        )

    def bucket(self, versioned: bool = False, lock: bool = False) -> str:
        name = f"t-{uuid.uuid4().hex[:20]}"
        params: dict[str, Any] = {
            "Bucket": name,
            "CreateBucketConfiguration": {"LocationConstraint": "eu-central-1"},
        }
        if lock:
            params["ObjectLockEnabledForBucket"] = True
        self.client.create_bucket(**params)
        if versioned and not lock:
            self.client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        return name

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes = b"data",
        age: timedelta | None = None,
        **extra: Any,
    ) -> str:
        """Upload an object; with ``age``, under a clock frozen that long ago. Return its
        version id."""
        if age is None:
            return str(
                self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra).get("VersionId")
            )
        with freeze_time(NOW - age):
            reply = self.client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return str(reply.get("VersionId"))

    def put_many(self, bucket: str, keys: Sequence[str], age: timedelta | None) -> None:
        """Upload many small objects under one frozen clock (freezing costs more than a put)."""
        if age is None:
            for key in keys:
                self.client.put_object(Bucket=bucket, Key=key, Body=b"x")
            return
        with freeze_time(NOW - age):
            for key in keys:
                self.client.put_object(Bucket=bucket, Key=key, Body=b"x")

    def delete_marker(self, bucket: str, key: str, age: timedelta | None = None) -> None:
        if age is None:
            self.client.delete_object(Bucket=bucket, Key=key)
            return
        with freeze_time(NOW - age):
            self.client.delete_object(Bucket=bucket, Key=key)

    def versions(self, bucket: str, prefix: str = "") -> dict[str, list[str]]:
        """Every version and delete marker id per key (ListObjectVersions), all pages."""
        out: dict[str, list[str]] = {}
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for entry in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]:
                out.setdefault(entry["Key"], []).append(entry["VersionId"])
        return out

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            out.update(o["Key"] for o in page.get("Contents", ()))
        return out


def system(endpoint: str, **connection: Any) -> BucketSystem:
    settings = {
        "endpoint_url": endpoint,
        "region": "eu-central-1",
        "addressing_style": "path",
        "credential": "s3",
        **connection,
    }
    return BucketSystem(
        id="objects", name="Objects", kind="bucket", connection=BucketConnection(**settings)
    )


def connector(
    endpoint: str, read_only: bool = True, credential: str = CREDENTIAL, **connection: Any
) -> BucketConnector:
    def lookup(name: str) -> SecretStr:
        assert name == "s3"
        return SecretStr(credential)

    context = ConnectorContext(
        base_dir=Path("."),
        credential=lookup,
        read_only=read_only,
        options={"retry_delay": 0.01},
    )
    return BucketConnector(system(endpoint, **connection), context)


def location(bucket: str, **kw: Any) -> BucketLocation:
    return BucketLocation(system="objects", bucket=bucket, **kw)


@dataclass
class Scan:
    items: list[ScannedItem] = field(default_factory=list)
    summaries: list[NotDueSummary] = field(default_factory=list)
    findings: list[ScanFinding] = field(default_factory=list)

    def keys(self) -> set[str]:
        return {i.key for i in self.items}

    def item(self, key: str) -> ScannedItem:
        return next(i for i in self.items if i.key == key)

    @property
    def not_due(self) -> int:
        return sum(s.count for s in self.summaries)


def scan(
    conn: BucketConnector,
    loc: BucketLocation,
    clock: Clock = "modified",
    cutoff: datetime | None = None,
) -> Scan:
    out = Scan()
    for entry in conn.scan(ScanRequest(location=loc, clock=clock, tz=TZ, cutoff=cutoff)):
        if isinstance(entry, ScannedItem):
            out.items.append(entry)
        elif isinstance(entry, NotDueSummary):
            out.summaries.append(entry)
        else:
            out.findings.append(entry)
    return out


def act(
    conn: BucketConnector, loc: BucketLocation, action: str, keys: Sequence[str]
) -> dict[str, Outcome]:
    return {o.key: o for o in conn.act(ActRequest(loc, action, list(keys)))}


def count_calls(conn: BucketConnector) -> dict[str, int]:
    """Count the connector's S3 API calls by operation, through botocore's event hooks."""
    counts: dict[str, int] = {}

    def seen(model: Any, **_: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    conn.client.meta.events.register("before-call.s3", seen)
    return counts


# ---------------------------------------------------------------------------------------------
# A proxy on 127.0.0.1 in front of the server that misbehaves as a store under load does


class Proxy:
    """Forwards HTTP to the server. ``slow_down`` requests get 503 SlowDown without being
    forwarded; ``key_errors`` DeleteObjects calls get a 200 reply listing every object as a
    SlowDown error, without being forwarded; requests for a bucket in ``denied`` get 403
    AccessDenied (``""`` denies ListBuckets), and reads of an object in a bucket in
    ``denied_reads`` too. Records the body of every DeleteObjects it forwards. With
    ``account``, every request goes to that moto account, which holds only the buckets made
    through this proxy."""

    def __init__(self, target: str, account: str | None = None) -> None:
        self.target = target.removeprefix("http://")
        self.account = account
        self.slow_down = 0
        self.key_errors = 0
        self.denied: set[str] = set()
        self.denied_reads: set[str] = set()
        self.forwarded_deletes: list[bytes] = []
        self.refused = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                bucket, _, key = self.path.lstrip("/").split("?", 1)[0].partition("/")
                is_delete = self.command == "POST" and "?delete" in self.path
                with proxy.lock:
                    if bucket in proxy.denied or (
                        self.command == "GET" and key and bucket in proxy.denied_reads
                    ):
                        return self._reply(403, _error("AccessDenied", "Access Denied"))
                    if proxy.slow_down > 0:
                        proxy.slow_down -= 1
                        proxy.refused += 1
                        return self._reply(503, _error("SlowDown", "Please reduce your rate"))
                    if is_delete and proxy.key_errors > 0:
                        proxy.key_errors -= 1
                        proxy.refused += 1
                        return self._reply(200, _key_errors(body))
                    if is_delete:
                        proxy.forwarded_deletes.append(body)
                conn = http.client.HTTPConnection(proxy.target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = proxy.target
                if proxy.account is not None:
                    headers["x-moto-account-id"] = proxy.account
                conn.request(self.command, self.path, body=body or None, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def deleted_objects(self) -> list[tuple[str, str]]:
        """Every (key, version id) the forwarded DeleteObjects calls asked to delete."""
        out = []
        for body in self.forwarded_deletes:
            text = body.decode()
            for obj in re.findall(r"<Object>(.*?)</Object>", text, re.S):
                key = re.search(r"<Key>(.*?)</Key>", obj, re.S)
                version = re.search(r"<VersionId>(.*?)</VersionId>", obj, re.S)
                out.append((key.group(1) if key else "", version.group(1) if version else ""))
        return out


def _error(code: str, message: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{message}</Message><RequestId>proxy</RequestId></Error>"
    ).encode()


def _key_errors(body: bytes) -> bytes:
    entries = []
    for obj in re.findall(r"<Object>(.*?)</Object>", body.decode(), re.S):
        entries.append(
            f"<Error>{obj}<Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
        )
    return (
        "<?xml version='1.0' encoding='UTF-8'?><DeleteResult "
        "xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>" + "".join(entries) + "</DeleteResult>"
    ).encode()
