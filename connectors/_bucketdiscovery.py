"""Discovery for the bucket connector: buckets and prefixes with objects, bytes and age;
bounded samples of their objects; which locations cover which prefixes.

Stores
    Every bucket the credentials can list (ListBuckets), or the target's ``base`` (a bucket,
    or ``bucket/prefix/``). Where the credentials may not list the buckets, the buckets the
    system's own locations name (``DiscoverRequest.options["buckets"]``) are discovered, and
    the listing is an ``uninspectable`` finding named ``(all buckets)``.

    A bucket's objects are shared out between stores as a share's files are between folders,
    so that every object counts in one store: a prefix ``depth`` levels down (``a/b/`` at
    depth 2) counts every object below it (``extent: subtree``); a prefix above that depth
    counts the objects directly in it (``extent: objects``), its sub-prefixes being stores of
    their own; and the bucket's own store (kind ``bucket``, named by the bucket) counts the
    objects directly in the bucket (at depth 0: all of them). The bucket's store is listed
    even when it counts no object, with the bucket's ``versioning`` and ``object_lock``.

    A versioned bucket is listed with ListObjectVersions and every version that holds data
    counts: a key whose current version is a delete marker looks deleted but its data is
    still there. Stores of a versioned bucket say how many of their versions are
    ``noncurrent_versions`` and how many ``delete_markers`` they hold. Each store has its
    objects (versions), bytes, the oldest and newest LastModified, and how many are stale.

    A bucket that cannot be listed (access denied) is a store with ``readable: false`` and an
    ``uninspectable`` finding, and the run goes on. Not listed: buckets and prefixes whose
    name (``bucket``, ``bucket/prefix``) matches an ``exclude`` pattern (``*`` matches any
    characters, ``/`` too), places other systems discover (``skip``), and quarantines, whose
    objects are the sweeper's, purged when ``quarantine_for`` ends (the system's own here,
    other systems' through ``skip``). Beyond ``discover_prefixes`` prefixes in a bucket (a
    connector option, 10,000 by default) the objects of further prefixes count in the bucket's
    own store (``unlisted_objects``).

Samples
    While listing, each store keeps objects to read, the same ones on every run over
    unchanged keys (``connectors._content.keep``): ``files`` of a type whose content is read
    (CSV, TSV, XLSX and plain text) and ``names`` of other types, judged by name and size
    only. An object is read with one GetObject whose Range ends at ``bytes`` (the newest
    version holding data, by its version id in a versioned bucket: s3:GetObjectVersion); a
    text or CSV is cut there, while a spreadsheet, which is read whole, is read only when it is
    no larger than ``bytes`` and is otherwise judged by name and size. Objects that cannot be
    read are an ``uninspectable`` finding of their store; one deleted since the listing is
    passed over. What is read goes to the detectors and nowhere else.

Places and coverage
    Places are ``("bucket", endpoint, bucket, *prefix segments)``; the endpoint is the
    connection's ``endpoint_url`` in lower case (``aws`` without one), so systems on one
    endpoint reach the same buckets and a system without ``base`` reaches the endpoint's
    whole account. (Systems whose credentials see different buckets of one endpoint are still
    one place: give each a ``base``, or let the one with the widest credentials discover.)
    A location (bucket, prefix, key_regex) covers a store fully when every key the store
    counts starts with the location's prefix and the location has no key_regex; partly when
    it has one, or when its prefix lies inside the store; else not at all. One object is
    covered when its key starts with the prefix and key_regex, if any, matches it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import io
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from connectors._content import SPREADSHEET, Candidate, chosen, extension, keep, readable_type
from connectors._content import samples as content_samples
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
from sweeper.errors import ConnectorError, LocationInvalid, SystemUnreachable
from sweeper.ropa.model import BucketLocation

if TYPE_CHECKING:
    from connectors.bucket import BucketConnector, _BucketInfo, _Key, _Version

ALL_BUCKETS: Final = "(all buckets)"
"""The place named in the finding for credentials that may not list the buckets."""
_GONE: Final = frozenset({"NoSuchKey", "NoSuchVersion", "404"})


def endpoint(connector: BucketConnector) -> str:
    """Return the endpoint as places name it: the URL in lower case, or ``aws``."""
    url = connector.system.connection.endpoint_url
    return url.rstrip("/").lower() if url else "aws"


def _segments(prefix: str) -> tuple[str, ...]:
    """Given a prefix that ends in '/' (or ''), return its segments: 'a/b/' -> ('a', 'b')."""
    return tuple(prefix[:-1].split("/")) if prefix else ()


def _joined(segments: Sequence[str]) -> str:
    return "".join(s + "/" for s in segments)


def _base(request: DiscoverRequest) -> tuple[str | None, str]:
    """Return the bucket and prefix (ending in '/') the request starts at; (None, '') for
    the whole account."""
    if request.base is None or not request.base.strip("/ "):
        return None, ""
    bucket, _, prefix = request.base.strip().lstrip("/").partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def scope(connector: BucketConnector, request: DiscoverRequest) -> tuple[str, ...]:
    bucket, prefix = _base(request)
    if bucket is None:
        return ("bucket", endpoint(connector))
    return ("bucket", endpoint(connector), bucket, *_segments(prefix))


def locate(connector: BucketConnector, store: DiscoveredStore) -> tuple[str, ...]:
    own = ("bucket", endpoint(connector))
    bucket, _, rest = store.where.partition("/")
    if store.kind == "prefix":
        return (*own, bucket, *_segments(rest))
    if store.kind == "file":
        return (*own, bucket, *rest.split("/"))
    return (*own, store.where)  # a bucket's own store, or a place that could not be listed


def quarantine_places(connector: BucketConnector) -> tuple[tuple[str, ...], ...]:
    """The quarantine's bucket, or bucket and prefix when the prefix ends in '/': a place other
    systems' discovery skips (this system's own skips any quarantine prefix, see discover)."""
    quarantine = connector.system.connection.quarantine
    if quarantine is None or (quarantine.prefix and not quarantine.prefix.endswith("/")):
        return ()
    return (("bucket", endpoint(connector), quarantine.bucket, *_segments(quarantine.prefix)),)


def _excluded(patterns: Sequence[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p.rstrip("/")) for p in patterns)


# -- discover -----------------------------------------------------------------------------------


def discover(
    connector: BucketConnector, request: DiscoverRequest
) -> Iterator[DiscoveredStore | ScanFinding]:
    bucket, prefix = _base(request)
    if bucket is not None:
        buckets = [bucket]
    else:
        try:
            reply = connector._call("list the buckets (s3:ListAllMyBuckets)", None, "list_buckets")
            buckets = [b["Name"] for b in reply.get("Buckets", ())]
        except LocationInvalid as err:
            buckets = sorted(set(request.options.get("buckets") or ()))
            also = (
                f"; only the bucket(s) the system's locations name were discovered: "
                f"{', '.join(buckets)}"
                if buckets
                else ""
            )
            yield ScanFinding("uninspectable", ALL_BUCKETS, f"{err}{also}")
    own = ("bucket", endpoint(connector))
    quarantine = connector.system.connection.quarantine
    for name in buckets:
        place = (*own, name)
        if any(place[: len(s)] == s for s in request.skip) or _excluded(request.exclude, name):
            continue
        skipped = [_joined(s[3:]) for s in request.skip if len(s) > 3 and s[:3] == place]
        if quarantine is not None and quarantine.bucket == name:
            if not quarantine.prefix:
                continue
            skipped.append(quarantine.prefix)
        yield from _Listing(connector, request, name, prefix, tuple(skipped)).run()


@dataclasses.dataclass
class _Store:
    kind: str
    where: str
    extent: str
    items: int = 0  # versions holding data
    size: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    stale: int = 0
    noncurrent: int = 0
    markers: int = 0
    readable: int = 0  # objects of a type whose content is read
    read: list[Candidate] = dataclasses.field(default_factory=list)
    named: list[Candidate] = dataclasses.field(default_factory=list)

    def add(self, item: _Key, stale_before: datetime, limits: tuple[int, int]) -> None:
        for version in item.versions:
            if version.marker:
                self.markers += 1
                continue
            self.items += 1
            self.size += version.size
            moment = version.modified
            if self.oldest is None or moment < self.oldest:
                self.oldest = moment
            if self.newest is None or moment > self.newest:
                self.newest = moment
            if moment < stale_before:
                self.stale += 1
            if not version.latest:
                self.noncurrent += 1
        newest = item.newest_data()
        if newest is None:
            return
        if readable_type(item.key.rpartition("/")[2]):
            self.readable += 1
            keep(self.read, limits[0], item.key, newest.size, newest.version_id)
        else:
            keep(self.named, limits[1], item.key, newest.size, newest.version_id)

    def store(self, details: dict[str, Any]) -> DiscoveredStore:
        return DiscoveredStore(
            self.kind,
            self.where,
            self.items,
            self.size,
            self.oldest,
            self.newest,
            self.stale,
            {"extent": self.extent, "count": "exact", "readable_files": self.readable, **details},
        )


_EXCLUDED: Final = _Store("", "", "")


def _versions(store: _Store, info: _BucketInfo) -> dict[str, int]:
    if not info.versioned:
        return {}
    return {"noncurrent_versions": store.noncurrent, "delete_markers": store.markers}


class _Listing:
    """One bucket (or a prefix of it) listed once into its stores."""

    def __init__(
        self,
        connector: BucketConnector,
        request: DiscoverRequest,
        bucket: str,
        prefix: str,
        skipped: tuple[str, ...],
    ) -> None:
        self.connector = connector
        self.request = request
        self.bucket = bucket
        self.prefix = prefix
        self.skipped = skipped
        self.depth = max(0, request.depth)
        self.base = _segments(prefix)
        kind, where = ("prefix", f"{bucket}/{prefix}") if prefix else ("bucket", bucket)
        self.root = _Store(kind, where, "subtree" if self.depth == 0 else "objects")
        self.stores: dict[str, _Store] = {}
        self.limit = int(connector._option("discover_prefixes", 10_000))
        self.unlisted = 0  # objects of prefixes beyond the limit, counted in the root

    def run(self) -> Iterator[DiscoveredStore | ScanFinding]:
        try:
            info = self.connector._bucket(self.bucket)
            self._list(info)
        except ConnectorError as err:
            if isinstance(err, SystemUnreachable) and "refused the credentials" in str(err):
                raise
            yield DiscoveredStore(self.root.kind, self.root.where, details={"readable": False})
            yield ScanFinding("uninspectable", self.root.where, str(err))
            return
        details: dict[str, Any] = {"depth": self.depth, **_versions(self.root, info)}
        if self.root.kind == "bucket":
            details.update(versioning=info.versioned, object_lock=info.locked)
        if self.unlisted:
            details["unlisted_objects"] = self.unlisted
        samples = self.connector._discovery_samples
        for store in [self.root, *(self.stores[w] for w in sorted(self.stores))]:
            samples[store.where] = (chosen(store.read), chosen(store.named))
            extra = (
                details if store is self.root else {"depth": self.depth, **_versions(store, info)}
            )
            yield store.store(extra)
        if self.unlisted:
            yield ScanFinding(
                "truncated",
                self.bucket,
                f"more than {self.limit} prefixes: {self.unlisted} object(s) of further "
                "prefixes count in the bucket's own store",
            )

    def _list(self, info: _BucketInfo) -> None:
        from connectors.bucket import _group_pages

        stale_before = self.request.now - self.request.stale_after
        limits = (
            int(self.request.options.get("sample_files", 10)),
            int(self.request.options.get("sample_names", 50)),
        )
        folder, store = None, None
        pages = _counted(
            self.connector._pages(self.bucket, self.prefix, info.versioned), self.request.listed
        )
        for item in _group_pages(pages):
            key = item.key
            if self.skipped and key.startswith(self.skipped):
                continue
            here = key[: key.rfind("/") + 1]
            if here != folder:  # keys come in order: most follow one of the same folder
                folder, store = here, self._store_of(here)
            if store is None:  # a prefix beyond the limit
                self.unlisted += 1
                self.root.add(item, stale_before, limits)
            elif store is not _EXCLUDED:
                store.add(item, stale_before, limits)

    def _store_of(self, folder: str) -> _Store | None:
        """Given an object's folder ('a/b/', '' for the bucket's own), return the store it
        counts in: ``_EXCLUDED`` if the folder is excluded, None if its prefix would be a
        store beyond the limit."""
        rel = _segments(folder)[len(self.base) :]
        if self.request.exclude:
            for level in range(1, len(rel) + 1):
                name = f"{self.bucket}/{_joined(self.base + rel[:level])}"
                if _excluded(self.request.exclude, name.rstrip("/")):
                    return _EXCLUDED
        level = min(len(rel), self.depth)
        if level == 0:
            return self.root
        where = f"{self.bucket}/{_joined(self.base + rel[:level])}"
        store = self.stores.get(where)
        if store is None:
            if len(self.stores) >= self.limit:
                return None
            extent = "subtree" if level == self.depth else "objects"
            store = self.stores[where] = _Store("prefix", where, extent)
        return store


def _counted(
    pages: Iterator[list[tuple[str, _Version]]], listed: Callable[[int], None]
) -> Iterator[list[tuple[str, _Version]]]:
    """The listing's pages, telling ``listed`` of each page's objects as it comes in."""
    for page in pages:
        listed(len(page))
        yield page


# -- sample -------------------------------------------------------------------------------------


def sample(connector: BucketConnector, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
    store = request.store
    if store.kind not in ("bucket", "prefix"):
        return
    found = connector._discovery_samples.get(store.where)
    if found is None:
        return  # not discovered by this connector: nothing known to read
    read, named = found
    bucket = store.where.partition("/")[0]
    failed: list[str] = []
    for key, size, version in read[: request.files]:
        try:
            yield from _read(connector, bucket, key, size, version, request)
        except LocationInvalid as err:
            failed.append(str(err))
    for key, size, _ in named[: request.names] + read[request.files :]:
        name = key.rpartition("/")[2]
        yield Sample(f"{bucket}/{key}", name, size=size, skipped="judged by name and size only")
    if failed:
        yield ScanFinding(
            "uninspectable",
            store.where,
            f"{len(failed)} sampled object(s) in {store.where} could not be read ({failed[0]})",
        )


def _read(
    connector: BucketConnector,
    bucket: str,
    key: str,
    size: int,
    version: str | None,
    request: SampleRequest,
) -> Iterator[Sample]:
    name = key.rpartition("/")[2]
    where = f"{bucket}/{key}"
    if extension(name) in SPREADSHEET and size > request.bytes:
        yield Sample(
            where,
            name,
            size=size,
            skipped="not read: a spreadsheet is read whole, and this one is larger than the "
            "byte bound (discovery.sample_bytes)",
        )
        return
    data = b""
    if size > 0 and request.bytes > 0:
        got = _get(connector, bucket, key, version, min(size, request.bytes))
        if got is None:
            return  # deleted since it was listed
        data = got
    yield from content_samples(where, name, size, io.BytesIO(data), request)


def _get(
    connector: BucketConnector, bucket: str, key: str, version: str | None, length: int
) -> bytes | None:
    """Return the first ``length`` bytes of an object (one ranged GetObject); None if it is
    gone. Raise LocationInvalid (access denied) or SystemUnreachable."""
    from connectors.bucket import _code

    what = f"read object {key!r} in bucket {bucket!r} (s3:GetObject" + (
        ", s3:GetObjectVersion)" if version else ")"
    )
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes=0-{length - 1}"}
    if version is not None:
        params["VersionId"] = version
    try:
        reply = connector.client.get_object(**params)
        body = reply["Body"]
        try:
            data: bytes = body.read(length)
        finally:
            body.close()
    except Exception as err:
        if _code(err) in _GONE:
            return None
        raise connector._failure(what, bucket, err) from err
    return data


# -- coverage -----------------------------------------------------------------------------------


def coverage(
    connector: BucketConnector, location: Any, place: tuple[str, ...], store: DiscoveredStore
) -> str:
    if not isinstance(location, BucketLocation) or len(place) < 3:
        return NONE
    if place[:3] != ("bucket", endpoint(connector), location.bucket):
        return NONE
    wanted = location.prefix
    if store.kind == "file":
        key = "/".join(place[3:])
        if not key.startswith(wanted):
            return NONE
        if location.key_regex is None or re.search(location.key_regex, key):
            return FULL
        return NONE
    if store.kind not in ("bucket", "prefix", "place"):
        return NONE
    details = store.details or {}
    mine = _joined(place[3:])
    if mine.startswith(wanted):
        return FULL if location.key_regex is None else PARTIAL
    if wanted.startswith(mine):
        if details.get("extent") == "objects" and not details.get("unlisted_objects"):
            # Only the objects directly in the store: a deeper location prefix reaches none.
            return PARTIAL if "/" not in wanted[len(mine) :] else NONE
        return PARTIAL
    return NONE
