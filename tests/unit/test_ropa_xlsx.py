"""The RoPA as a spreadsheet: export, import, the round trip, and bad workbooks rejected with
sheet, row and column, nothing half-written."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from sweeper.errors import Problem, RopaInvalid
from sweeper.ropa import load_ropa
from sweeper.ropa.xlsx import describe_template, export_workbook, import_workbook

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "sweeper" / "demo" / "ropa.yaml"
ROPAS = [DEMO, *(ROOT / "retention_policies" / f"{n}.yaml" for n in ("po", "vo", "mbo", "ho"))]


def exported(tmp_path: Path, ropa: Path = DEMO) -> Path:
    path = tmp_path / "ropa.xlsx"
    export_workbook(load_ropa(ropa).ropa, path)
    return path


def rejected(path: Path, output: Path | None = None, strict: bool = False) -> list[Problem]:
    with pytest.raises(RopaInvalid) as info:
        import_workbook(path, output=output, strict=strict)
    return info.value.problems


def column_of(ws: openpyxl.worksheet.worksheet.Worksheet, name: str) -> int:
    return next(c.column for c in ws[1] if c.value == name)


def row_of(ws: openpyxl.worksheet.worksheet.Worksheet, column: str, value: str) -> int:
    col = column_of(ws, column)
    return next(r for r in range(2, ws.max_row + 1) if ws.cell(r, col).value == value)


@pytest.mark.parametrize("ropa", ROPAS, ids=lambda p: p.stem)
def test_round_trip_gives_the_same_ropa(tmp_path: Path, ropa: Path) -> None:
    """YAML -> XLSX -> YAML gives the same RoPA: equal models and the same digest."""
    original = load_ropa(ropa)
    back = import_workbook(exported(tmp_path, ropa), output=tmp_path / "back.yaml").loaded
    assert back.ropa == original.ropa
    assert back.digest == original.digest


def test_a_second_round_trip_changes_nothing(tmp_path: Path) -> None:
    """Importing an export of an imported RoPA writes the same YAML again."""
    first = import_workbook(exported(tmp_path)).yaml_text
    (tmp_path / "once.yaml").write_text(first, encoding="utf-8")
    again = tmp_path / "again.xlsx"
    export_workbook(load_ropa(tmp_path / "once.yaml").ropa, again)
    assert import_workbook(again).yaml_text.splitlines()[1:] == first.splitlines()[1:]


def test_export_has_frozen_headers_filters_and_a_row_per_activity(tmp_path: Path) -> None:
    """The activities sheet has a frozen, filtered header and one row per activity."""
    ws = openpyxl.load_workbook(exported(tmp_path))["activities"]
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref is not None and ws.auto_filter.ref.startswith("A1:")
    ids = [ws.cell(r, column_of(ws, "id")).value for r in range(2, ws.max_row + 1)]
    assert ids == [a.id for a in load_ropa(DEMO).ropa.activities]
    assert {"purposes", "legal_basis", "retention.period", "retention.source_kind"} <= {
        c.value for c in ws[1]
    }


def test_text_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    """A value starting with '=' is written as text, not as a formula, and comes back as is."""
    ropa = (DEMO.read_text(encoding="utf-8")).replace(
        "name: Pupil administration", "name: '=HYPERLINK(\"http://x.example\")'"
    )
    source = tmp_path / "ropa.yaml"
    source.write_text(ropa, encoding="utf-8")
    book = exported(tmp_path, source)
    ws = openpyxl.load_workbook(book)["activities"]
    cell = ws.cell(2, column_of(ws, "name"))
    assert (cell.data_type, cell.value) == ("s", '=HYPERLINK("http://x.example")')
    assert import_workbook(book).loaded.ropa.activities[0].name.startswith("=HYPERLINK")


def test_missing_column_is_named_with_the_fix(tmp_path: Path) -> None:
    """A workbook without the retention.period column is rejected at that header, once."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    ws = book["activities"]
    ws.delete_cols(column_of(ws, "retention.period"))
    book.save(path)
    [problem] = rejected(path)
    assert problem.path == "sheet activities, row 1, column retention.period"
    assert "add a column headed 'retention.period'" in problem.message


def test_merged_cells_are_rejected(tmp_path: Path) -> None:
    """Merged cells are rejected with their range and the fix."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    book["activities"].merge_cells("C3:C4")
    book.save(path)
    problems = rejected(path)
    assert any(
        p.path == "sheet activities, row 3" and "merged cells C3:C4: unmerge them" in p.message
        for p in problems
    )


def test_date_typed_as_text_is_rejected(tmp_path: Path) -> None:
    """A decommissioning date typed as text is rejected at its cell, saying how to enter it."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    ws = book["systems"]
    row, col = row_of(ws, "id", "old-sis"), column_of(ws, "decommissioned_on")
    ws.cell(row, col).value = "01-08-2021"
    book.save(path)
    [problem] = rejected(path)
    letter = openpyxl.utils.get_column_letter(col)
    assert problem.path == f"sheet systems, row {row}, column {letter} (decommissioned_on)"
    assert "a date typed as text ('01-08-2021'): enter it as a date" in problem.message


def test_unknown_legal_basis_is_rejected(tmp_path: Path) -> None:
    """An unknown legal basis is named at its cell with the allowed values."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    ws = book["activities"]
    col = column_of(ws, "legal_basis")
    ws.cell(3, col).value = "public_task\nart. 6(1)(e)"
    book.save(path)
    [problem] = rejected(path)
    letter = openpyxl.utils.get_column_letter(col)
    assert problem.path == f"sheet activities, row 3, column {letter} (legal_basis)"
    assert "'art. 6(1)(e)' is not allowed: use one of" in problem.message
    assert "'public_task'" in problem.message


def test_every_problem_is_reported_at_once_and_nothing_is_written(tmp_path: Path) -> None:
    """Bad cells on several sheets are all reported, and neither a new nor an existing
    output file is touched."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    book["activities"].cell(3, column_of(book["activities"], "legal_basis")).value = "vague"
    ws = book["systems"]
    ws.cell(2, column_of(ws, "decommissioned_on")).value = "yesterday"
    loc = book["locations"]
    loc.cell(2, column_of(loc, "system")).value = "share"  # a file share for a SQL table
    book["events"].cell(2, column_of(book["events"], "table")).value = "=A1"
    book.save(path)
    existing = tmp_path / "ropa.yaml"
    existing.write_text("# my RoPA\n", encoding="utf-8")
    problems = rejected(path, output=existing)
    sheets = {p.path.split(",")[0] for p in problems}
    assert sheets == {"sheet activities", "sheet systems", "sheet locations", "sheet events"}
    assert any("formula" in p.message for p in problems)
    assert any(
        "'share' is a fileshare system but this is a sql location" in p.message for p in problems
    )
    assert existing.read_text(encoding="utf-8") == "# my RoPA\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ropa.xlsx", "ropa.yaml"]


def test_cross_checks_name_the_cell(tmp_path: Path) -> None:
    """A RoPA validation error below a cell (an unknown event in a clock) names that cell."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    ws = book["activities"]
    col = column_of(ws, "retention.clock")
    ws.cell(2, col).value = "{event: pupil_gone}"
    book.save(path)
    [problem] = rejected(path)
    letter = openpyxl.utils.get_column_letter(col)
    assert problem.path == f"sheet activities, row 2, column {letter} (retention.clock)"
    assert problem.message.startswith("retention.clock.event: unknown event 'pupil_gone'")


def test_strict_turns_a_warning_into_an_error_at_its_row(tmp_path: Path) -> None:
    """With strict, a missing DPO is an error at the controller sheet's dpo row."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    ws = book["controller"]
    for row in range(2, ws.max_row + 1):
        if str(ws.cell(row, 1).value).startswith("controller.dpo."):
            ws.cell(row, 2).value = None
    dpo_row = row_of(ws, "field", "controller.dpo.name")
    book.save(path)
    assert import_workbook(path).warnings[0].path == (
        f"sheet controller, row {dpo_row}, column B (controller.dpo.name)"
    )
    [problem] = rejected(path, strict=True)
    assert "no data protection officer" in problem.message


def test_unknown_column_suggests_the_right_name(tmp_path: Path) -> None:
    """A misspelt header is rejected with the column it probably means."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    ws = book["activities"]
    ws.cell(1, column_of(ws, "purposes")).value = "purpose"
    book.save(path)
    problems = rejected(path)
    assert any("did you mean 'purposes'?" in p.message for p in problems)
    assert any(
        "the column is missing: add a column headed 'purposes'" in p.message for p in problems
    )


def test_missing_sheet_is_named(tmp_path: Path) -> None:
    """A workbook without the systems sheet is rejected naming that sheet."""
    path = exported(tmp_path)
    book = openpyxl.load_workbook(path)
    del book["systems"]
    book.save(path)
    [problem] = rejected(path)
    assert problem.path == "sheet systems" and "the sheet is missing" in problem.message


def test_a_file_that_is_no_workbook_is_rejected(tmp_path: Path) -> None:
    """A CSV renamed to .xlsx is rejected with a message, not a traceback."""
    path = tmp_path / "ropa.xlsx"
    path.write_text("id,name\n", encoding="utf-8")
    [problem] = rejected(path)
    assert "not an .xlsx workbook" in problem.message


def test_dates_come_back_as_dates(tmp_path: Path) -> None:
    """A decommissioning date is a date cell in the export and a date after the import."""
    path = exported(tmp_path)
    ws = openpyxl.load_workbook(path)["systems"]
    cell = ws.cell(row_of(ws, "id", "old-sis"), column_of(ws, "decommissioned_on"))
    assert isinstance(cell.value, datetime) and cell.value.date().isoformat() == "2021-08-01"


def test_docs_describe_every_sheet_and_column() -> None:
    """docs/ropa-xlsx.md holds the description generated from the models."""
    docs = (ROOT / "docs" / "ropa-xlsx.md").read_text(encoding="utf-8")
    assert describe_template() in docs, "regenerate with python -m sweeper.ropa.xlsx"
