"""Reports of a plan: JSON (complete, documented in docs/report-format.md), CSV, and the
summary rows the CLI prints.

``ReportWriter`` streams items into both files while a plan is built, so a large plan is never
read back or held in memory; ``write_json`` and ``write_csv`` render a stored plan again with the
same formatting.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable, Mapping
from datetime import datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from sweeper.store import Store

FORMAT = "ropa-sweeper/plan-report/1"
CSV_COLUMNS = (
    "plan_id",
    "activity",
    "system",
    "location",
    "key",
    "subject",
    "clock_start",
    "due_date",
    "days_overdue",
    "status",
    "action",
    "size",
    "reason",
    "details",
    "fingerprint",
)
Labels = Mapping[int, tuple[str, str, str]]  # location idx -> (activity, system, label)


def _js(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


class _Formatter:
    """Formats item rows (ITEM_FIELDS order) as JSON objects and CSV rows, quickly."""

    def __init__(self, plan_id: str, clock: datetime, labels: Labels) -> None:
        self.plan_id = plan_id
        self.clock = clock
        self.prefix = {
            idx: (
                f'"activity": {_js(a)}, "system": {_js(s)}, "location": {_js(label)}',
                (a, s, _cell(label)),
            )
            for idx, (a, s, label) in labels.items()
        }

    def json(self, row: tuple[Any, ...]) -> str:
        seq, idx, key, subject, clock, due, status, action, fp, size, reason, details = row
        return (
            f'{{"seq": {seq}, {self.prefix[idx][0]}, "key": {_js(key)}, '
            f'"subject": {_js(subject)}, "clock_start": {_js(clock)}, "due_date": {_js(due)}, '
            f'"status": {_js(status)}, "action": {_js(action)}, "fingerprint": {_js(fp)}, '
            f'"size": {"null" if size is None else int(size)}, "reason": {_js(reason)}, '
            f'"details": {details or "null"}}}'
        )

    def csv(self, row: tuple[Any, ...]) -> list[Any]:
        _, idx, key, subject, clock, due, status, action, fp, size, reason, details = row
        activity, system, label = self.prefix[idx][1]
        return [
            self.plan_id,
            activity,
            system,
            label,
            _cell(key),
            _cell(subject),
            clock or "",
            due or "",
            _days_overdue(due, self.clock),
            status,
            action,
            "" if size is None else size,
            _cell(reason),
            details or "",
            fp,
        ]


class ReportWriter:
    """Writes the JSON and CSV reports of a plan while its items are produced.

    Call ``begin`` with the location labels, ``add`` with item rows as they come, and
    ``finish`` with the plan's head (plan, summary, locations, findings) at the end; files
    appear under their final names only when complete.
    """

    def __init__(self, directory: Path, plan_id: str, clock: datetime) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.paths = {
            "json": directory / f"plan-{plan_id}.json",
            "csv": directory / f"plan-{plan_id}.csv",
        }
        self.plan_id = plan_id
        self.clock = clock
        self._items_path = directory / f".plan-{plan_id}.items.tmp"
        self._csv_path = directory / f".plan-{plan_id}.csv.tmp"
        self._items = self._items_path.open("w", encoding="utf-8")
        self._csv_file = self._csv_path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)
        self._formatter: _Formatter | None = None
        self._first = True

    def begin(self, labels: Labels) -> None:
        self._formatter = _Formatter(self.plan_id, self.clock, labels)

    def add(self, rows: Iterable[tuple[Any, ...]]) -> None:
        assert self._formatter is not None, "begin() first"
        fmt = self._formatter
        parts = [fmt.json(r) for r in rows]
        if parts:
            sep = "\n    " if self._first else ",\n    "
            self._items.write(sep + ",\n    ".join(parts))
            self._first = False
        self._csv.writerows(fmt.csv(r) for r in rows)

    def close(self) -> None:
        """Close the item files; ``assemble`` (in this or another process) completes them."""
        self._items.close()
        self._csv_file.close()

    def finish(self, head: Mapping[str, Any]) -> dict[str, Path]:
        self.close()
        return self.assemble(self.paths["json"].parent, self.plan_id, head)

    @staticmethod
    def assemble(directory: Path, plan_id: str, head: Mapping[str, Any]) -> dict[str, Path]:
        """Put the head in front of the closed item files; return the reports' paths."""
        items_path = directory / f".plan-{plan_id}.items.tmp"
        paths = {
            "json": directory / f"plan-{plan_id}.json",
            "csv": directory / f"plan-{plan_id}.csv",
        }
        tmp = paths["json"].with_suffix(".json.tmp")
        with tmp.open("w", encoding="utf-8") as out, items_path.open(encoding="utf-8") as items:
            _write_head(out, head)
            shutil.copyfileobj(items, out, 1 << 20)
            out.write("\n  ]\n}\n")
        tmp.replace(paths["json"])
        (directory / f".plan-{plan_id}.csv.tmp").replace(paths["csv"])
        items_path.unlink()
        return paths

    def abort(self) -> None:
        self._items.close()
        self._csv_file.close()
        for path in (self._items_path, self._csv_path):
            path.unlink(missing_ok=True)


def _write_head(out: IO[str], head: Mapping[str, Any]) -> None:
    text = json.dumps({"format": FORMAT, **head}, indent=2, default=str)
    out.write(text[: text.rindex("}")].rstrip() + ',\n  "items": [')


def plan_head(store: Store, plan_id: str) -> dict[str, Any]:
    """Return everything in the JSON report but the items: plan, summary, locations, findings."""
    plan = store.plan(plan_id)
    return {
        "plan": {
            "id": plan["id"],
            "created_at": plan["created_at"].isoformat(),
            "created_by": plan["created_by"],
            "clock": plan["clock"].isoformat(),
            "ropa_path": plan["ropa_path"],
            "ropa_digest": plan["ropa_digest"],
            "content_hash": plan["content_hash"],
            "state": plan["state"],
            "complete": plan["complete"],
            "item_count": plan["item_count"],
        },
        "summary": plan["summary"],
        "locations": location_rows(store, plan["id"]),
        "findings": [
            {k: v for k, v in f.items() if k != "plan_id"} for f in store.findings(plan["id"])
        ],
    }


def location_rows(store: Store, plan_id: str) -> list[dict[str, Any]]:
    rows = []
    for loc in store.locations(plan_id):
        details = loc.pop("details")
        loc.pop("plan_id")
        rows.append({**loc, **details})
    return rows


def _labels(locations: list[dict[str, Any]]) -> dict[int, tuple[str, str, str]]:
    return {loc["idx"]: (loc["activity"], loc["system"], loc["label"]) for loc in locations}


def write_json(store: Store, plan_id: str, out: IO[str]) -> None:
    """Write the complete JSON report of a stored plan to ``out``, streaming its items."""
    head = plan_head(store, plan_id)
    plan = head["plan"]
    fmt = _Formatter(plan["id"], datetime.fromisoformat(plan["clock"]), _labels(head["locations"]))
    _write_head(out, head)
    sep = "\n    "
    for row in store.item_rows(plan["id"]):
        out.write(sep + fmt.json(row))
        sep = ",\n    "
    out.write("\n  ]\n}\n")


def write_csv(store: Store, plan_id: str, out: IO[str]) -> None:
    """Write one CSV row per listed item of a stored plan. Cells that a spreadsheet would run
    as a formula (starting with = + - @) are prefixed with a quote."""
    plan = store.plan(plan_id)
    fmt = _Formatter(plan["id"], plan["clock"], _labels(location_rows(store, plan["id"])))
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(fmt.csv(row) for row in store.item_rows(plan["id"]))


def summary_rows(store: Store, plan_id: str) -> list[dict[str, Any]]:
    """Per activity and system: due, legacy due, not due, no clock, bytes, oldest due date."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for loc in location_rows(store, plan_id):
        key = (loc["activity"], loc["system"])
        row = grouped.setdefault(
            key,
            {
                "activity": loc["activity"],
                "system": loc["system"],
                "due": 0,
                "legacy_due": 0,
                "not_due": 0,
                "no_clock": 0,
                "waiting_event": 0,
                "held": 0,
                "locked": 0,
                "protected": 0,
                "bytes_due": 0,
                "oldest_due": None,
                "next_due": None,
                "action": loc["action"],
                "failed": None,
            },
        )
        for status in (
            "due",
            "legacy_due",
            "not_due",
            "no_clock",
            "waiting_event",
            "held",
            "locked",
            "protected",
        ):
            row[status] += loc["counts"].get(status, 0)
        row["bytes_due"] += loc["bytes_due"]
        row["oldest_due"] = _min(row["oldest_due"], loc["oldest_due"])
        row["next_due"] = _min(row["next_due"], loc["next_due"])
        if loc["outcome"] == "failed":
            row["failed"] = loc["error"]
    return list(grouped.values())


def _min(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _days_overdue(due: str | None, clock: datetime) -> str:
    if due is None:
        return ""
    days = (clock - datetime.fromisoformat(due)).days
    return str(days) if days >= 0 else ""


def _cell(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
