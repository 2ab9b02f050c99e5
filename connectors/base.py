"""The contract every connector implements, and the values that cross it.

A connector reaches one kind of system (``sql``, ``fileshare``, …). The lifecycle in
``sweeper`` talks to it only through ``Connector``:

* ``check()`` — is the system reachable with the configured credentials?
* ``prepare(location, clock)`` — check every name the location uses (tables, columns, paths,
  patterns) against the real system before anything is scanned; raise ``LocationInvalid``.
* ``scan(request)`` — stream the location's items. Never load a whole table or tree.
* ``prepare_event(event)`` and ``read_event(event, subjects, now, tz)`` — check an event's
  names, and read its date per subject (SQL systems).
* ``lookup(location, clock, tz, keys)`` — re-read items by key, to re-verify them at execution.
* ``act(request)`` — act on a batch of items and stream one outcome per item.
* ``discover(request)`` — list the stores the system holds (tables, folders, buckets and
  prefixes, OUs) with counts, bytes and age, for shadow-data and coverage findings.
* ``sample(request)`` — read a bounded part of one discovered store's content (rows per
  table, bytes per file) for the personal-data detectors; nothing of it is kept.
* ``scope(request)``, ``locate(store)`` and ``coverage(location, place, store)`` — where a
  system's discovery reaches and where a store physically lies (so that systems reaching the
  same place, a share root and a sub-folder of it, say, are discovered once), and whether a
  location of the RoPA covers a store.

Drivers are imported lazily inside the connector, so a site without a driver needs it only
when a system of that kind is used. Connectors are found through the ``sweeper.connectors``
entry-point group (see ``connectors.registry``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from pydantic import SecretStr

from sweeper.errors import ActionUnsupported
from sweeper.ropa.model import (
    BucketLocation,
    Clock,
    DirectoryLocation,
    FileLocation,
    SqlEvent,
    SqlLocation,
)

LocationModel = SqlLocation | FileLocation | BucketLocation | DirectoryLocation


class ScannedItem(NamedTuple):
    """One item a scan found.

    Args:
        key: stable key within the location (JSON of the key columns, a relative path, …).
        subject: the data subject (student or staff number), as text, when the location has one.
        clock: aware clock start; None when the clock is an event (the lifecycle reads it by
            subject) or could not be read (then ``problem`` says why).
        fingerprint: changes whenever the item changes; compared again before acting.
        size: bytes, where the system knows it.
        details: connector-specific facts for the report, e.g. ``{"dependents": {"grades": 3}}``.
        problem: why the clock could not be read (NULL value, unparsable date in the path).
        refused: set when the system itself forbids acting on the item, whatever a rule
            says: ``locked`` (an S3 Object Lock retention or legal hold) or ``protected`` (a
            privileged or break-glass directory account). A due item gets this status in the
            plan instead of ``due``, with ``reason``; execution skips it if it is refused then.
            ``lookup`` may also answer ``unverifiable``: the item may exist but cannot be
            checked now (permission denied), so it is neither acted on nor taken for gone.
        reason: why the item is refused, e.g. ``COMPLIANCE retention until 2031-06-30``.
        disabled: for accounts, whether the account is disabled now; None where the system
            has no such state. A location that deletes accounts only after they have been
            disabled for a while (``DirectoryLocation.disabled_for``) reads it.
    """

    key: str
    subject: str | None
    clock: datetime | None
    fingerprint: str
    size: int | None = None
    details: Mapping[str, Any] | None = None
    problem: str | None = None
    refused: str | None = None
    reason: str | None = None
    disabled: bool | None = None


@dataclass(frozen=True, slots=True)
class NotDueSummary:
    """Items the data source itself found not yet due, counted rather than listed.

    ``earliest_clock`` is the earliest clock start among them, from which the lifecycle
    computes the location's next due date.
    """

    count: int
    earliest_clock: datetime | None
    size: int = 0


class ScanFinding(NamedTuple):
    """Something a scan met that is not an item but must be reported, the scan going on.

    ``kind`` is e.g. ``unreadable`` (a directory that cannot be listed) or
    ``symlink_outside`` (a link pointing out of the share root, not followed).
    """

    kind: str
    where: str
    message: str


ScanOutput = ScannedItem | NotDueSummary | ScanFinding


class DiscoveredStore(NamedTuple):
    """One store a system holds, as discovery lists it.

    Args:
        kind: what it is in the system's terms: ``table``, ``folder``, ``bucket``, ``prefix``,
            ``ou``.
        where: its name within the system, as a location would name it: ``dbo.students``,
            ``exports/2019``, ``exams/2024/``, ``OU=Leerlingen,DC=school,DC=local``.
        items: rows, files, objects or accounts in it, where known.
        size: bytes, where known.
        oldest: the oldest item's clock (created or modified), aware, where known.
        newest: the newest item's clock, aware, where known.
        stale: items past ``DiscoverRequest.stale_after`` (e.g. accounts without a logon for a
            year, objects not modified for a year), where the connector can tell.
        details: connector-specific facts (e.g. a table's column names); never a data value.
    """

    kind: str
    where: str
    items: int | None = None
    size: int | None = None
    oldest: datetime | None = None
    newest: datetime | None = None
    stale: int | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DiscoverRequest:
    """How far discovery looks.

    Args:
        now: the moment ages and staleness are measured from (aware).
        depth: folder or prefix levels below the root to list (files, objects).
        stale_after: an item untouched (not logged on, not modified) for longer is stale.
        base: where to start in the system's terms (a share sub-folder, a base DN, a bucket);
            None: the whole system as its connection reaches it.
        exclude: glob patterns (``*``, ``**``) of store names (``where``) not to list or enter.
        skip: places (as ``locate`` gives them) that other systems of the RoPA discover: not
            listed or entered here, so that nothing is discovered twice.
        options: kind-specific settings, e.g. for SQL ``databases`` (``["*"]``: every database
            on the server), ``schemas`` and ``exact_count_below``.
        listed: called while listing with how many more items (files, objects, accounts,
            tables) were listed, at least once a page or a thousand items, so that a long
            listing shows it is alive (a daemon's watchdog) and can be stopped: an exception
            it raises ends the discovery.
    """

    now: datetime
    depth: int = 2
    stale_after: timedelta = timedelta(days=365)
    base: str | None = None
    exclude: tuple[str, ...] = ()
    skip: tuple[tuple[str, ...], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    listed: Callable[[int], None] = field(default=lambda count: None, compare=False)


FULL = "full"
"""``coverage``: the location covers every item of the store."""
PARTIAL = "partial"
"""``coverage``: the location covers some of the store's items (a filter, a pattern)."""
NONE = "none"
"""``coverage``: the location covers nothing of the store."""


@dataclass(frozen=True)
class SampleRequest:
    """What part of a discovered store to read for the personal-data detectors.

    Args:
        store: the store, as ``discover`` gave it.
        rows: rows read per table, sheet or CSV file.
        bytes: bytes read per file.
        files: files whose content is read, per folder or prefix.
        names: files or objects besides those judged by their name and size only.
        keep_access_times: do not read a file when reading it would change its access time
            (``O_NOATIME`` refused), since a retention clock may be ``accessed``.
    """

    store: DiscoveredStore
    rows: int = 100
    bytes: int = 256 * 1024
    files: int = 10
    names: int = 50
    keep_access_times: bool = True


class Sample(NamedTuple):
    """A bounded part of a store's content, for the detectors only: it is never stored, logged
    or reported, and the lifecycle drops it once the detectors have counted what it holds.

    Args:
        where: the table, or the file's key (as discovery names files).
        name: the file's or object's name, for the name detectors; None for a table.
        fields: column names, for a table; None for a file (its first row may be a header).
        rows: the values, row by row (a table, a spreadsheet, a CSV file).
        text: running text (a text file, a SQL dump); None if there is none.
        size: the file's size in bytes, where known.
        skipped: why the content was not read (not a readable type, too large, no rights);
            the name and size still count.
        sheet: for a spreadsheet, the number of the sheet (1, 2, …).
        fraction: the part of the file the rows or text are, above 0 and at most 1, where
            known: what they hold times 1/fraction estimates what the whole file holds.
    """

    where: str
    name: str | None = None
    fields: Sequence[str] | None = None
    rows: Sequence[Sequence[Any]] = ()
    text: str | None = None
    size: int | None = None
    skipped: str | None = None
    sheet: int | None = None
    fraction: float | None = None


class Outcome(NamedTuple):
    """What happened to one item when a connector acted on it.

    Args:
        key: the item's key.
        status: ``done`` (acted on), ``gone`` (the item no longer exists: nothing to do),
            or ``failed`` (``message`` says why; nothing of this item was changed).
        message: why it failed, or a remark.
        details: facts for the audit log, e.g. ``{"rows": {"grades": 3, "students": 1}}`` or
            ``{"quarantined_to": "…"}``. Never a secret, never another person's data.
    """

    key: str
    status: str
    message: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ActRequest:
    """One batch of items of one location to act on.

    Args:
        location: the location from the RoPA.
        action: ``delete``, ``anonymise`` (SQL: the location's ``anonymise`` columns),
            ``quarantine``, ``restore`` or ``purge`` (files), ``disable`` or ``move``
            (directory accounts).
        keys: the items' keys, as the scan gave them.
        options: action settings, e.g. ``{"quarantine_root": Path(...)}``.
    """

    location: Any
    action: str
    keys: Sequence[str]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanRequest:
    """What to scan and how the clock is read.

    Args:
        location: the location from the RoPA.
        clock: the effective clock (the location's own, else the rule's).
        tz: timezone of dates stored without one.
        cutoff: items whose clock start is after ``cutoff`` are certainly not due; the connector
            may count them in a ``NotDueSummary`` instead of yielding them. None: yield all.
    """

    location: LocationModel
    clock: Clock
    tz: tzinfo
    cutoff: datetime | None = None


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector gets from the sweeper besides its system.

    Args:
        base_dir: the RoPA file's folder; relative paths in connection settings resolve here.
        credential: returns the secret of a named credential; raises ``CredentialMissing``.
        read_only: True for dry runs: the connector must not change anything, and opens
            read-only connections where the system allows it.
    """

    base_dir: Path
    credential: Callable[[str], SecretStr]
    read_only: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


class Connector(ABC):
    """A connection to one system of one kind. Use as a context manager."""

    kind: ClassVar[str]

    def __init__(self, system: Any, context: ConnectorContext) -> None:
        self.system = system
        self.context = context

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def check(self) -> None:
        """Check that the system answers. Raise SystemUnreachable with the reason if not."""

    @abstractmethod
    def prepare(self, location: LocationModel, clock: Clock) -> None:
        """Check every name the location uses against the system. Raise LocationInvalid."""

    @abstractmethod
    def scan(self, request: ScanRequest) -> Iterator[ScanOutput]:
        """Stream the location's items (and summaries and findings), in bounded memory."""

    def prepare_event(self, event: SqlEvent) -> None:
        """Check the names an event reads against the system. Raise LocationInvalid."""
        raise ActionUnsupported(self.system.id, f"a {self.kind} system cannot supply events")

    def read_event(
        self, event: SqlEvent, subjects: Sequence[str], now: datetime, tz: tzinfo
    ) -> dict[str, datetime]:
        """Given subjects, return the event's date for each subject for whom it has happened.

        Subjects for whom it has not happened (yet) are absent from the result.
        """
        raise ActionUnsupported(self.system.id, f"a {self.kind} system cannot supply events")

    def lookup(
        self, location: LocationModel, clock: Clock, tz: tzinfo, keys: Sequence[str]
    ) -> dict[str, ScannedItem]:
        """Given item keys, re-read the items that still exist: their current subject, clock
        (as ``scan`` reads it; None for an event clock) and fingerprint. Keys of items that no
        longer exist are absent. Used to re-verify each item at the moment of acting."""
        raise ActionUnsupported(self.system.id, f"a {self.kind} system cannot look items up")

    def act(self, request: ActRequest) -> Iterator[Outcome]:
        """Act on a batch of items and stream one Outcome per key.

        An item is changed completely or not at all: a SQL row with all its dependent rows in
        one transaction (per item or per batch), a file moved or removed as one operation.
        Acting twice on the same item is harmless: the second time it is ``gone``. A connector
        that cannot perform an action raises ActionUnsupported before changing anything.
        """
        raise ActionUnsupported(self.system.id, f"a {self.kind} system cannot {request.action}")

    def discover(self, request: DiscoverRequest) -> Iterator[DiscoveredStore | ScanFinding]:
        """Stream the stores the system holds, and a ``ScanFinding`` of kind ``uninspectable``
        for each part it could not inspect (no rights, unreadable); never a data value."""
        raise ActionUnsupported(self.system.id, f"a {self.kind} system cannot be discovered")

    def sample(self, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
        """Read a bounded part of a discovered store's content, within the request's bounds,
        opening nothing for writing; a ``ScanFinding`` of kind ``uninspectable`` for a part
        that cannot be read (no rights), and the sampling goes on."""
        raise ActionUnsupported(self.system.id, f"a {self.kind} system cannot be sampled")

    def scope(self, request: DiscoverRequest) -> tuple[str, ...]:
        """Return the place that discovery with ``request`` reaches, as ``locate`` names places.

        The default is a place of this system alone, which no other system shares.
        """
        return (self.kind, self.system.id)

    def quarantine_places(self) -> tuple[tuple[str, ...], ...]:
        """Return the places (as ``locate`` names them) where this system keeps quarantined
        items: the sweeper's own, purged when ``quarantine_for`` ends, so no discovery lists
        them as stores. The default is none."""
        return ()

    def locate(self, store: DiscoveredStore) -> tuple[str, ...]:
        """Given a store this connector discovered, return where it physically lies: a path of
        names, the same for every system of this kind that reaches the same place (a share's
        real path, a database server, database, schema and table). A store lies inside every
        place whose path is a prefix of its own.
        """
        return (self.kind, self.system.id, store.where)

    def coverage(self, location: Any, place: tuple[str, ...], store: DiscoveredStore) -> str:
        """Given a location of this system and a store that discovery found at ``place`` (by
        this or another system of the same kind), return ``FULL`` when the location covers
        every item of the store, ``PARTIAL`` when some (a filter, a pattern), ``NONE`` when
        none. Raise ActionUnsupported if the connector cannot tell.
        """
        raise ActionUnsupported(
            self.system.id, f"a {self.kind} connector cannot tell what its locations cover"
        )

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""
