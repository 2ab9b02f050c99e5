"""Reports of a stored plan: JSON (complete, documented in docs/report-format.md), CSV, and
the summary rows the CLI prints. Reports stream items from the store: memory stays flat."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
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


def plan_header(store: Store, plan_id: str) -> dict[str, Any]:
    plan = store.plan(plan_id)
    return {
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
    }


def location_rows(store: Store, plan_id: str) -> list[dict[str, Any]]:
    rows = []
    for loc in store.locations(plan_id):
        details = loc.pop("details")
        loc.pop("plan_id")
        rows.append({**loc, **details})
    return rows


def _items(store: Store, plan_id: str, locations: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    by_idx = {loc["idx"]: loc for loc in locations}
    for item in store.items(plan_id):
        loc = by_idx[item.pop("location_idx")]
        details = item.pop("details")
        yield {
            "seq": item.pop("seq"),
            "activity": loc["activity"],
            "system": loc["system"],
            "location": loc["label"],
            **item,
            "details": json.loads(details) if details else None,
        }


def write_json(store: Store, plan_id: str, out: IO[str]) -> None:
    """Write the complete JSON report of a plan to ``out``, streaming its items."""
    plan = store.plan(plan_id)
    locations = location_rows(store, plan["id"])
    head = {
        "format": FORMAT,
        "plan": plan_header(store, plan["id"]),
        "summary": plan["summary"],
        "locations": locations,
        "findings": [
            {k: v for k, v in f.items() if k != "plan_id"} for f in store.findings(plan["id"])
        ],
    }
    text = json.dumps(head, indent=2, default=str)
    out.write(text[: text.rindex("}")].rstrip() + ',\n  "items": [')
    first = True
    for item in _items(store, plan["id"], locations):
        out.write(("\n    " if first else ",\n    ") + json.dumps(item, default=str))
        first = False
    out.write("\n  ]\n}\n")


def write_csv(store: Store, plan_id: str, out: IO[str]) -> None:
    """Write one CSV row per listed item. Cells that a spreadsheet would run as a formula
    (starting with = + - @) are prefixed with a quote."""
    plan = store.plan(plan_id)
    clock = plan["clock"]
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in _items(store, plan["id"], location_rows(store, plan["id"])):
        writer.writerow(
            [
                plan["id"],
                item["activity"],
                item["system"],
                _cell(item["location"]),
                _cell(item["key"]),
                _cell(item["subject"]),
                item["clock_start"] or "",
                item["due_date"] or "",
                _days_overdue(item["due_date"], clock),
                item["status"],
                item["action"],
                "" if item["size"] is None else item["size"],
                _cell(item["reason"]),
                json.dumps(item["details"]) if item["details"] else "",
                item["fingerprint"],
            ]
        )


def write_reports(store: Store, plan_id: str, directory: Path) -> dict[str, Path]:
    """Write the JSON and CSV reports of a plan into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / f"plan-{plan_id}.json",
        "csv": directory / f"plan-{plan_id}.csv",
    }
    writers = {"json": write_json, "csv": write_csv}
    for fmt, path in paths.items():
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8", newline="") as out:
            writers[fmt](store, plan_id, out)
        tmp.replace(path)
    return paths


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
                "bytes_due": 0,
                "oldest_due": None,
                "next_due": None,
                "action": loc["action"],
                "failed": None,
            },
        )
        for status in ("due", "legacy_due", "not_due", "no_clock", "waiting_event"):
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


def now_utc() -> datetime:
    return datetime.now(UTC)
