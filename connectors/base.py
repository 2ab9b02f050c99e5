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
from sweeper.ropa.model import Clock, DirectoryLocation, FileLocation, SqlEvent, SqlLocation

LocationModel = SqlLocation | FileLocation | DirectoryLocation


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
    """

    now: datetime
    depth: int = 2
    stale_after: timedelta = timedelta(days=365)
    base: str | None = None


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

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""
