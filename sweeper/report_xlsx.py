"""The XLSX report of a plan: a summary sheet and one sheet per processing activity.

Written with openpyxl's write-only mode in one pass over the items, so memory stays bounded
on a plan of millions of items. A sheet holds at most 1,048,575 items under its header; an
activity with more continues on "ID (2)", "ID (3)", and the summary says so. Every item
sheet has a frozen header row and an autofilter. Dates are real date cells in the report's
timezone; text that starts with '=' stays text, so a file name can never become a formula.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sweeper.report import CSV_COLUMNS, location_rows, summary_rows
from sweeper.report_html import STATUSES, ReportOptions, days_over
from sweeper.report_i18n import texts
from sweeper.store import Store

MAX_ROWS = 1_048_576  # Excel's rows per sheet, the header included
# The CSV's columns but the plan and the activity, which the sheet already says.
ITEM_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in ("plan_id", "activity"))
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def sheet_names(activities: list[str], reserved: str) -> dict[str, str]:
    """Given activity ids, return a valid, unique sheet name for each (at most 31
    characters, none of []:*?/\\), never the summary sheet's name."""
    used = {reserved.lower()}
    names = {}
    for activity in activities:
        base = _SHEET_CHARS.sub("_", activity)[:28] or "activity"
        name, n = base, 2
        while name.lower() in used:
            name = f"{base[:26]}~{n}"
            n += 1
        used.add(name.lower())
        names[activity] = name
    return names


def _text(value: str) -> str:
    return _ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


class _Cells:
    """Makes the cells of an item row: dates as dates, text that looks like a formula as text."""

    def __init__(self, ws: Any, tz: ZoneInfo) -> None:
        from openpyxl.cell import WriteOnlyCell

        self.make = WriteOnlyCell
        self.ws = ws
        self.tz = tz

    def text(self, value: str | None) -> Any:
        if value is None:
            return None
        value = _text(value)
        if value.startswith("="):
            cell = self.make(self.ws, value=value)
            cell.data_type = "s"
            return cell
        return value

    def moment(self, value: str | None) -> datetime | None:
        """A stored ISO time as a naive local datetime: openpyxl gives it a date format."""
        if not value:
            return None
        return datetime.fromisoformat(value).astimezone(self.tz).replace(tzinfo=None)


class _ItemSheets:
    """The item sheets of one activity, continued on a new sheet when one is full."""

    def __init__(self, book: Any, name: str, header: list[Any], options: ReportOptions) -> None:
        self.book = book
        self.name = name
        self.header = header
        self.tz = ZoneInfo(options.timezone)
        self.sheets: list[tuple[str, int]] = []  # (sheet name, items on it)
        self.ws: Any = None
        self.cells: _Cells | None = None
        self.rows = 0
        self._new()

    def _new(self) -> None:
        self._close()
        title = self.name if not self.sheets else f"{self.name[:26]} ({len(self.sheets) + 1})"
        self.ws = self.book.create_sheet(title)
        self.ws.freeze_panes = "A2"
        self.ws.append(self.header)
        self.cells = _Cells(self.ws, self.tz)
        self.sheets.append((title, 0))
        self.rows = 0

    def _close(self) -> None:
        if self.ws is not None:
            from openpyxl.utils import get_column_letter

            last = get_column_letter(len(self.header))
            self.ws.auto_filter.ref = f"A1:{last}{self.rows + 1}"
            title, _ = self.sheets[-1]
            self.sheets[-1] = (title, self.rows)

    def add(self, row: tuple[Any, ...], labels: tuple[str, str], clock: datetime) -> None:
        if self.rows + 1 >= MAX_ROWS:
            self._new()
        assert self.cells is not None
        self.ws.append(_item_values(self.cells, row, labels, clock))
        self.rows += 1

    def close(self) -> None:
        self._close()


def _item_values(
    cells: _Cells, row: tuple[Any, ...], labels: tuple[str, str], clock: datetime
) -> list[Any]:
    _seq, _idx, key, subject, start, due, status, action, fp, size, reason, details = row
    return [
        labels[0],
        cells.text(labels[1]),
        cells.text(key),
        cells.text(subject),
        cells.moment(start),
        cells.moment(due),
        days_over(due, clock),
        status,
        action,
        size,
        cells.text(reason),
        cells.text(details),
        fp,
    ]


def write_xlsx(store: Store, plan_id: str, target: Path, options: ReportOptions) -> None:
    """Write the XLSX report of a stored plan to ``target`` (a path)."""
    from openpyxl import Workbook

    t = texts(options.language)
    plan = store.plan(plan_id)
    locations = {loc["idx"]: loc for loc in location_rows(store, plan["id"])}
    activities = list(dict.fromkeys(loc["activity"] for loc in locations.values()))
    book = Workbook(write_only=True)
    summary = book.create_sheet(t["sheet_summary"])
    names = sheet_names(activities, t["sheet_summary"])
    header = [t[c] for c in ITEM_COLUMNS]
    sheets = {a: _ItemSheets(book, names[a], header, options) for a in activities}
    clock = plan["clock"]
    for row in store.item_rows(plan["id"]):
        loc = locations[row[1]]
        sheets[loc["activity"]].add(row, (loc["system"], loc["label"]), clock)
    for item_sheets in sheets.values():
        item_sheets.close()
    for line in _summary_rows(store, plan, t, sheets, options):
        summary.append(line)
    summary.freeze_panes = "A2"
    book.save(target)


def _summary_rows(
    store: Store,
    plan: dict[str, Any],
    t: dict[str, str],
    sheets: dict[str, _ItemSheets],
    options: ReportOptions,
) -> Iterator[list[Any]]:
    tz = ZoneInfo(options.timezone)

    def local(moment: datetime) -> datetime:
        return moment.astimezone(tz).replace(tzinfo=None)

    totals = plan["summary"].get("totals", {})
    yield [t["title"], plan["id"]]
    yield [t["content_hash"], plan["content_hash"]]
    yield [t["ropa_digest"], plan["ropa_digest"]]
    yield [t["created"], local(plan["created_at"]), plan["created_by"]]
    yield [t["clock"], local(plan["clock"])]
    yield [t["ropa"], plan["ropa_path"]]
    yield [t["approve_all"], f'{options.program} approve {plan["id"]} --by "NAME"']
    yield [t["xlsx_times"].format(tz=options.timezone)]
    if not plan["complete"]:
        yield [t["incomplete"]]
        for system, reason in plan["summary"].get("failed_systems", {}).items():
            yield [t["failed_system"].format(system=system, reason=reason)]
    yield []
    yield [t["status"], t["xlsx_items"], ""]
    for status in STATUSES:
        yield [status, totals.get(status, 0), t[f"label_{status}"], t[f"status_{status}"]]
    yield [t["bytes_due"], plan["summary"].get("bytes_due", 0)]
    legacy = plan["summary"].get("legacy_systems", [])
    if legacy:
        yield []
        yield [t["legacy"]]
        yield [
            t["system"],
            t["decommissioned_on"],
            t["days_since"],
            t["reachable"],
            t["xlsx_items"],
            t["size"],
            t["subjects"],
        ]
        for s in legacy:
            yield [
                s["system"],
                s["decommissioned_on"],
                s["days_since"],
                t["yes"] if s["reachable"] else t["no"],
                s["items"],
                s["bytes"],
                s["subjects"],
            ]
    yield []
    yield [t["per_activity"]]
    yield [t["activity"], t["system"], *STATUSES, t["bytes_due"], t["oldest_due"], t["action"]]
    for row in summary_rows(store, plan["id"]):
        oldest = row["oldest_due"]
        yield [
            row["activity"],
            row["system"],
            *(row[s] for s in STATUSES),
            row["bytes_due"],
            local(datetime.fromisoformat(oldest)) if oldest else None,
            row["failed"] or row["action"],
        ]
    yield []
    yield [t["xlsx_sheets"]]
    yield [t["activity"], t["xlsx_sheet"], t["xlsx_items"]]
    for activity, item_sheets in sheets.items():
        for i, (name, count) in enumerate(item_sheets.sheets):
            note = (
                t["xlsx_continued"].format(sheet=item_sheets.sheets[i + 1][0])
                if i + 1 < len(item_sheets.sheets)
                else ""
            )
            yield [activity, name, count, note]
