"""A FakeConnector for lifecycle tests (as httpx's MockTransport): items come from a table
the test fills in. Every real connector has integration tests against its real server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from connectors.base import (
    ActRequest,
    Connector,
    NotDueSummary,
    Outcome,
    ScanFinding,
    ScannedItem,
    ScanRequest,
)
from sweeper.errors import ActionUnsupported, LocationInvalid, SystemUnreachable
from sweeper.ropa.model import Clock, SqlEvent, SqlLocation


class FakeConnector(Connector):
    """Serves ``items[(system, table)]``; ``events[subject]`` answers every event."""

    kind = "sql"
    items: ClassVar[dict[tuple[str, str], list[ScannedItem]]] = {}
    findings: ClassVar[dict[tuple[str, str], list[ScanFinding]]] = {}
    events: ClassVar[dict[str, datetime]] = {}
    unreachable: ClassVar[set[str]] = set()
    invalid_tables: ClassVar[set[str]] = set()
    requests: ClassVar[list[ScanRequest]] = []
    acted: ClassVar[list[tuple[str, str, str]]] = []  # (table, action, key), in order
    fail_keys: ClassVar[set[str]] = set()
    stop_after: ClassVar[int | None] = None  # act raises after yielding this many outcomes
    scan_stops_after: ClassVar[int | None] = None  # scan raises after yielding this many items

    @classmethod
    def reset(cls) -> None:
        cls.items, cls.findings, cls.events = {}, {}, {}
        cls.unreachable, cls.invalid_tables, cls.requests = set(), set(), []
        cls.acted, cls.fail_keys, cls.stop_after = [], set(), None
        cls.scan_stops_after = None

    def check(self) -> None:
        if self.system.id in self.unreachable:
            raise SystemUnreachable(self.system.id, "connection refused (fake)")

    def prepare(self, location: Any, clock: Clock) -> None:
        assert isinstance(location, SqlLocation)
        if location.table in self.invalid_tables:
            raise LocationInvalid(self.system.id, f"no table {location.table!r} (fake)")

    def scan(self, request: ScanRequest) -> Iterator[Any]:
        self.requests.append(request)
        location = request.location
        assert isinstance(location, SqlLocation)
        key = (self.system.id, location.table)
        yield from self.findings.get(key, [])
        later = [i for i in self.items.get(key, []) if _after(i, request.cutoff)]
        for n, item in enumerate(i for i in self.items.get(key, []) if i not in later):
            if self.scan_stops_after is not None and n >= self.scan_stops_after:
                raise SystemUnreachable(self.system.id, "connection lost mid-scan (fake)")
            yield item
        if later:
            clocks = [i.clock for i in later if i.clock is not None]
            yield NotDueSummary(len(later), min(clocks) if clocks else None, 0)

    def prepare_event(self, event: SqlEvent) -> None:
        if event.table in self.invalid_tables:
            raise LocationInvalid(self.system.id, f"no table {event.table!r} (fake)")

    def read_event(
        self, event: SqlEvent, subjects: Sequence[str], now: datetime, tz: tzinfo
    ) -> dict[str, datetime]:
        return {s: self.events[s] for s in subjects if s in self.events}

    def lookup(
        self, location: Any, clock: Clock, tz: tzinfo, keys: Sequence[str]
    ) -> dict[str, ScannedItem]:
        wanted = set(keys)
        found = self.items.get((self.system.id, location.table), [])
        return {i.key: i for i in found if i.key in wanted}

    def act(self, request: ActRequest) -> Iterator[Outcome]:
        if self.context.read_only:
            raise ActionUnsupported(self.system.id, "read-only connector (fake)")
        table = request.location.table
        items = self.items.get((self.system.id, table), [])
        for n, key in enumerate(request.keys):
            if self.stop_after is not None and n >= self.stop_after:
                raise SystemUnreachable(self.system.id, "connection lost (fake)")
            if key in self.fail_keys:
                yield Outcome(key, "failed", "constraint violated (fake)")
                continue
            present = [i for i in items if i.key == key]
            if not present:
                yield Outcome(key, "gone")
                continue
            if request.action == "delete":
                items.remove(present[0])
            self.acted.append((table, request.action, key))
            yield Outcome(key, "done", details={"rows": {table: 1}})


def _after(item: ScannedItem, cutoff: datetime | None) -> bool:
    return cutoff is not None and item.clock is not None and item.clock > cutoff


def fake_connectors(kind: str) -> type[Connector]:
    return FakeConnector
