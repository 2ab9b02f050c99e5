"""The RoPA as a spreadsheet: export to an .xlsx template and import it back.

The workbook has one row per processing activity (sheet ``activities``) with a column per
Art. 30 field and the retention rule, and a sheet for each other part of a RoPA: the
controller (``controller``, one row per field), ``systems``, ``events``, and the lists that
belong to an activity (``locations``, ``transfers``, one row each, naming their activity).
``about`` explains the workbook and ``lists`` holds the allowed values; the import ignores both.

Columns are derived from the RoPA models, so a new field or a new kind of system or location
appears in the template without a change here: a nested model's fields become dotted columns
(``retention.period``), a list of words one entry per line, a date a date cell, and anything
structured (a clock, ``where`` conditions, dependent tables) a YAML value in the cell, spelt
as in the RoPA file (``{event: student_left}``).

Importing checks the cells (no merged cells, no formulas, dates as dates, every column there),
builds the RoPA and runs the normal validation of ``sweeper.ropa.load`` on it; every problem
comes back at once, named by sheet, row and column. The YAML is written only when all is
valid, so nothing is half-imported. ``docs/ropa-xlsx.md`` describes every sheet and column.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tempfile
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from sweeper.errors import Problem, RopaInvalid
from sweeper.retention import Period
from sweeper.ropa.load import LoadedRopa, _Loader, _parse_loc, load_ropa
from sweeper.ropa.model import Activity, Controller, Ropa

FORMAT = "ropa-sweeper/ropa-xlsx/1"
CellKind = Literal["text", "number", "bool", "date", "lines", "yaml"]
_IGNORED_SHEETS = ("about", "lists")
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Column:
    """One column of a sheet: a (dotted) RoPA field and how its cells are read."""

    name: str
    kind: CellKind
    description: str = ""
    choices: tuple[str, ...] = ()
    required: bool = False
    required_with: str | None = None  # required when this optional part is given


@dataclass(frozen=True)
class Sheet:
    """A sheet of the template: where its rows go in the RoPA and its columns."""

    name: str
    section: str  # the RoPA list its rows fill: activities, systems, events, or an activity's
    columns: tuple[Column, ...]
    parent: str | None = None  # "activities" for a list that belongs to an activity
    vertical: bool = False  # one row per field (the controller)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


# -- columns from the models ---------------------------------------------------------------


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[Any]:
    """Given a type, return the members of its union (itself if it is none), without None."""
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def models_of(annotation: Any) -> list[type[BaseModel]]:
    """Given a field type such as list[System], return the model classes it can hold."""
    annotation = _strip(annotation)
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _choices(annotation: Any) -> tuple[str, ...] | None:
    """The allowed values of a Literal or an enum of strings; None if it is neither."""
    members = _members(annotation)
    values: list[str] = []
    for m in members:
        if typing.get_origin(m) is typing.Literal:
            values.extend(str(v) for v in typing.get_args(m))
        elif isinstance(m, type) and issubclass(m, Enum):
            values.extend(str(e.value) for e in m)
        else:
            return None
    return tuple(values)


def _kind(annotation: Any) -> tuple[CellKind, tuple[str, ...]]:
    members = _members(annotation)
    if len(members) == 1:
        only = members[0]
        if only is bool:
            return "bool", ()
        if only in (int, float):
            return "number", ()
        if only is date:
            return "date", ()
        if only is str or only is Period:
            return "text", ()
        choices = _choices(only)
        if choices is not None:
            return "text", choices
        if typing.get_origin(only) is list:
            inner = _strip(typing.get_args(only)[0])
            if inner is str:
                return "lines", ()
            inner_choices = _choices(inner)
            if inner_choices is not None:
                return "lines", inner_choices
    return "yaml", ()


def _flat_columns(
    model: type[BaseModel],
    prefix: str = "",
    skip: Sequence[str] = (),
    required: bool = True,
    optional_part: str | None = None,
) -> list[Column]:
    """Given a model, return a column per field; a nested model gives a column per field of
    its own, dotted. A field counts as required only if its whole path is (dpo.name is not:
    the dpo is optional)."""
    columns: list[Column] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        needed = required and info.is_required()
        nested = models_of(info.annotation) if _is_single_model(info.annotation) else []
        if nested:
            part = optional_part or (None if needed else f"{prefix}{name}")
            columns.extend(_flat_columns(nested[0], f"{prefix}{name}.", (), needed, part))
            continue
        kind, choices = _kind(info.annotation)
        with_part = optional_part if info.is_required() and not needed else None
        columns.append(
            Column(f"{prefix}{name}", kind, info.description or "", choices, needed, with_part)
        )
    return columns


def _is_single_model(annotation: Any) -> bool:
    members = _members(annotation)
    return len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel)


def _union_columns(
    models: Sequence[type[BaseModel]], first: Sequence[Column] = ()
) -> tuple[Column, ...]:
    """The columns of several models (kinds of systems, of locations), each name once; a
    column is required only if every model requires it."""
    by_name: dict[str, Column] = {c.name: c for c in first}
    order = [c.name for c in first]
    per_model = [_flat_columns(m) for m in models]
    for columns in per_model:
        for column in columns:
            if column.name not in by_name:
                by_name[column.name] = column
                order.append(column.name)
            elif column.choices:
                merged = by_name[column.name].choices + tuple(
                    c for c in column.choices if c not in by_name[column.name].choices
                )
                by_name[column.name] = dataclasses.replace(by_name[column.name], choices=merged)
    required = {c.name for c in first if c.required} | {
        name
        for name in order
        if all(any(c.name == name and c.required for c in cols) for cols in per_model)
    }
    return tuple(dataclasses.replace(by_name[n], required=n in required) for n in order)


def _child_lists() -> list[str]:
    """The fields of an activity that are lists of models: each gets a sheet of its own."""
    return [
        name
        for name, info in Activity.model_fields.items()
        if typing.get_origin(_strip(info.annotation)) is list and models_of(info.annotation)
    ]


def template_sheets() -> tuple[Sheet, ...]:
    """Return the sheets of the template, their columns derived from the RoPA models."""
    children = _child_lists()
    ropa_fields = Ropa.model_fields
    controller = (
        *(
            dataclasses.replace(
                c,
                name=f"controller.{c.name}",
                required_with=f"controller.{c.required_with}" if c.required_with else None,
            )
            for c in _flat_columns(Controller)
        ),
        Column("timezone", "text", ropa_fields["timezone"].description or ""),
    )
    activity_ref = Column(
        "activity", "text", "The id of the activity this row belongs to", (), True
    )
    sheets = [
        Sheet("controller", "controller", controller, vertical=True),
        Sheet("activities", "activities", tuple(_flat_columns(Activity, skip=children))),
    ]
    for name in children:
        models = models_of(Activity.model_fields[name].annotation)
        sheets.append(
            Sheet(name, name, _union_columns(models, [activity_ref]), parent="activities")
        )
    for name in ("systems", "events"):
        sheets.append(Sheet(name, name, _union_columns(models_of(ropa_fields[name].annotation))))
    return tuple(sheets)


# -- export --------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Given a model dump, return it with periods as text and enums as their values."""
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="python", exclude_unset=True))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Period):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    current: Any = data
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _flow(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**6
    ).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _as_lines(items: list[Any]) -> str:
    texts = [str(i) for i in items]
    plain = all(t and t == t.strip() and "\n" not in t for t in texts)
    if plain and not (texts and texts[0].startswith("[")):
        return "\n".join(texts)
    return _flow(texts)  # entries a line cannot hold (a newline, edge spaces) as a YAML list


def _cell_value(column: Column, value: Any) -> Any:
    """Given a column and a (plain) value, return what the cell holds; None for empty."""
    if value is None or value == [] or value == {}:
        return None
    if column.kind == "lines" and isinstance(value, list):
        return _as_lines(value)
    if column.kind == "yaml":
        if isinstance(value, str) and yaml.load(value, Loader=_Loader) == value:
            return value
        return _flow(value)
    if column.kind == "text":
        return str(value)
    return value


def _rows(sheet: Sheet, ropa_data: dict[str, Any]) -> Iterator[list[Any]]:
    if sheet.parent is not None:
        for activity in ropa_data.get("activities", []):
            for entry in activity.get(sheet.section, []):
                row = {"activity": activity["id"], **entry}
                yield [_cell_value(c, _lookup(row, c.name)) for c in sheet.columns]
        return
    for entry in ropa_data.get(sheet.section, []):
        yield [_cell_value(c, _lookup(entry, c.name)) for c in sheet.columns]


def export_workbook(ropa: Ropa, path: Path) -> None:
    """Write the RoPA as an .xlsx workbook (atomically: the file appears when complete).

    Raise SweeperError if a value cannot be put in a cell (control characters).
    """
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    data = _plain(ropa)
    sheets = template_sheets()
    book = Workbook()
    about = book.active
    assert about is not None
    about.title = "about"
    _write_about(about, sheets)
    bold = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE7F0")
    wrap = Alignment(wrap_text=True, vertical="top")
    lists = book.create_sheet("lists")
    list_ranges: dict[tuple[str, ...], str] = {}
    for sheet in sheets:
        ws = book.create_sheet(sheet.name)
        if sheet.vertical:
            ws.append(["field", "value", "description"])
            for cell in ws[1]:
                cell.font, cell.fill = bold, header_fill
            for column in sheet.columns:
                value = _cell_value(column, _lookup(data, column.name))
                ws.append([column.name, None, column.description])
                _put(ws.cell(ws.max_row, 2), column, value, wrap)
            ws.column_dimensions["A"].width = 34
            ws.column_dimensions["B"].width = 50
            ws.column_dimensions["C"].width = 70
            ws.freeze_panes = "B2"
            continue
        ws.append([c.name for c in sheet.columns])
        for cell, column in zip(ws[1], sheet.columns, strict=True):
            cell.font, cell.fill = bold, header_fill
            if column.description or column.choices:
                text = column.description
                if column.choices:
                    text += ("\n" if text else "") + "Allowed: " + ", ".join(column.choices)
                cell.comment = Comment(text, "ropa-sweeper")
        for values in _rows(sheet, data):
            ws.append([None] * len(values))
            for i, (column, value) in enumerate(zip(sheet.columns, values, strict=True)):
                _put(ws.cell(ws.max_row, i + 1), column, value, wrap)
        for i, column in enumerate(sheet.columns, 1):
            letter = get_column_letter(i)
            ws.column_dimensions[letter].width = 40 if column.kind in ("lines", "yaml") else 18
            if column.choices and column.kind == "text":
                if column.choices not in list_ranges:
                    list_ranges[column.choices] = _write_list(lists, column)
                rule = DataValidation(
                    type="list", formula1=list_ranges[column.choices], allow_blank=True
                )
                rule.error = "Use one of: " + ", ".join(column.choices)
                rule.showErrorMessage = True
                ws.add_data_validation(rule)
                rule.add(f"{letter}2:{letter}1048576")
        ws.freeze_panes = "B2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(sheet.columns))}{max(ws.max_row, 2)}"
    for sheet in sheets:
        for column in sheet.columns:
            if column.choices and column.kind == "lines" and column.choices not in list_ranges:
                list_ranges[column.choices] = _write_list(lists, column)
    _atomic_save(book, path)


def _put(cell: Any, column: Column, value: Any, wrap: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        if _ILLEGAL.search(value):
            from sweeper.errors import SweeperError

            raise SweeperError(
                f"{column.name}: {value!r} holds control characters a spreadsheet cannot store"
            )
        cell.value = value
        cell.data_type = "s"  # text stays text: '=…' is not turned into a formula
        cell.number_format = "@"
        if column.kind in ("lines", "yaml") or "\n" in value:
            cell.alignment = wrap
        return
    cell.value = value
    if column.kind == "date":
        cell.number_format = "yyyy-mm-dd"


def _write_list(ws: Any, column: Column) -> str:
    from openpyxl.utils import get_column_letter

    col = (ws.max_column + 1) if ws.max_row > 1 or ws["A1"].value else 1
    letter = get_column_letter(col)
    ws.cell(1, col, column.name.rsplit(".", 1)[-1]).font = _bold()
    for i, choice in enumerate(column.choices, 2):
        ws.cell(i, col, choice)
    ws.column_dimensions[letter].width = 30
    return f"lists!${letter}$2:${letter}${len(column.choices) + 1}"


def _bold() -> Any:
    from openpyxl.styles import Font

    return Font(bold=True)


def _write_about(ws: Any, sheets: Sequence[Sheet]) -> None:
    ws.append(["ropa-sweeper: record of processing activities (GDPR Art. 30)"])
    ws["A1"].font = _bold()
    ws.append(["format", FORMAT])
    ws.append([])
    lines = [
        "One row per processing activity on 'activities'; its locations and transfers on their "
        "own sheets, each row naming its activity.",
        "Lists (purposes, data categories, …): one entry per line in the cell (Alt+Enter).",
        "Structured values (a clock, where conditions, dependent tables) are YAML, as in the "
        "RoPA file: {event: student_left}.",
        "Dates are date cells, not text. Leave a cell empty for 'not given'. Do not merge cells.",
        "Import: sweeper ropa import FILE.xlsx -o ropa.yaml (every problem is named by sheet, "
        "row and column; nothing is written until all is valid).",
        "The allowed values are on the sheet 'lists'. docs/ropa-xlsx.md describes every column.",
    ]
    for line in lines:
        ws.append([line])
    ws.append([])
    ws.append(["sheet", "holds"])
    for sheet in sheets:
        ws.append([sheet.name, _SHEET_TEXT.get(sheet.name, f"the RoPA's {sheet.section}")])
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 100


_SHEET_TEXT = {
    "controller": "the controller (Art. 30(1)(a)) and the RoPA's timezone, one row per field",
    "activities": "one row per processing activity: the Art. 30(1) record and its retention rule",
    "locations": "where each activity's data lives, one row per location",
    "transfers": "transfers to third countries (Art. 30(1)(e)), one row per transfer",
    "systems": "the systems that hold personal data, one row per system",
    "events": "dated facts read from a system that start a retention clock (a pupil left)",
}


def _atomic_save(book: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        book.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- import --------------------------------------------------------------------------------


@dataclass
class _Where:
    """Where each RoPA entry came from: sheet and row, and each sheet's column letters."""

    rows: dict[tuple[str | int, ...], tuple[str, int]] = field(default_factory=dict)
    letters: dict[str, dict[str, str]] = field(default_factory=dict)
    field_rows: dict[str, int] = field(default_factory=dict)  # controller sheet: field -> row


@dataclass(frozen=True)
class Imported:
    """The result of an import: the YAML text, the validated RoPA and its warnings."""

    yaml_text: str
    loaded: LoadedRopa
    warnings: tuple[Problem, ...]


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.bad_cells: set[tuple[str, int | None, str | None]] = set()
        self.where = _Where()
        self.fatal = False  # a sheet is missing: the RoPA is not validated further

    def problem(
        self,
        sheet: str,
        row: int | None,
        column: str | None,
        message: str,
        severity: Literal["error", "warning"] = "error",
        letter: str | None = None,
    ) -> None:
        self.bad_cells.add((sheet, row, column))
        self.problems.append(
            Problem(self.file, _cell_name(sheet, row, column, letter), message, severity)
        )


def _cell_name(sheet: str, row: int | None, column: str | None, letter: str | None) -> str:
    parts = [f"sheet {sheet}"]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {letter} ({column})" if letter else f"column {column}")
    return ", ".join(parts)


def read_workbook(path: Path) -> tuple[dict[str, Any], _Reader]:
    """Given an .xlsx file, return the RoPA data its cells hold and the reader with every
    problem found in the cells (structure and types, not yet the RoPA's validity)."""
    from openpyxl import load_workbook

    reader = _Reader(str(path))
    try:
        book = load_workbook(path, data_only=False)
    except Exception as err:  # openpyxl raises zipfile, KeyError and its own errors
        raise RopaInvalid(
            [Problem(str(path), "", f"not an .xlsx workbook ({type(err).__name__}: {err})")]
        ) from err
    by_name = {ws.title.strip().lower(): ws for ws in book.worksheets}
    data: dict[str, Any] = {"activities": [], "systems": [], "events": []}
    activities: dict[str, dict[str, Any]] = {}
    sheets = template_sheets()
    missing_sheet = False
    for sheet in sheets:
        ws = by_name.get(sheet.name)
        if ws is None:
            reader.problem(
                sheet.name,
                None,
                None,
                "the sheet is missing: add it (`sweeper ropa export` writes a template with "
                "every sheet)",
            )
            missing_sheet = True
            continue
        for merged in list(ws.merged_cells.ranges):
            reader.problem(
                sheet.name,
                merged.min_row,
                None,
                f"merged cells {merged.coord}: unmerge them and fill in every cell",
            )
        if sheet.vertical:
            _read_vertical(ws, sheet, data, reader)
            continue
        for row_no, entry in _read_rows(ws, sheet, reader):
            if sheet.parent is None:
                index = len(data[sheet.section])
                data[sheet.section].append(entry)
                reader.where.rows[(sheet.section, index)] = (sheet.name, row_no)
                if sheet.section == "activities" and isinstance(entry.get("id"), str):
                    activities.setdefault(entry["id"], entry)
                continue
            owner_id = entry.pop("activity", None)
            owner = activities.get(owner_id) if isinstance(owner_id, str) else None
            if owner is None:
                if (sheet.name, 1, "activity") not in reader.bad_cells and (
                    sheet.name,
                    row_no,
                    "activity",
                ) not in reader.bad_cells:
                    known = ", ".join(activities) or "none"
                    reader.problem(
                        sheet.name,
                        row_no,
                        "activity",
                        f"no activity {owner_id!r} on the sheet activities (known: {known})"
                        if owner_id
                        else "name the activity this row belongs to",
                        letter=reader.where.letters[sheet.name].get("activity"),
                    )
                continue
            children = owner.setdefault(sheet.section, [])
            a_index = data["activities"].index(owner)
            reader.where.rows[("activities", a_index, sheet.section, len(children))] = (
                sheet.name,
                row_no,
            )
            children.append(entry)
    reader.fatal = missing_sheet
    return data, reader


def _read_header(ws: Any, sheet: Sheet, reader: _Reader) -> dict[int, Column]:
    from openpyxl.utils import get_column_letter

    columns: dict[int, Column] = {}
    seen: dict[str, int] = {}
    letters: dict[str, str] = {}
    header = next(ws.iter_rows(min_row=1, max_row=1), ())
    for cell in header:
        if cell.value is None or str(cell.value).strip() == "":
            continue
        name = str(cell.value).strip()
        letter = get_column_letter(cell.column)
        column = sheet.column(name)
        if column is None:
            close = difflib.get_close_matches(name, [c.name for c in sheet.columns], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove it or rename it"
            reader.problem(sheet.name, 1, name, f"unknown column: {hint}", letter=letter)
            continue
        if name in seen:
            reader.problem(
                sheet.name,
                1,
                name,
                f"the column appears twice (also column {letters[name]}): keep one",
                letter=letter,
            )
            continue
        seen[name] = cell.column
        letters[name] = letter
        columns[cell.column] = column
    for i, column in enumerate(sheet.columns):
        if column.name not in seen:
            after = sheet.columns[i - 1].name if i else None
            where = f" after {after!r}" if after else " first"
            reader.problem(
                sheet.name,
                1,
                column.name,
                f"the column is missing: add a column headed {column.name!r}{where} "
                "(it may stay empty)",
            )
    reader.where.letters[sheet.name] = letters
    return columns


def _read_rows(ws: Any, sheet: Sheet, reader: _Reader) -> Iterator[tuple[int, dict[str, Any]]]:
    columns = _read_header(ws, sheet, reader)
    letters = reader.where.letters[sheet.name]
    for row in ws.iter_rows(min_row=2):
        entry: dict[str, Any] = {}
        row_no = row[0].row if row else 0
        filled = False
        for cell in row:
            column = columns.get(cell.column)
            if column is None:
                if cell.value not in (None, "") and not _blank(cell.value):
                    filled = True
                continue
            value = _read_cell(cell, sheet.name, column, reader, letters.get(column.name))
            if value is _ERROR:
                filled = True
                continue
            if value is not None:
                filled = True
                _set(entry, column.name, value)
        if filled:
            yield row_no, entry


def _read_vertical(ws: Any, sheet: Sheet, data: dict[str, Any], reader: _Reader) -> None:
    header = [str(c.value).strip().lower() if c.value else "" for c in ws[1]]
    if header[:2] != ["field", "value"]:
        reader.problem(
            sheet.name, 1, None, "the first row must read 'field' and 'value' (then 'description')"
        )
        return
    reader.where.letters[sheet.name] = {c.name: "B" for c in sheet.columns}
    seen: dict[str, int] = {}
    values: dict[str, Any] = {}
    for row in ws.iter_rows(min_row=2):
        name_cell = row[0]
        if name_cell.value is None or str(name_cell.value).strip() == "":
            if len(row) > 1 and row[1].value not in (None, ""):
                reader.problem(sheet.name, name_cell.row, None, "a value without a field name")
            continue
        name = str(name_cell.value).strip()
        column = sheet.column(name)
        if column is None:
            close = difflib.get_close_matches(name, [c.name for c in sheet.columns], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "remove the row"
            reader.problem(sheet.name, name_cell.row, None, f"unknown field {name!r}: {hint}")
            continue
        if name in seen:
            reader.problem(
                sheet.name,
                name_cell.row,
                None,
                f"field {name!r} appears twice (also row {seen[name]}): keep one",
            )
            continue
        seen[name] = name_cell.row
        reader.where.field_rows[name] = name_cell.row
        if len(row) < 2:
            continue
        value = _read_cell(row[1], sheet.name, column, reader, "B")
        if value is not None and value is not _ERROR:
            values[name] = value
    for column in sheet.columns:
        if column.name not in seen:
            reader.problem(
                sheet.name,
                None,
                None,
                f"the row for field {column.name!r} is missing: add it (its value may stay empty)",
            )
    for name, value in values.items():
        _set(data, name, value)


_ERROR = object()


def _blank(value: Any) -> bool:
    return isinstance(value, str) and value.strip() == ""


def _read_cell(cell: Any, sheet: str, column: Column, reader: _Reader, letter: str | None) -> Any:
    """Return the cell's value as the RoPA spells it, None if empty, or _ERROR after
    recording a problem."""
    value = cell.value
    if value is None or _blank(value):
        return None

    def bad(message: str) -> object:
        reader.problem(sheet, cell.row, column.name, message, letter=letter)
        return _ERROR

    if cell.data_type == "f":
        return bad(f"the cell holds a formula ({value}): type the value itself")
    if column.kind == "date":
        if isinstance(value, datetime):
            if value.time() != datetime.min.time():
                return bad("a date and a time: give the date only")
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            return bad(
                f"a date typed as text ({value!r}): enter it as a date, e.g. type 2021-08-01 "
                "in a cell formatted as a date (not as text)"
            )
        return bad(f"{value!r} is not a date: format the cell as a date and enter the date")
    if isinstance(value, datetime):
        if column.kind in ("text", "lines"):
            return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
        return value
    if column.kind == "number":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if column.kind == "bool":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value
    if column.kind == "text":
        return _number_text(value) if isinstance(value, (int, float)) else value
    if column.kind == "lines":
        if isinstance(value, (int, float)):
            return [_number_text(value)]
        text = str(value)
        if text.lstrip().startswith("["):
            parsed = _yaml(text, bad)
            if parsed is _ERROR:
                return _ERROR
            if not isinstance(parsed, list):
                return bad("a cell that starts with '[' is read as a YAML list: close it with ']'")
            return parsed
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(value, str):
        return _yaml(value, bad)
    return value


def _number_text(value: int | float | bool) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _yaml(text: str, bad: Any) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        reason = getattr(err, "problem", None) or str(err)
        return bad(
            f"not valid YAML ({reason}): write it as in the RoPA file, e.g. "
            "{event: student_left} or [{column: school, value: X}]"
        )


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


# -- from RoPA problems back to cells -------------------------------------------------------


@dataclass(frozen=True)
class _Mapped:
    problem: Problem
    sheet: str | None = None
    row: int | None = None
    column: str | None = None


def _cell_of(problem: Problem, reader: _Reader) -> _Mapped:
    """Given a problem of the RoPA validation (a dotted path), return it named by sheet, row
    and column of the workbook."""
    loc = _parse_loc(problem.path)
    sheets = {s.name: s for s in template_sheets()}
    if loc and loc[0] in ("controller", "timezone"):
        dotted = ".".join(str(p) for p in loc if isinstance(p, str))
        names = [c.name for c in sheets["controller"].columns if c.name in reader.where.field_rows]
        name = next(
            (n for n in names if dotted == n or dotted.startswith(n + ".")),
            next((n for n in names if n.startswith(dotted + ".")), None),
        )
        row = reader.where.field_rows.get(name) if name else None
        where = _cell_name("controller", row, name, "B" if name else None)
        return _Mapped(
            Problem(reader.file, where, problem.message, problem.severity), "controller", row, name
        )
    key: tuple[str | int, ...] = ()
    for size in (4, 2):
        if tuple(loc[:size]) in reader.where.rows:
            key = tuple(loc[:size])
            break
    if not key:
        return _Mapped(Problem(reader.file, problem.path, problem.message, problem.severity))
    sheet_name, row = reader.where.rows[key]
    column, inner = _column_for(sheets[sheet_name], loc[len(key) :])
    message = f"{inner}: {problem.message}" if column is not None and inner else problem.message
    letter = reader.where.letters.get(sheet_name, {}).get(column) if column else None
    where = _cell_name(sheet_name, row, column, letter)
    return _Mapped(Problem(reader.file, where, message, problem.severity), sheet_name, row, column)


def _column_for(sheet: Sheet, rest: Sequence[str | int]) -> tuple[str | None, str]:
    """Given the path under a row, return the column it falls in and the path inside the
    column's value (for YAML cells: where[0].value)."""
    from sweeper.ropa.load import format_loc

    names = [c.name for c in sheet.columns]
    parts: list[str] = []
    for i, part in enumerate(rest):
        if isinstance(part, int):
            break
        parts.append(part)
        dotted = ".".join(parts)
        if dotted in names:
            inner = rest[i + 1 :]
            column = sheet.column(dotted)
            if column is not None and column.kind == "lines":
                inner = ()
            return dotted, format_loc((dotted, *inner)) if inner else ""
    dotted = ".".join(parts)
    if dotted:
        first = next((n for n in names if n.startswith(dotted + ".")), None)
        if first is not None:
            return first, ""
    return None, ""


# -- the whole import ------------------------------------------------------------------------


def import_workbook(path: Path, *, output: Path | None = None, strict: bool = False) -> Imported:
    """Given an .xlsx RoPA, validate it as a RoPA and return the YAML; with ``output``, write
    it there (atomically, only when valid: nothing is half-written).

    Raise RopaInvalid with every problem, each named by sheet, row and column.
    """
    data, reader = read_workbook(path)
    if reader.fatal:
        raise RopaInvalid(reader.problems)
    text = render_yaml(data, path)
    folder = output.parent if output is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ropa-import-", dir=folder) as tmp:
        # Inside the output's folder, so relative paths in the RoPA resolve as they will.
        candidate = Path(tmp) / (output.name if output is not None else "ropa.yaml")
        candidate.write_text(text, encoding="utf-8")
        try:
            loaded = load_ropa(candidate, strict=strict)
        except RopaInvalid as err:
            mapped = [_cell_of(p, reader) for p in err.problems]
            raise RopaInvalid(_merge(reader, mapped)) from None
        if any(p.severity == "error" for p in reader.problems):
            raise RopaInvalid(reader.problems)
        warnings = tuple(_cell_of(w, reader).problem for w in loaded.warnings)
        if output is not None:
            os.replace(candidate, output)
            loaded = load_ropa(output)
    return Imported(text, loaded, warnings)


def _merge(reader: _Reader, mapped: list[_Mapped]) -> list[Problem]:
    """The cell problems and the RoPA's problems, without repeating what a cell problem
    already says: a required value whose column is missing, a cell that could not be read,
    or a row-level consequence of such a cell."""
    bad = reader.bad_cells
    missing_columns = {(s, c) for (s, r, c) in bad if r == 1 and c is not None}
    bad_rows = {(s, r) for (s, r, _) in bad}
    out = list(reader.problems)
    for m in mapped:
        if m.sheet is not None and (
            (m.sheet, m.row, m.column) in bad
            or (m.sheet, m.column) in missing_columns
            or (m.column is None and (m.sheet, m.row) in bad_rows)
        ):
            continue
        out.append(m.problem)
    return out


def render_yaml(data: dict[str, Any], source: Path) -> str:
    """Return the RoPA data as a YAML file, with a header saying where it came from."""
    order = ("controller", "timezone", "systems", "events", "activities")
    body = {k: data[k] for k in order if data.get(k) not in (None, [], {})}
    body.update({k: v for k, v in data.items() if k not in order})
    text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
    return f"# Imported from {source.name} by `sweeper ropa import`.\n" + text


def describe_template() -> str:
    """Return the Markdown description of every sheet and column (docs/ropa-xlsx.md)."""
    out: list[str] = []
    kinds = {
        "text": "text",
        "number": "number",
        "bool": "TRUE/FALSE",
        "date": "date cell",
        "lines": "one entry per line",
        "yaml": "YAML value",
    }
    for sheet in template_sheets():
        out.append(f"### Sheet `{sheet.name}`\n")
        text = _SHEET_TEXT.get(sheet.name, f"the RoPA's {sheet.section}")
        out.append(text[:1].upper() + text[1:] + ".\n")
        head = "field (column A)" if sheet.vertical else "column"
        out.append(f"| {head} | cell | required | meaning |")
        out.append("|---|---|---|---|")
        for column in sheet.columns:
            meaning = column.description.replace("|", "\\|").replace("\n", " ")
            if meaning and not meaning.endswith("."):
                meaning += "."
            if column.choices:
                meaning += (
                    (" " if meaning else "")
                    + "One of: "
                    + ", ".join(f"`{c}`" for c in column.choices)
                    + ("" if column.kind == "text" else " (one per line)")
                )
            required = "yes" if column.required else ""
            if column.required_with:
                required = f"with `{column.required_with}`"
            out.append(f"| `{column.name}` | {kinds[column.kind]} | {required} | {meaning} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    sys.stdout.write(describe_template())
