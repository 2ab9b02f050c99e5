"""`sweeper ropa export` and `sweeper ropa import` as a privacy officer runs them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import openpyxl

# The `sweeper` fixture (tests/e2e/conftest.py) runs the console script.
Run = Callable[..., subprocess.CompletedProcess[str]]

DEMO = Path(__file__).resolve().parents[2] / "sweeper" / "demo" / "ropa.yaml"


def test_export_then_import_gives_the_same_digest(sweeper: Run, tmp_path: Path) -> None:
    """Export and import print the same RoPA digest, and the imported YAML validates."""
    exported = sweeper("ropa", "export", "--ropa", str(DEMO), "--format", "xlsx", "-o", "r.xlsx")
    assert exported.returncode == 0, exported.stderr
    digest = exported.stderr.split("digest ")[1][:12]
    imported = sweeper("ropa", "import", "r.xlsx", "-o", "back.yaml")
    assert imported.returncode == 0, imported.stderr
    assert f"digest {digest}" in imported.stderr
    validated = sweeper("validate", "--strict", "back.yaml")
    assert validated.returncode == 0 and f"digest {digest}" in validated.stdout


def test_bad_workbook_exits_2_naming_the_cell_and_writes_nothing(
    sweeper: Run, tmp_path: Path
) -> None:
    """An unknown legal basis exits 2 with sheet, row and column, no traceback, no file."""
    assert sweeper("ropa", "export", "--ropa", str(DEMO), "-o", "r.xlsx").returncode == 0
    book = openpyxl.load_workbook(tmp_path / "r.xlsx")
    ws = book["activities"]
    col = next(c.column for c in ws[1] if c.value == "legal_basis")
    ws.cell(2, col).value = "wettelijke plicht"
    book.save(tmp_path / "r.xlsx")
    result = sweeper("ropa", "import", "r.xlsx", "-o", "back.yaml")
    assert result.returncode == 2
    assert (
        "sheet activities, row 2, column F (legal_basis): 'wettelijke plicht' is not allowed"
        in (result.stderr)
    )
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "back.yaml").exists()
