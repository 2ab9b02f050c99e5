"""The XLSX report re-read with openpyxl: the summary and every item match the stored plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from report_plans import FORMULA_KEY, Plans, build_plans

from sweeper import report_xlsx
from sweeper.report_html import ReportOptions
from sweeper.report_xlsx import ITEM_COLUMNS, write_xlsx

TZ = ZoneInfo("Europe/Amsterdam")


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plans]:
    built = build_plans(tmp_path_factory.mktemp("plans"))
    yield built
    built.store.close()


def workbook(plans: Plans, tmp_path: Path, **options: object) -> openpyxl.Workbook:
    path = tmp_path / "plan.xlsx"
    write_xlsx(plans.store, plans.latest, path, ReportOptions(**options))  # type: ignore[arg-type]
    return openpyxl.load_workbook(path)


def stored_items(plans: Plans, activity: str) -> list[dict[str, object]]:
    idx = {loc["idx"] for loc in plans.store.locations(plans.latest) if loc["activity"] == activity}
    return [i for i in plans.store.items(plans.latest) if i["location_idx"] in idx]


def test_one_sheet_per_activity_after_the_summary(plans: Plans, tmp_path: Path) -> None:
    """The workbook has the summary first, then a sheet per activity of the plan."""
    book = workbook(plans, tmp_path)
    assert book.sheetnames == ["summary", "grades", "students", "recordings", "legacy"]


def test_item_rows_match_the_plan(plans: Plans, tmp_path: Path) -> None:
    """Every item of an activity is a row of its sheet: key, status, dates, days overdue."""
    book = workbook(plans, tmp_path)
    clock = plans.store.plan(plans.latest)["clock"]
    for activity in ("grades", "students", "recordings", "legacy"):
        ws = book[activity]
        rows = list(ws.iter_rows(min_row=2, values_only=True))
        items = stored_items(plans, activity)
        assert len(rows) == len(items), activity
        for row, item in zip(rows, items, strict=True):
            got = dict(zip(ITEM_COLUMNS, row, strict=True))
            assert (got["key"], got["status"], got["fingerprint"]) == (
                item["key"],
                item["status"],
                item["fingerprint"],
            )
            due = item["due_date"]
            if due is None:
                assert got["due_date"] is None
            else:
                local = datetime.fromisoformat(str(due)).astimezone(TZ).replace(tzinfo=None)
                assert got["due_date"] == local.replace(
                    microsecond=local.microsecond // 1000 * 1000
                )
                days = (clock - datetime.fromisoformat(str(due))).days
                assert got["days_overdue"] == (days if days >= 0 else None)


def test_summary_totals_match_the_plan(plans: Plans, tmp_path: Path) -> None:
    """The summary sheet's count per status equals the plan's totals."""
    ws = workbook(plans, tmp_path)["summary"]
    totals = plans.store.plan(plans.latest)["summary"]["totals"]
    counts = {r[0]: r[1] for r in ws.iter_rows(values_only=True) if r and r[0] in totals}
    assert counts == totals
    first = [r for r in ws.iter_rows(values_only=True)][:2]
    assert first[0][1] == plans.latest
    assert first[1][1] == plans.store.plan(plans.latest)["content_hash"]


def test_item_sheets_have_frozen_headers_and_filters(plans: Plans, tmp_path: Path) -> None:
    """Each item sheet freezes its header row and filters every column over every row."""
    book = workbook(plans, tmp_path)
    ws = book["grades"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:M{ws.max_row}"


def test_a_key_that_looks_like_a_formula_is_text(plans: Plans, tmp_path: Path) -> None:
    """A file name starting with '=' is a text cell, never a formula."""
    ws = workbook(plans, tmp_path)["grades"]
    [cell] = [c for c in ws["C"] if c.value == FORMULA_KEY]
    assert cell.data_type == "s"


def test_a_full_sheet_continues_on_the_next(
    plans: Plans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activity with more items than a sheet holds continues on 'ID (2)', and the summary
    names both sheets with their counts."""
    monkeypatch.setattr(report_xlsx, "MAX_ROWS", 6)  # a header and 5 items per sheet
    book = workbook(plans, tmp_path)
    total = len(stored_items(plans, "grades"))
    sheets = [n for n in book.sheetnames if n.startswith("grades")]
    assert sheets == ["grades", "grades (2)", "grades (3)"]
    assert sum(book[n].max_row - 1 for n in sheets) == total
    summary = [row[:4] for row in book["summary"].iter_rows(values_only=True)]
    assert ("grades", "grades", 5, "continued on sheet grades (2)") in summary


def test_dutch_workbook_has_dutch_headers(plans: Plans, tmp_path: Path) -> None:
    """With language nl the sheets' headers and the summary's name are Dutch."""
    book = workbook(plans, tmp_path, language="nl")
    assert book.sheetnames[0] == "overzicht"
    assert [c.value for c in book["grades"][1]][:4] == ["systeem", "locatie", "item", "persoon"]


def test_sheet_names_are_valid_and_unique() -> None:
    """Long or clashing activity ids get distinct names of at most 31 characters."""
    names = report_xlsx.sheet_names(["a" * 40, "a" * 41, "summary"], "summary")
    assert len(set(names.values())) == 3
    assert all(len(n) <= 31 for n in names.values())
    assert names["summary"] != "summary"
