"""``sweeper ropa``: the RoPA as a spreadsheet, for privacy officers who keep it in Excel.

``export`` writes the YAML RoPA as an .xlsx workbook (the template ``docs/ropa-xlsx.md``
describes); ``import`` reads such a workbook back, validates it as a RoPA and writes the YAML
only when everything is valid. Register it with ``cli.add_command(ropa)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import click

from sweeper.errors import SweeperError

if TYPE_CHECKING:
    from sweeper.settings import Settings


class _HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


@click.group()
def ropa() -> None:
    """The RoPA as a spreadsheet: export it to .xlsx and import it back."""


@ropa.command("export")
@click.option(
    "--ropa",
    "ropa_path",
    type=click.Path(path_type=Path),
    help="The RoPA file or folder (default: 'ropa' in the settings).",
)
@click.option("--format", "fmt", type=click.Choice(["xlsx"]), default="xlsx", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write (default: the RoPA's name with .xlsx, in the current folder).",
)
@click.pass_obj
def export(obj: _HasSettings, ropa_path: Path | None, fmt: str, output: Path | None) -> None:
    """Write the RoPA as a spreadsheet: one row per processing activity, a column per
    Art. 30 field and the retention rule; controller, systems, events, locations and
    transfers on sheets of their own."""
    from sweeper.ropa import load_ropa
    from sweeper.ropa.xlsx import export_workbook

    path = ropa_path or obj.settings.ropa
    if path is None:
        raise SweeperError("no RoPA given: use --ropa PATH or set 'ropa' in the settings")
    loaded = load_ropa(path)
    target = output or Path(f"{Path(path).stem}.xlsx")
    export_workbook(loaded.ropa, target)
    click.echo(
        f"written: {target} ({len(loaded.ropa.activities)} activities, "
        f"{len(loaded.ropa.systems)} systems; digest {loaded.digest[:12]})",
        err=True,
    )


@ropa.command("import")
@click.argument("workbook", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The YAML file to write (default: print it).",
)
@click.option("--strict", is_flag=True, help="Treat Art. 30 completeness warnings as errors.")
def import_(workbook: Path, output: Path | None, strict: bool) -> None:
    """Read a RoPA spreadsheet, validate it and write the YAML RoPA.

    Every problem is listed at once, by sheet, row and column; exit 2 and nothing is written
    if there is any.
    """
    from sweeper.ropa.xlsx import import_workbook

    result = import_workbook(workbook, output=output, strict=strict)
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    ropa = result.loaded.ropa
    summary = (
        f"{workbook}: valid: {len(ropa.activities)} activities, {len(ropa.systems)} systems, "
        f"{len(ropa.events)} events, {len(result.warnings)} warning(s); "
        f"digest {result.loaded.digest[:12]}"
    )
    if output is None:
        sys.stdout.write(result.yaml_text)
        click.echo(summary, err=True)
    else:
        click.echo(f"{summary}\nwritten: {output}", err=True)
