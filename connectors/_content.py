"""Bounded samples of file content for discovery's detectors, wherever the files live (a share,
a bucket): which files are read and which are judged by name, which of a store's files are
sampled, and how a CSV, TSV, spreadsheet or text becomes rows or text.

Types read by content: CSV and TSV (rows; the delimiter of a CSV is the commonest of ``;``,
``,``, tab and ``|`` in its first line), XLSX (openpyxl, read-only: up to ``rows`` rows of the
first five sheets; skipped when its sheets and shared strings unpack to more than 32 times the
byte bound) and plain text (.txt, .log, .md, .json, .xml, .html, .sql, .vcf, .ldif, …). Other
files are judged by name and size only. Text is UTF-8 (with or without a byte-order mark), else
Windows-1252; a text cut at the byte bound loses its last, partial line.

Nothing here keeps a value: a ``Sample`` goes to the detectors and is dropped.
"""

from __future__ import annotations

import csv
import heapq
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Final

from connectors.base import Sample, SampleRequest

__all__ = ["READABLE", "SPREADSHEET", "extension", "keep", "readable_type", "samples"]

TABULAR: Final = frozenset({"csv", "tsv", "tab"})
SPREADSHEET: Final = frozenset({"xlsx", "xlsm"})
TEXT: Final = frozenset(
    {"txt", "text", "log", "md", "json", "xml", "html", "htm", "sql", "vcf", "ldif", "ics"}
    | {"yaml", "yml", "ini", "eml", "rtf"}
)
READABLE: Final = TABULAR | SPREADSHEET | TEXT
_SHEETS = 5
_SHEET_COLUMNS = 200
_SPREADSHEET_FACTOR = 32


def extension(name: str) -> str:
    """Given a file name, return its extension in lower case ('' if it has none)."""
    return name.rpartition(".")[2].lower() if "." in name else ""


def readable_type(name: str) -> bool:
    """Given a file name, return whether discovery reads its content."""
    return extension(name) in READABLE


Candidate = tuple[int, str, int, str | None]  # (-hash, key, size, version)


def keep(
    heap: list[Candidate], limit: int, key: str, size: int, version: str | None = None
) -> None:
    """Keep the ``limit`` keys with the lowest hash in ``heap``: a choice of files to sample
    that is the same on every run over an unchanged store, whatever order it is listed in."""
    if limit <= 0:
        return
    h = zlib.crc32(key.encode("utf-8", "surrogateescape"))
    if len(heap) < limit:
        heapq.heappush(heap, (-h, key, size, version))
    elif -heap[0][0] > h:
        heapq.heapreplace(heap, (-h, key, size, version))


def chosen(heap: list[Candidate]) -> list[tuple[str, int, str | None]]:
    """Given a heap ``keep`` filled, return its keys, sizes and versions, lowest hash first."""
    return [(key, size, version) for _, key, size, version in sorted(heap, reverse=True)]


def samples(
    where: str, name: str, size: int, handle: IO[bytes], request: SampleRequest
) -> Iterator[Sample]:
    """Given a readable file's content (``handle``, at its start) and its whole size, yield
    what the detectors get of it: rows (CSV, TSV, each sheet of a spreadsheet) or text, within
    the request's bounds, with the part of the file they are."""
    ext = extension(name)
    if ext in SPREADSHEET:
        yield from _spreadsheet(handle, where, name, size, request)
        return
    data = handle.read(request.bytes)
    text = _decode(data, size > len(data))
    whole = max(1, size)
    if ext in TABULAR:
        rows, used = _csv_rows(text, ext, request.rows)
        share = min(1.0, len(text[:used].encode("utf-8", "replace")) / whole)
        yield Sample(where, name, rows=rows, size=size, fraction=share or None)
    else:
        share = min(1.0, len(text.encode("utf-8", "replace")) / whole)
        yield Sample(where, name, text=text, size=size, fraction=share or None)


def _decode(data: bytes, truncated: bool) -> str:
    if truncated:
        end = data.rfind(b"\n")
        if end > 0:
            data = data[: end + 1]  # no half line at the end
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _csv_rows(text: str, ext: str, limit: int) -> tuple[list[list[str]], int]:
    """Given a CSV file's text, return its first ``limit`` rows after the first line, and how
    many characters of the text they take."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return [], 0
    if ext in ("tsv", "tab"):
        delimiter = "\t"
    else:
        first = lines[0]
        delimiter = max((";", ",", "\t", "|"), key=first.count)
    taken = lines[: limit + 1]
    rows = list(csv.reader((line.rstrip("\r\n") for line in taken), delimiter=delimiter))
    return rows, sum(len(line) for line in taken)


def _spreadsheet(
    handle: IO[bytes], where: str, name: str, size: int, request: SampleRequest
) -> Iterator[Sample]:
    try:
        with zipfile.ZipFile(handle) as archive:
            unpacked = sum(
                i.file_size
                for i in archive.infolist()
                if i.filename.startswith("xl/worksheets/") or i.filename == "xl/sharedStrings.xml"
            )
    except (zipfile.BadZipFile, OSError):
        yield Sample(where, name, size=size, skipped="not a readable spreadsheet")
        return
    if unpacked > _SPREADSHEET_FACTOR * max(request.bytes, 1):
        yield Sample(where, name, size=size, skipped="too large to sample")
        return
    handle.seek(0)
    from openpyxl import load_workbook

    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001  (openpyxl raises many kinds for a damaged file)
        yield Sample(where, name, size=size, skipped="not a readable spreadsheet")
        return
    try:
        for number, sheet in enumerate(book.worksheets[:_SHEETS], start=1):
            rows = []
            columns = min(_SHEET_COLUMNS, sheet.max_column or _SHEET_COLUMNS)
            for row in sheet.iter_rows(max_row=request.rows + 1, max_col=columns, values_only=True):
                cells = list(row)
                while cells and cells[-1] is None:
                    cells.pop()
                rows.append(cells)
            total = sheet.max_row  # from the sheet's dimension; None where it has none
            share = min(1.0, len(rows) / total) if total and rows else None
            yield Sample(where, name, rows=rows, size=size, sheet=number, fraction=share)
    finally:
        book.close()
