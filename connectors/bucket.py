"""The bucket connector: objects in AWS S3 or an S3-compatible store, through boto3.

Connecting
    ``connection.endpoint_url`` names an S3-compatible store (absent: AWS), with ``region``
    and ``addressing_style`` (``path`` for most S3-compatible stores). Keys come from the
    credential the connection names, whose secret is text of this form (the names of the
    AWS credentials file; a ``[section]`` line and ``#`` comments are allowed)::

        aws_access_key_id = AKIA…
        aws_secret_access_key = …
        aws_session_token = …        (optional)

    or from a named ``profile`` of the AWS config files, or else from the AWS SDK's default
    chain (environment, config files, the instance's or container's role). Keys never live in
    the RoPA and never appear in a message. boto3 is imported when a connector is first used,
    not when this module is.

Items
    An item is one key with all its versions and delete markers: in a versioned bucket a
    DELETE without a version id only adds a delete marker and every version stays, so
    deleting an item deletes each version and each delete marker by its version id. The
    location's keys are those under ``prefix`` that ``key_regex`` (searched in the whole key)
    matches; its named groups give the subject (``subject_group``) and a date. A bucket whose
    versioning was never enabled is listed with ListObjectsV2, any other with
    ListObjectVersions; both stream page by page (1,000 entries a call), holding one key's
    versions at a time. ``size`` is the bytes of all the key's versions; ``details`` gives
    ``versions``, ``delete_markers`` and ``bytes`` (and ``current: delete_marker`` when the
    key looks deleted but its data is still there). The fingerprint covers every version id,
    ETag and size, so a version added or removed after planning makes the item skipped.

Clocks
    ``modified`` (``mtime``): the LastModified of the newest version that holds data (of the
    newest delete marker for a key with markers only). ``created``: the LastModified of the
    oldest version still there (S3 keeps no earlier creation time; a later start makes an
    item due later, never earlier). ``{path_date: GROUP}``: a date in the key, read by a
    named group of ``key_regex`` with the clock's format. ``{tag: KEY}`` and
    ``{metadata: NAME}``: a date in an object tag or in the user metadata (``x-amz-meta-NAME``)
    of the newest data version, one GetObjectTagging or HeadObject call per key. ``{event:
    ID}``: the subject's event, read by the lifecycle. A key without a readable date is
    ``no_clock`` with the reason. With a cutoff, keys certainly not due are counted, not
    listed.

Noncurrent versions
    Versions kept by versioning behind a current version that is not due are old data the
    rule does not reach item by item: each scan reports them in one ``noncurrent_versions``
    finding per location (versions, delete markers, keys, bytes, and how many have been
    noncurrent for longer than the period), to be removed by a lifecycle rule (``sweeper
    export s3-lifecycle``).

Object Lock
    In a bucket with Object Lock enabled, the versions of every key that may be due are read
    with HeadObject (which returns the lock of a version to a caller allowed
    s3:GetObjectRetention and s3:GetObjectLegalHold). A key with a version under a legal hold
    or a retention date in the future is yielded ``refused="locked"`` with the mode and date
    as ``reason``: the plan lists it as ``locked``, never as a failure, and execution skips
    it. COMPLIANCE retention and legal holds are never bypassed. GOVERNANCE retention is
    bypassed only when ``connection.bypass_governance`` is true; those versions are deleted
    in DeleteObjects calls of their own with the bypass header, and each bypass is reported
    in the outcome (``overrode_governance``: version id and retention date) for the audit log.

Looking up and acting
    ``lookup`` re-reads keys just before acting: in an unversioned bucket with ListObjectsV2
    starting just before each key not yet found (one call for keys close together), in a
    versioned bucket with one ListObjectVersions per key (run eight at a time). The versions
    it saw are the versions ``act`` deletes: a version written after the lookup is never
    deleted unseen. ``delete`` sends DeleteObjects calls of up to 1,000 objects, each by key
    and version id, so repeating one (after a timeout) deletes nothing twice and adds no
    delete marker. Throttling (HTTP 503 SlowDown) is retried with backoff by botocore's
    standard retry mode; per-object errors in a 200 reply that ask to retry (SlowDown,
    InternalError, ServiceUnavailable) are sent again with exponential backoff; any other
    per-object error makes the key ``failed`` with the code and message (and how many of
    its versions were deleted). A key with nothing left is ``gone``.

    ``quarantine`` copies the newest data version server-side (CopyObject, multipart above
    5 GiB) to ``connection.quarantine`` (bucket, and prefix + key), then deletes every version
    of the key. Older versions are not kept in the quarantine. ``restore`` copies it back to
    its key (refused when an object is there now) and deletes it from the quarantine;
    ``purge`` deletes every version of it from the quarantine. An exact copy already at the
    destination (what a crash between copy and delete leaves) is taken as the copy. A
    connector in a dry run refuses every action.

Discovery
    ``discover`` lists the buckets the credentials can list (or the target's base) and shares
    each bucket's objects (every version holding data) out between the bucket's own store and
    its prefixes down to ``depth`` levels, with objects, bytes, ages and stale objects;
    ``sample`` reads a few objects of each with a ranged GetObject; a bucket that cannot be
    listed is an ``uninspectable`` finding. See ``connectors._bucketdiscovery``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Final, NamedTuple

from connectors._dates import check_format, parse_date
from connectors.base import (
    ActRequest,
    Connector,
    ConnectorContext,
    DiscoveredStore,
    DiscoverRequest,
    LocationModel,
    NotDueSummary,
    Outcome,
    Sample,
    SampleRequest,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from sweeper.errors import (
    ActionUnsupported,
    ConnectorError,
    LocationInvalid,
    SystemUnreachable,
)
from sweeper.logging import redact
from sweeper.ropa.model import (
    BucketLocation,
    BucketSystem,
    Clock,
    ColumnClock,
    EventClock,
    MetadataClock,
    PathDateClock,
    TagClock,
)

__all__ = ["BucketConnector", "parse_credential", "start_before"]

_PAGE: Final = 1000  # entries per list call and objects per DeleteObjects call (S3's maximum)
_POOL: Final = 8  # per-object calls (HeadObject, GetObjectTagging) in flight at once
_CHUNK: Final = 256  # keys whose per-object calls are made together
_COPY_LIMIT: Final = 5 * 1024**3  # CopyObject's maximum; above it, a multipart copy
_RETRY_CODES: Final = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "503"})
_MAX_TRIES: Final = 8
_ACTIONS: Final = ("delete", "quarantine", "restore", "purge")
_NAMED_CLOCKS: Final = ("modified", "mtime", "created")
_CREDENTIAL_NAMES: Final = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


# ---------------------------------------------------------------------------------------------
# Credentials and keys


def parse_credential(text: str) -> dict[str, str]:
    """Given a credential's secret text, return its ``aws_access_key_id``,
    ``aws_secret_access_key`` and, if given, ``aws_session_token``.

    Raise ValueError naming what is wrong (never a value) if the text is not of that form.
    """
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or (line.startswith("[") and line.endswith("]")):
            continue
        name, sep, value = line.partition("=")
        name = name.strip().lower()
        if not sep or name not in _CREDENTIAL_NAMES:
            raise ValueError(
                f"line {number} is not 'NAME = VALUE' with NAME one of "
                + ", ".join(_CREDENTIAL_NAMES)
            )
        found[name] = value.strip()
    missing = [n for n in _CREDENTIAL_NAMES[:2] if not found.get(n)]
    if missing:
        raise ValueError(f"{' and '.join(missing)} missing")
    return found


def start_before(key: str) -> str:
    """Given a key, return a string just below it, for StartAfter: no real key lies between.

    The last character is lowered by one and followed by the highest code point, so only a
    key that begins with that very string (of which none is written in practice) can fall in
    between; a key ending in the lowest character drops it.
    """
    if not key:
        return ""
    last = ord(key[-1])
    if last <= 1:
        return key[:-1]
    lower = last - 1
    if 0xD800 <= lower <= 0xDFFF:  # no surrogates in a UTF-8 string
        lower = 0xD7FF
    return key[:-1] + chr(lower) + "\U0010ffff"


# ---------------------------------------------------------------------------------------------
# Versions and keys as listed


class _Version(NamedTuple):
    """One entry of a key's listing: a version that holds data, or a delete marker."""

    version_id: str | None  # None: the object of a bucket never versioned
    etag: str
    size: int
    modified: datetime
    marker: bool
    latest: bool


@dataclass
class _Lock:
    """What Object Lock says about one key's versions at the time it was read."""

    refusal: str | None = None  # e.g. "COMPLIANCE retention until 2031-06-30"
    bypass: dict[str, str] = field(default_factory=dict)  # version id -> governance date


class _Key(NamedTuple):
    key: str
    versions: list[_Version]  # newest first

    @property
    def data(self) -> list[_Version]:
        return [v for v in self.versions if not v.marker]

    def newest_data(self) -> _Version | None:
        return next((v for v in self.versions if not v.marker), None)

    def fingerprint(self) -> str:
        if len(self.versions) == 1:
            v = self.versions[0]
            stamp = int(v.modified.timestamp())
            return f"{v.version_id}:{v.etag}:{v.size}:{stamp}{':m' if v.marker else ''}"
        digest = hashlib.sha256()
        for v in self.versions:
            digest.update(f"{v.version_id}:{v.etag}:{v.size}:{int(v.marker)}\n".encode())
        return f"v{len(self.versions)}:{digest.hexdigest()[:32]}"


def _entry(raw: dict[str, Any], marker: bool, versioned: bool) -> _Version:
    return _Version(
        raw.get("VersionId") if versioned else None,
        raw.get("ETag", ""),
        int(raw.get("Size", 0)),
        raw["LastModified"],
        marker,
        bool(raw.get("IsLatest", True)),
    )


def _group_pages(pages: Iterable[list[tuple[str, _Version]]]) -> Iterator[_Key]:
    """Given pages of (key, version) in key order, yield each key with all its versions, a
    key whose versions run over a page boundary once."""
    current: _Key | None = None
    for page in pages:
        for key, version in page:
            if current is not None and current.key == key:
                current.versions.append(version)
                continue
            if current is not None:
                yield _sorted(current)
            current = _Key(key, [version])
    if current is not None:
        yield _sorted(current)


def _sorted(key: _Key) -> _Key:
    if len(key.versions) > 1:
        key.versions.sort(key=lambda v: (not v.latest, -v.modified.timestamp()))
    return key


# ---------------------------------------------------------------------------------------------
# Reading an item's subject and clock


class _Reader:
    """Turns a listed key into its subject and (where the listing has it) its clock."""

    def __init__(self, location: BucketLocation, clock: Clock, tz: tzinfo) -> None:
        self.regex = re.compile(location.key_regex) if location.key_regex else None
        groups = self.regex.groupindex if self.regex is not None else {}
        self.subject_group = location.subject_group if location.subject_group in groups else None
        self.clock = clock
        self.tz = tz
        self.event = isinstance(clock, EventClock)
        self.needs_call = isinstance(clock, TagClock | MetadataClock)

    def match(self, key: str) -> tuple[bool, re.Match[str] | None]:
        """Return whether the location covers the key, and the regex's match."""
        if self.regex is None:
            return True, None
        found = self.regex.search(key)
        return found is not None, found

    def subject(self, match: re.Match[str] | None) -> str | None:
        if self.subject_group is None or match is None:
            return None
        return match.group(self.subject_group)

    def listed_clock(
        self, item: _Key, match: re.Match[str] | None
    ) -> tuple[datetime | None, str | None]:
        """Return (clock, problem) as far as the listing tells; (None, None) for an event
        clock or a clock that needs a call per object."""
        clock = self.clock
        if clock in ("modified", "mtime"):
            newest = item.newest_data() or item.versions[0]
            return newest.modified, None
        if clock == "created":
            return min(v.modified for v in item.versions), None
        if isinstance(clock, PathDateClock):
            value = match.group(clock.path_date) if match is not None else None
            if value is None:
                return None, f"{item.key}: key_regex gives no {clock.path_date!r} group here"
            moment = parse_date(value, clock.format, self.tz)
            if moment is None:
                return None, (
                    f"{item.key}: the date {value!r} in the key does not match the format "
                    f"{clock.format!r}"
                )
            return moment, None
        return None, None

    def called_clock(self, key: str, value: str | None) -> tuple[datetime | None, str | None]:
        """Given the tag or metadata value read for a key, return (clock, problem)."""
        clock = self.clock
        assert isinstance(clock, TagClock | MetadataClock)
        what = (
            f"tag {clock.tag!r}"
            if isinstance(clock, TagClock)
            else (f"metadata {clock.metadata!r}")
        )
        if value is None:
            return None, f"{key}: the object has no {what}"
        moment = parse_date(value, clock.format, self.tz)
        if moment is None:
            return None, f"{key}: {what} {value!r} does not match the format {clock.format!r}"
        return moment, None


# ---------------------------------------------------------------------------------------------
# The connector


@dataclass
class _BucketInfo:
    versioned: bool  # versioning Enabled or Suspended: list versions
    locked: bool  # Object Lock enabled


@dataclass
class _Noncurrent:
    """The noncurrent versions behind current versions that are not due, for the finding."""

    keys: int = 0
    versions: int = 0
    markers: int = 0
    size: int = 0
    past: int = 0  # noncurrent for longer than the period

    def add(self, item: _Key, cutoff: datetime | None) -> None:
        versions = item.versions
        current = versions[0]
        if len(versions) == 1 and not current.marker:
            return
        self.keys += 1
        if current.marker:  # the key looks deleted; every version behind it is noncurrent
            self.markers += 1
            if cutoff is not None and current.modified <= cutoff:
                self.past += 1
        for newer, version in itertools.pairwise(versions):
            if version.marker:
                self.markers += 1
            else:
                self.versions += 1
                self.size += version.size
            if cutoff is not None and newer.modified <= cutoff:  # noncurrent since then
                self.past += 1


class BucketConnector(Connector):
    """Objects in S3 buckets; see the module docstring."""

    kind: ClassVar[str] = "bucket"
    system: BucketSystem

    def __init__(self, system: BucketSystem, context: ConnectorContext) -> None:
        super().__init__(system, context)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._buckets: dict[str, _BucketInfo] = {}
        self._verified: dict[tuple[str, str], tuple[_Key, _Lock]] = {}
        self._secrets: list[str] = []
        # per discovered store: the objects to read and to judge by name (key, size, version)
        self._discovery_samples: dict[str, tuple[list[tuple[str, int, str | None]], ...]] = {}

    # -- the client ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use. Raise SystemUnreachable if it cannot be."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import boto3
        import botocore.config
        import botocore.exceptions

        connection = self.system.connection
        keys: dict[str, str] = {}
        if connection.credential is not None:
            secret = self.context.credential(connection.credential).get_secret_value()
            try:
                keys = parse_credential(secret)
            except ValueError as err:
                raise SystemUnreachable(
                    self.system.id,
                    f"credential {connection.credential!r} is not an S3 key: {err}; write "
                    "lines 'aws_access_key_id = …' and 'aws_secret_access_key = …'",
                ) from None
            self._secrets = [v for v in keys.values() if v]
        try:
            session = boto3.Session(profile_name=connection.profile)
        except botocore.exceptions.ProfileNotFound as err:
            raise SystemUnreachable(
                self.system.id,
                f"profile {connection.profile!r} is not in the AWS config files "
                "(~/.aws/config, ~/.aws/credentials, or $AWS_CONFIG_FILE)",
            ) from err
        config = botocore.config.Config(
            s3={"addressing_style": connection.addressing_style},
            retries={"mode": "standard", "max_attempts": int(self._option("max_attempts", 8))},
            connect_timeout=float(self._option("connect_timeout", 10)),
            read_timeout=float(self._option("read_timeout", 60)),
            max_pool_connections=_POOL * 2,
            user_agent_extra="ropa-sweeper",
        )
        verify: bool | str = True
        if connection.ca_bundle is not None:
            verify = str(Path(self.context.base_dir) / connection.ca_bundle)
        return session.client(
            "s3",
            endpoint_url=connection.endpoint_url,
            region_name=connection.region,
            config=config,
            verify=verify,
            **keys,
        )

    def _option(self, name: str, default: Any) -> Any:
        return self.context.options.get(name, default)

    def _call(self, what: str, bucket: str | None, method: str, **params: Any) -> Any:
        """Call a client method; translate a driver error into a ConnectorError."""
        try:
            return getattr(self.client, method)(**params)
        except ConnectorError:
            raise
        except Exception as err:
            raise self._failure(what, bucket, err) from err

    def _failure(self, what: str, bucket: str | None, err: Exception) -> ConnectorError:
        """Given a driver error, return the ConnectorError that says what went wrong."""
        import botocore.exceptions

        where = self.system.connection.endpoint_url or "AWS S3"
        if isinstance(err, botocore.exceptions.ClientError):
            code = _code(err)
            message = err.response.get("Error", {}).get("Message") or ""
            if code in ("NoSuchBucket", "404") and bucket is not None:
                return LocationInvalid(self.system.id, f"bucket {bucket!r} does not exist")
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                return LocationInvalid(
                    self.system.id,
                    self._clean(
                        f"{what}: access denied ({code}"
                        + (f": {message}" if message else "")
                        + "): the credentials lack the permission"
                    ),
                )
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                return SystemUnreachable(
                    self.system.id,
                    f"{where} refused the credentials ({code}): check the access key and secret",
                )
            return SystemUnreachable(
                self.system.id, self._clean(f"{what} failed: {code}: {message}".rstrip(": "))
            )
        if isinstance(err, botocore.exceptions.NoCredentialsError):
            return SystemUnreachable(
                self.system.id,
                "no credentials: name a credential (connection.credential) or a profile "
                "(connection.profile), or give the host a role",
            )
        if isinstance(err, botocore.exceptions.BotoCoreError):
            return SystemUnreachable(
                self.system.id, self._clean(f"{what}: cannot reach {where}: {err}")
            )
        if isinstance(err, ValueError):  # e.g. an invalid endpoint URL
            return SystemUnreachable(self.system.id, self._clean(f"{what}: {err}"))
        raise err

    def _clean(self, text: str) -> str:
        text = redact(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- check and prepare ------------------------------------------------------------------

    def check(self) -> None:
        """Check that the store answers and takes the credentials. Raise SystemUnreachable.

        ListBuckets may be denied to credentials scoped to some buckets: that still shows the
        store answered and knew the key, so it passes (each location's bucket is checked by
        ``prepare``)."""
        with contextlib.suppress(LocationInvalid):  # access denied: the key itself is valid
            self._call("list the buckets", None, "list_buckets")

    def _location(self, location: LocationModel) -> BucketLocation:
        if not isinstance(location, BucketLocation):
            raise LocationInvalid(
                self.system.id, "a bucket system is scanned by bucket and prefix, not a table"
            )
        return location

    def prepare(self, location: LocationModel, clock: Clock) -> None:
        """Check that the bucket exists and can be read, and that the clock fits the location.
        Raise LocationInvalid."""
        location = self._location(location)
        self._check_clock(location, clock)
        self._bucket(location.bucket)
        quarantine = self.system.connection.quarantine
        if (
            quarantine is not None
            and quarantine.bucket == location.bucket
            and (
                quarantine.prefix.startswith(location.prefix)
                or location.prefix.startswith(quarantine.prefix)
            )
        ):
            raise LocationInvalid(
                self.system.id,
                f"the quarantine prefix {quarantine.prefix!r} overlaps location {location.label}",
            )

    def _check_clock(self, location: BucketLocation, clock: Clock) -> None:
        where = f"location {location.label}"
        groups = location.regex_groups
        if (isinstance(clock, str) and clock not in _NAMED_CLOCKS) or isinstance(
            clock, ColumnClock
        ):
            raise LocationInvalid(
                self.system.id,
                f"{where}: S3 objects have no such clock ({clock!r}); use modified, created, "
                "{path_date: GROUP}, {tag: KEY}, {metadata: NAME} or {event: ID}",
            )
        if isinstance(clock, PathDateClock) and clock.path_date not in groups:
            raise LocationInvalid(
                self.system.id,
                f"{where}: the clock reads the date from group {clock.path_date!r}, but "
                f"key_regex {location.key_regex!r} has no such named group",
            )
        if isinstance(clock, EventClock) and location.subject_group not in groups:
            raise LocationInvalid(
                self.system.id,
                f"{where}: the clock is event {clock.event!r}, read per subject, but key_regex "
                f"{location.key_regex!r} has no named group {location.subject_group!r}",
            )
        if isinstance(clock, PathDateClock | TagClock | MetadataClock):
            problem = check_format(clock.format)
            if problem is not None:
                raise LocationInvalid(
                    self.system.id,
                    f"{where}: the date format {clock.format!r} cannot read a date: {problem}",
                )

    def _bucket(self, bucket: str) -> _BucketInfo:
        """Return what the bucket's versioning and Object Lock are, read once."""
        if bucket in self._buckets:
            return self._buckets[bucket]
        self._call(f"bucket {bucket!r}", bucket, "head_bucket", Bucket=bucket)
        status = self._call(
            f"read the versioning of bucket {bucket!r} (s3:GetBucketVersioning)",
            bucket,
            "get_bucket_versioning",
            Bucket=bucket,
        ).get("Status")
        locked = False
        try:
            config = self.client.get_object_lock_configuration(Bucket=bucket)
            lock = config.get("ObjectLockConfiguration", {})
            locked = lock.get("ObjectLockEnabled") == "Enabled"
        except Exception as err:
            if _code(err) not in ("ObjectLockConfigurationNotFoundError", "404"):
                raise self._failure(
                    f"read the Object Lock configuration of bucket {bucket!r} "
                    "(s3:GetBucketObjectLockConfiguration)",
                    bucket,
                    err,
                ) from err
        info = _BucketInfo(versioned=status in ("Enabled", "Suspended"), locked=locked)
        self._buckets[bucket] = info
        return info

    # -- listing ---------------------------------------------------------------------------

    def _pages(
        self, bucket: str, prefix: str, versioned: bool
    ) -> Iterator[list[tuple[str, _Version]]]:
        """Yield the listing's pages as (key, version) in key order."""
        what = f"list bucket {bucket!r}"
        if not versioned:
            params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            while True:
                page = self._call(what, bucket, "list_objects_v2", **params)
                yield [(o["Key"], _entry(o, False, False)) for o in page.get("Contents", ())]
                if not page.get("IsTruncated"):
                    return
                params = {
                    "Bucket": bucket,
                    "Prefix": prefix,
                    "ContinuationToken": page["NextContinuationToken"],
                }
        params = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self._call(what, bucket, "list_object_versions", **params)
            entries = [(v["Key"], _entry(v, False, True)) for v in page.get("Versions", ())]
            markers = page.get("DeleteMarkers")
            if markers:
                entries.extend((m["Key"], _entry(m, True, True)) for m in markers)
                entries.sort(key=lambda e: e[0])  # stable: each key's entries stay together
            yield entries
            if not page.get("IsTruncated"):
                return
            params = {
                "Bucket": bucket,
                "Prefix": prefix,
                "KeyMarker": page["NextKeyMarker"],
                "VersionIdMarker": page.get("NextVersionIdMarker") or "",
            }
            if not params["VersionIdMarker"]:
                del params["VersionIdMarker"]

    def _keys(self, bucket: str, prefix: str) -> Iterator[_Key]:
        return _group_pages(self._pages(bucket, prefix, self._bucket(bucket).versioned))

    # -- scan ------------------------------------------------------------------------------

    def scan(self, request: ScanRequest) -> Iterator[ScanOutput]:
        """Stream the location's keys as items, a NotDueSummary with a cutoff, and the
        noncurrent-versions finding. Raise LocationInvalid if the location does not fit."""
        location = self._location(request.location)
        self.prepare(location, request.clock)
        return self._scan(location, request)

    def _scan(self, location: BucketLocation, request: ScanRequest) -> Iterator[ScanOutput]:
        reader = _Reader(location, request.clock, request.tz)
        info = self._bucket(location.bucket)
        cutoff = request.cutoff
        not_due = NotDueSummary(0, None, 0)
        noncurrent = _Noncurrent()
        pending: list[_Row] = []
        with _Pool() as pool:
            for item in self._keys(location.bucket, location.prefix):
                covered, match = reader.match(item.key)
                if not covered:
                    continue
                clock, problem = reader.listed_clock(item, match)
                if clock is not None and cutoff is not None and clock > cutoff:
                    not_due = _count(not_due, item, clock)
                    noncurrent.add(item, cutoff)
                    continue
                row = _Row(item, reader.subject(match), clock, problem)
                if problem is None and (reader.needs_call or info.locked):
                    pending.append(row)
                    if len(pending) >= _CHUNK:
                        not_due = yield from self._resolve(
                            location, reader, info, pending, cutoff, pool, not_due, noncurrent
                        )
                        pending = []
                    continue
                if cutoff is None:
                    noncurrent.add(item, None)
                yield _item(row, None)
            if pending:
                not_due = yield from self._resolve(
                    location, reader, info, pending, cutoff, pool, not_due, noncurrent
                )
        if noncurrent.keys:
            yield self._noncurrent_finding(location, noncurrent, cutoff)
        if not_due.count:
            yield not_due

    def _resolve(
        self,
        location: BucketLocation,
        reader: _Reader,
        info: _BucketInfo,
        rows: list[_Row],
        cutoff: datetime | None,
        pool: _Pool,
        not_due: NotDueSummary,
        noncurrent: _Noncurrent,
    ) -> Generator[ScannedItem, None, NotDueSummary]:
        """Read the per-object clocks and locks of a chunk of keys and yield their items;
        return the not-due summary with the keys the clock showed not due counted in."""
        bucket = location.bucket
        if reader.needs_call:
            rows = self._called_clocks(bucket, reader, rows, pool)
        candidates = []
        for row in rows:
            if row.clock is not None and cutoff is not None and row.clock > cutoff:
                not_due = _count(not_due, row.item, row.clock)
                noncurrent.add(row.item, cutoff)
            else:
                if cutoff is None:
                    noncurrent.add(row.item, None)
                candidates.append(row)
        locks: list[_Lock | None] = [None] * len(candidates)
        if info.locked:
            locks = pool.map(lambda r: self._lock(bucket, r.item), candidates)
        for row, lock in zip(candidates, locks, strict=True):
            yield _item(row, lock)
        return not_due

    def _called_clocks(
        self, bucket: str, reader: _Reader, rows: list[_Row], pool: _Pool
    ) -> list[_Row]:
        """Given rows, return them with the clock read from each key's tag or metadata."""
        values = pool.map(lambda r: self._clock_value(bucket, r.item, reader.clock), rows)
        return [
            _Row(r.item, r.subject, *reader.called_clock(r.item.key, v))
            for r, v in zip(rows, values, strict=True)
        ]

    def _clock_value(self, bucket: str, item: _Key, clock: Clock) -> str | None:
        """Return the tag or metadata value the clock reads from the key's newest data."""
        newest = item.newest_data()
        if newest is None:
            return None
        version = {"VersionId": newest.version_id} if newest.version_id else {}
        if isinstance(clock, TagClock):
            reply = self._call(
                f"read the tags of {item.key!r} (s3:GetObjectTagging)",
                bucket,
                "get_object_tagging",
                Bucket=bucket,
                Key=item.key,
                **version,
            )
            return next(
                (t["Value"] for t in reply.get("TagSet", ()) if t["Key"] == clock.tag), None
            )
        assert isinstance(clock, MetadataClock)
        reply = self._call(
            f"read the metadata of {item.key!r}",
            bucket,
            "head_object",
            Bucket=bucket,
            Key=item.key,
            **version,
        )
        metadata = {k.lower(): v for k, v in reply.get("Metadata", {}).items()}
        return metadata.get(clock.metadata.lower())

    def _lock(self, bucket: str, item: _Key) -> _Lock:
        """Read the Object Lock of each of the key's data versions (HeadObject)."""
        now = datetime.now(UTC)
        bypass_allowed = self.system.connection.bypass_governance
        holds, compliance, governance = 0, [], {}
        for version in item.data:
            params = {"Bucket": bucket, "Key": item.key}
            if version.version_id:
                params["VersionId"] = version.version_id
            try:
                head = self.client.head_object(**params)
            except Exception as err:
                if _code(err) in ("404", "NoSuchKey", "NoSuchVersion"):
                    continue  # gone since the listing: nothing left to lock
                raise self._failure(
                    f"read the Object Lock of {item.key!r} (s3:GetObjectRetention, "
                    "s3:GetObjectLegalHold)",
                    bucket,
                    err,
                ) from err
            if head.get("ObjectLockLegalHoldStatus") == "ON":
                holds += 1
            until = head.get("ObjectLockRetainUntilDate")
            mode = head.get("ObjectLockMode")
            if until is not None and until > now:
                if mode == "COMPLIANCE":
                    compliance.append(until)
                elif mode == "GOVERNANCE":
                    governance[str(version.version_id)] = until
        parts = []
        if holds:
            parts.append(f"legal hold on {holds} of {len(item.data)} version(s)")
        if compliance:
            parts.append(f"COMPLIANCE retention until {max(compliance):%Y-%m-%d}")
        if governance and not bypass_allowed:
            parts.append(f"GOVERNANCE retention until {max(governance.values()):%Y-%m-%d}")
        if parts:
            return _Lock(refusal="; ".join(parts))
        return _Lock(bypass={v: f"{d:%Y-%m-%dT%H:%M:%SZ}" for v, d in governance.items()})

    def _noncurrent_finding(
        self, location: BucketLocation, tally: _Noncurrent, cutoff: datetime | None
    ) -> ScanFinding:
        which = (
            "of keys whose current version is not due"
            if cutoff is not None
            else "of all keys (those of due keys are deleted with them)"
        )
        past = (
            f"; {tally.past} noncurrent for longer than the retention period"
            if cutoff is not None
            else ""
        )
        return ScanFinding(
            "noncurrent_versions",
            f"s3://{location.bucket}/{location.prefix}",
            f"{tally.versions} noncurrent version(s) ({tally.size} bytes) and "
            f"{tally.markers} delete marker(s) {which}: {tally.keys} key(s){past}. "
            "Versioning keeps this old data; expire it with a lifecycle rule "
            "(sweeper export s3-lifecycle)",
        )

    # -- lookup ----------------------------------------------------------------------------

    def lookup(
        self, location: LocationModel, clock: Clock, tz: tzinfo, keys: Sequence[str]
    ) -> dict[str, ScannedItem]:
        """Given keys, return the items that still exist, read as ``scan`` reads them (with
        their Object Lock), and remember the versions seen: ``act`` deletes those. Absent are
        keys with no version left and keys the location no longer covers."""
        location = self._location(location)
        self.prepare(location, clock)
        info = self._bucket(location.bucket)
        reader = _Reader(location, clock, tz)
        wanted = sorted({k for k in keys if k.startswith(location.prefix) and reader.match(k)[0]})
        self._verified = {}
        found: dict[str, ScannedItem] = {}
        with _Pool() as pool:
            listed = self._listed(location.bucket, location.prefix, wanted, info, pool)
            rows = []
            for item in listed:
                match = reader.match(item.key)[1]
                rows.append(_Row(item, reader.subject(match), *reader.listed_clock(item, match)))
            if reader.needs_call:
                rows = self._called_clocks(location.bucket, reader, rows, pool)
            locks: list[_Lock | None] = [None] * len(rows)
            if info.locked:
                locks = pool.map(lambda r: self._lock(location.bucket, r.item), rows)
        for row, lock in zip(rows, locks, strict=True):
            found[row.item.key] = _item(row, lock)
            self._verified[(location.bucket, row.item.key)] = (row.item, lock or _Lock())
        return found

    def _listed(
        self, bucket: str, prefix: str, wanted: list[str], info: _BucketInfo, pool: _Pool
    ) -> list[_Key]:
        """Return the wanted keys that exist, with all their versions."""
        if not wanted:
            return []
        if info.versioned:
            found = pool.map(lambda k: self._versions_of(bucket, k, True), wanted)
            return [k for k in found if k is not None]
        out: list[_Key] = []
        i = 0
        start = start_before(wanted[0])
        while i < len(wanted):
            page = self._call(
                f"list bucket {bucket!r}",
                bucket,
                "list_objects_v2",
                Bucket=bucket,
                Prefix=prefix,
                StartAfter=start,
            )
            contents = {o["Key"]: o for o in page.get("Contents", ())}
            last = page["Contents"][-1]["Key"] if page.get("Contents") else None
            if not page.get("IsTruncated") or last is None:
                last = None  # the listing ended: every key left is absent
            while i < len(wanted) and (last is None or wanted[i] <= last):
                entry = contents.get(wanted[i])
                if entry is not None:
                    out.append(_Key(wanted[i], [_entry(entry, False, False)]))
                i += 1
            if i < len(wanted):
                # Jump to just before the next key; never back, so every call moves on.
                start = max(start_before(wanted[i]), last or "")
        return out

    def _versions_of(self, bucket: str, key: str, versioned: bool) -> _Key | None:
        """Return one key with all its versions (its listing by prefix), or None if none."""
        for item in _group_pages(self._pages(bucket, key, versioned)):
            if item.key == key:
                return item
            if item.key > key:
                break
        return None

    # -- act -------------------------------------------------------------------------------

    def act(self, request: ActRequest) -> Iterator[Outcome]:
        """Delete, quarantine, restore or purge keys; return an iterator of one Outcome per
        distinct key. Raise ActionUnsupported at once on a read-only connector, for another
        action, or for a quarantine action without ``connection.quarantine``."""
        action = request.action
        if self.context.read_only:
            raise ActionUnsupported(
                self.system.id, f"cannot {action}: the connector is read-only (dry run)"
            )
        if action not in _ACTIONS:
            why = " (an object cannot be anonymised: delete or quarantine it)"
            raise ActionUnsupported(
                self.system.id,
                f"a bucket cannot {action!r} objects: it can delete, quarantine, restore or "
                "purge them" + (why if action == "anonymise" else ""),
            )
        location = self._location(request.location)
        if action != "delete" and self.system.connection.quarantine is None:
            raise ActionUnsupported(
                self.system.id,
                f"cannot {action}: the system has no connection.quarantine to keep objects in",
            )
        keys = list(dict.fromkeys(request.keys))
        if action == "delete":
            return self._delete_keys(location.bucket, keys)
        return self._quarantine_action(action, location, keys)

    def _current(self, bucket: str, key: str) -> tuple[_Key, _Lock] | None:
        """Return the key's versions as ``lookup`` saw them, or as they are now."""
        seen = self._verified.pop((bucket, key), None)
        if seen is not None:
            return seen
        item = self._versions_of(bucket, key, self._bucket(bucket).versioned)
        if item is None:
            return None
        lock = self._lock(bucket, item) if self._bucket(bucket).locked else _Lock()
        return item, lock

    def _delete_keys(self, bucket: str, keys: list[str]) -> Iterator[Outcome]:
        """Delete every version of each key (as ``lookup`` saw them); yield their outcomes."""
        deleter = _Deleter(self, bucket)
        for key in keys:
            current = self._current(bucket, key)
            if current is None:
                yield Outcome(key, "gone", "no version left")
                continue
            item, lock = current
            if lock.refusal is not None:
                yield Outcome(key, "failed", f"locked: {lock.refusal}")
                continue
            yield from deleter.add(item, lock)
        yield from deleter.flush()

    def _quarantine_action(
        self, action: str, location: BucketLocation, keys: list[str]
    ) -> Generator[Outcome, None, None]:
        quarantine = self.system.connection.quarantine
        assert quarantine is not None
        self._bucket(quarantine.bucket)
        for key in keys:
            try:
                if action == "quarantine":
                    yield self._quarantine_one(
                        location.bucket, key, quarantine.bucket, quarantine.prefix
                    )
                elif action == "restore":
                    yield self._restore_one(
                        location.bucket, key, quarantine.bucket, quarantine.prefix
                    )
                else:
                    yield self._purge_one(key, quarantine.bucket, quarantine.prefix + key)
            except ConnectorError as err:
                if isinstance(err, SystemUnreachable):
                    raise
                yield Outcome(key, "failed", f"{action} failed: {err}")

    def _copy(self, source: tuple[str, str, str | None], size: int, bucket: str, key: str) -> None:
        """Copy one object version server-side (multipart above 5 GiB)."""
        src_bucket, src_key, version = source
        copy_source = {"Bucket": src_bucket, "Key": src_key}
        if version:
            copy_source["VersionId"] = version
        what = f"copy {src_key!r} to s3://{bucket}/{key}"
        if size <= _COPY_LIMIT:
            self._call(what, bucket, "copy_object", Bucket=bucket, Key=key, CopySource=copy_source)
        else:
            self._call(what, bucket, "copy", CopySource=copy_source, Bucket=bucket, Key=key)

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """Return the current object's HeadObject reply, or None if there is none."""
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key))
        except Exception as err:
            if _code(err) in ("404", "NoSuchKey", "405"):
                return None
            raise self._failure(f"read s3://{bucket}/{key}", bucket, err) from err

    def _quarantine_one(self, bucket: str, key: str, q_bucket: str, q_prefix: str) -> Outcome:
        current = self._current(bucket, key)
        if current is None:
            return Outcome(key, "gone", "no version left")
        item, lock = current
        if lock.refusal is not None:
            return Outcome(key, "failed", f"locked: {lock.refusal}")
        newest = item.newest_data()
        target = q_prefix + key
        if newest is not None:
            there = self._head(q_bucket, target)
            if there is not None and not _same(there, newest):
                return Outcome(key, "failed", "already in the quarantine (a different object)")
            if there is None:
                self._copy((bucket, key, newest.version_id), newest.size, q_bucket, target)
        outcome = self._delete_one(bucket, item, lock)
        if outcome.status != "done":
            return outcome
        details = {**(outcome.details or {}), "quarantined_to": f"s3://{q_bucket}/{target}"}
        return Outcome(key, "done", outcome.message, details)

    def _restore_one(self, bucket: str, key: str, q_bucket: str, q_prefix: str) -> Outcome:
        source = q_prefix + key
        held = self._versions_of(q_bucket, source, self._bucket(q_bucket).versioned)
        newest = held.newest_data() if held is not None else None
        if held is None or newest is None:
            return Outcome(key, "gone", "not in the quarantine")
        there = self._head(bucket, key)
        if there is not None and not _same(there, newest):
            return Outcome(key, "failed", "an object exists at the original key")
        if there is None:
            self._copy((q_bucket, source, newest.version_id), newest.size, bucket, key)
        outcome = self._delete_one(q_bucket, held, _Lock())
        return Outcome(
            key, outcome.status, outcome.message, {"restored_to": f"s3://{bucket}/{key}"}
        )

    def _purge_one(self, key: str, q_bucket: str, source: str) -> Outcome:
        held = self._versions_of(q_bucket, source, self._bucket(q_bucket).versioned)
        if held is None:
            return Outcome(key, "gone", "not in the quarantine")
        outcome = self._delete_one(q_bucket, held, _Lock())
        return outcome._replace(key=key)

    def _delete_one(self, bucket: str, item: _Key, lock: _Lock) -> Outcome:
        deleter = _Deleter(self, bucket)
        outcomes = [*deleter.add(item, lock), *deleter.flush()]
        return outcomes[0]

    # -- discovery (connectors._bucketdiscovery) -------------------------------------------

    def discover(self, request: DiscoverRequest) -> Iterator[DiscoveredStore | ScanFinding]:
        """Stream each bucket (or ``request.base``) as stores: the bucket's own objects and its
        prefixes down to ``request.depth`` levels, each object in one store, with objects,
        bytes, ages and stale objects; a bucket that cannot be listed is ``uninspectable``."""
        from connectors import _bucketdiscovery

        return _bucketdiscovery.discover(self, request)

    def sample(self, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
        """Read a few objects of a discovered bucket or prefix (CSV, TSV, XLSX, text; one
        ranged GetObject of at most ``request.bytes`` each) and name the others."""
        from connectors import _bucketdiscovery

        return _bucketdiscovery.sample(self, request)

    def scope(self, request: DiscoverRequest) -> tuple[str, ...]:
        """Return the place discovery reaches: the endpoint, or the base bucket and prefix."""
        from connectors import _bucketdiscovery

        return _bucketdiscovery.scope(self, request)

    def quarantine_places(self) -> tuple[tuple[str, ...], ...]:
        """Return the quarantine bucket and prefix as a place, if the system has one."""
        from connectors import _bucketdiscovery

        return _bucketdiscovery.quarantine_places(self)

    def locate(self, store: DiscoveredStore) -> tuple[str, ...]:
        """Return a store's place: ``("bucket", endpoint, bucket, *prefix segments)``."""
        from connectors import _bucketdiscovery

        return _bucketdiscovery.locate(self, store)

    def coverage(self, location: Any, place: tuple[str, ...], store: DiscoveredStore) -> str:
        """Return whether the location's bucket, prefix and key_regex cover the store."""
        from connectors import _bucketdiscovery

        return _bucketdiscovery.coverage(self, location, place, store)

    def close(self) -> None:
        self._verified = {}
        self._discovery_samples = {}
        if self._client is not None:
            self._client.close()
            self._client = None


# ---------------------------------------------------------------------------------------------
# Deleting in DeleteObjects calls


class _Deleter:
    """Collects the objects of whole keys into DeleteObjects calls of at most 1,000 objects
    and yields each key's outcome once all its objects are answered."""

    def __init__(self, connector: BucketConnector, bucket: str) -> None:
        self.connector = connector
        self.bucket = bucket
        self.queue: list[tuple[str, str | None]] = []  # objects not sent yet
        self.bypass_queue: list[tuple[str, str | None]] = []
        self.waiting: dict[str, _Pending] = {}  # key -> what is still unanswered

    def add(self, item: _Key, lock: _Lock) -> Iterator[Outcome]:
        objects = [(item.key, v.version_id) for v in item.versions]
        pending = _Pending(item, lock, remaining=len(objects))
        self.waiting[item.key] = pending
        for obj in objects:
            if obj[1] is not None and obj[1] in lock.bypass:
                self.bypass_queue.append(obj)
            else:
                self.queue.append(obj)
        while len(self.queue) >= _PAGE:
            yield from self._send(self.queue[:_PAGE], bypass=False)
            del self.queue[:_PAGE]
        while len(self.bypass_queue) >= _PAGE:
            yield from self._send(self.bypass_queue[:_PAGE], bypass=True)
            del self.bypass_queue[:_PAGE]

    def flush(self) -> Iterator[Outcome]:
        if self.queue:
            yield from self._send(self.queue, bypass=False)
            self.queue = []
        if self.bypass_queue:
            yield from self._send(self.bypass_queue, bypass=True)
            self.bypass_queue = []

    def _send(self, objects: list[tuple[str, str | None]], bypass: bool) -> Iterator[Outcome]:
        """Delete the objects, retrying those the store asks to retry; yield the outcomes of
        keys that are complete."""
        todo = list(objects)
        delay = float(self.connector._option("retry_delay", 0.5))
        for attempt in range(1, _MAX_TRIES + 1):
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Delete": {
                    "Objects": [
                        {"Key": k, "VersionId": v} if v is not None else {"Key": k} for k, v in todo
                    ],
                    "Quiet": False,
                },
            }
            if bypass:
                params["BypassGovernanceRetention"] = True
            reply = self.connector._call(
                f"delete objects in bucket {self.bucket!r}",
                self.bucket,
                "delete_objects",
                **params,
            )
            retry = []
            sent = set(todo)
            answered = set()
            for done in reply.get("Deleted", ()):
                obj = _sent(sent, done)
                answered.add(obj)
                self._answer(obj, None)
            for error in reply.get("Errors", ()):
                obj = _sent(sent, error)
                answered.add(obj)
                if error.get("Code") in _RETRY_CODES and attempt < _MAX_TRIES:
                    retry.append(obj)
                else:
                    self._answer(obj, f"{error.get('Code')}: {error.get('Message', '')}".strip())
            # An object the reply does not mention was not deleted: ask again.
            retry.extend(o for o in todo if o not in answered and o not in retry)
            yield from self._complete()
            if not retry:
                return
            todo = retry
            time.sleep(min(20.0, delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
        for obj in todo:  # pragma: no cover  (only after _MAX_TRIES replies that all retried)
            self._answer(obj, "no answer after retries")
        yield from self._complete()

    def _answer(self, obj: tuple[str, str | None], error: str | None) -> None:
        pending = self.waiting.get(obj[0])
        if pending is None:
            return
        pending.remaining -= 1
        if error is None:
            pending.deleted.append(obj[1])
        else:
            pending.errors.append(f"version {obj[1]}: {error}" if obj[1] else error)

    def _complete(self) -> Iterator[Outcome]:
        for key in [k for k, p in self.waiting.items() if p.remaining <= 0]:
            yield self.waiting.pop(key).outcome()


def _sent(sent: set[tuple[str, str | None]], entry: dict[str, Any]) -> tuple[str, str | None]:
    """Given a DeleteObjects reply entry, return the object sent that it answers (an object
    sent without a version id may be answered with one)."""
    obj = (entry["Key"], entry.get("VersionId"))
    if obj not in sent and (entry["Key"], None) in sent:
        return (entry["Key"], None)
    return obj


@dataclass
class _Pending:
    item: _Key
    lock: _Lock
    remaining: int
    deleted: list[str | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def outcome(self) -> Outcome:
        item = self.item
        markers = sum(1 for v in item.versions if v.marker)
        versions = len(item.versions) - markers
        details: dict[str, Any] = {"versions": versions, "delete_markers": markers}
        bypassed = [
            {"version_id": v, "retain_until": self.lock.bypass[v]}
            for v in self.deleted
            if v is not None and v in self.lock.bypass
        ]
        if bypassed:
            details["overrode_governance"] = bypassed
        if self.errors:
            return Outcome(
                item.key,
                "failed",
                f"{len(self.deleted)} of {len(item.versions)} version(s) deleted; "
                + "; ".join(self.errors[:5]),
                details,
            )
        return Outcome(item.key, "done", None, details)


# ---------------------------------------------------------------------------------------------
# Helpers


class _Pool:
    """A small thread pool for per-object calls, shut down when the block ends (so that no
    thread outlives a scan: the file-share connector forks only a single-threaded process)."""

    def __init__(self) -> None:
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(i) for i in items]
        if self.executor is None:
            self.executor = concurrent.futures.ThreadPoolExecutor(
                _POOL, thread_name_prefix="ropa-sweeper-s3"
            )
        return list(self.executor.map(fn, items))


def _count(summary: NotDueSummary, item: _Key, clock: datetime) -> NotDueSummary:
    earliest = summary.earliest_clock
    return NotDueSummary(
        summary.count + 1,
        clock if earliest is None or clock < earliest else earliest,
        summary.size + sum(v.size for v in item.versions),
    )


class _Row(NamedTuple):
    """A listed key with what has been read of it so far."""

    item: _Key
    subject: str | None
    clock: datetime | None
    problem: str | None


def _item(row: _Row, lock: _Lock | None) -> ScannedItem:
    item = row.item
    markers = sum(1 for v in item.versions if v.marker)
    size = sum(v.size for v in item.versions)
    details: dict[str, Any] = {
        "versions": len(item.versions) - markers,
        "delete_markers": markers,
        "bytes": size,
    }
    if item.versions[0].marker and markers < len(item.versions):
        details["current"] = "delete_marker"
    if lock is not None and lock.bypass:
        details["governance_override"] = len(lock.bypass)
    refused = reason = None
    if lock is not None and lock.refusal is not None:
        refused, reason = "locked", lock.refusal
    return ScannedItem(
        item.key,
        row.subject,
        row.clock,
        item.fingerprint(),
        size,
        details,
        row.problem,
        refused,
        reason,
    )


def _same(head: dict[str, Any], version: _Version) -> bool:
    """Whether an object (HeadObject reply) is a copy of the version: same size, and the same
    ETag where both are plain MD5s (a multipart copy gets another ETag)."""
    if int(head.get("ContentLength", -1)) != version.size:
        return False
    etag = str(head.get("ETag", ""))
    return "-" in etag or "-" in version.etag or etag == version.etag


def _code(err: Exception) -> str:
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return type(err).__name__
