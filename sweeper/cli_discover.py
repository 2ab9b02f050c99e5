"""``sweeper discover``: find stores that hold personal data the RoPA does not know about, and
act on the findings (register, acknowledge, review).

Register it with ``cli.add_command(discover)``. Discovery opens every system read-only and
deletes nothing; acknowledging and opening a review change only the state store, and both are
audited.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click

if TYPE_CHECKING:  # imported when a command runs: `sweeper --help` needs no SQLAlchemy
    from sweeper.coverage import Coverage
    from sweeper.settings import Settings


class _HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


@click.group(invoke_without_command=True)
@click.option(
    "--ropa",
    "ropa_path",
    type=click.Path(path_type=Path),
    help="RoPA file or folder (default: the 'ropa' setting).",
)
@click.option(
    "--reports-dir", type=click.Path(path_type=Path, file_okay=False), help="Where to write."
)
@click.option("--limit", default=25, show_default=True, help="Findings to print (0: all).")
@click.pass_context
def discover(
    ctx: click.Context, ropa_path: Path | None, reports_dir: Path | None, limit: int
) -> None:
    """Discover stores holding personal data that the RoPA does not cover, ranked by score.

    Lists every system's stores (tables, folders, …), compares them with the RoPA's locations,
    samples them within the settings' bounds, prints the ranked findings and the coverage, and
    writes a JSON report. Nothing is changed on any system. Exit 1 if a system failed.
    """
    if ctx.invoked_subcommand is not None:
        return
    from sweeper.cli import _progress, console, err_console
    from sweeper.discover import DiscoveryOptions, run_discovery
    from sweeper.errors import SweeperError
    from sweeper.ropa import load_ropa
    from sweeper.store import Store

    settings = ctx.obj.settings
    path = ropa_path or settings.ropa
    if path is None:
        raise SweeperError("no RoPA given: use --ropa PATH or set 'ropa' in the settings")
    loaded = load_ropa(path)
    for warning in loaded.warnings:
        click.echo(str(warning), err=True)
    store = Store.open(settings.state_database_url)
    try:
        with _progress() as progress:
            result = run_discovery(
                loaded,
                settings,
                store,
                DiscoveryOptions(
                    progress=progress, reports_dir=reports_dir or settings.reports_path
                ),
            )
        _print_findings(result.findings, limit, result.run_id)
        _print_systems(result.systems)
        from sweeper.coverage import coverage_history

        _print_coverage(coverage_history(store, settings.discovery.trend_runs))
        console.print(f"\ndiscovery run [bold]{result.run_id}[/]; report: {result.report}")
        if result.findings:
            console.print(
                "act on a finding: sweeper discover suggest --finding ID | "
                "acknowledge ID --reason WHY --by NAME | review ID --reason WHAT --by NAME"
            )
        if not result.complete:
            err_console.print("[red]discovery is incomplete[/]: a system failed (see above)")
            sys.exit(1)
    finally:
        store.close()


def _print_findings(findings: list[Any], limit: int, run_id: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from sweeper.cli import console
    from sweeper.report import human_bytes

    if not findings:
        console.print("no findings: every discovered store is registered and inspected")
        return
    shown = findings if limit <= 0 else findings[:limit]
    table = Table(
        title=f"findings of run {run_id}, highest score first ({len(findings)} in all)",
        title_justify="left",
    )
    for col in ("id", "score", "finding", "system", "store", "items", "size", "oldest", "found"):
        table.add_column(col, justify="right" if col in ("score", "items", "size") else "left")
    for f in shown:
        evidence = f.uncovered if f.registration == "partial" else f.tally
        found = ", ".join(
            f"{d}:{h.values}" if h.values else d for d, h in sorted(evidence.hits.items())
        )
        finding = f.finding + (f" ({f.status})" if f.status != "new" else "")
        if f.note:
            finding += f" - {f.note}"
        count = "" if f.items is None else str(f.items)
        if f.details.get("count") == "estimate":
            count = "~" + count
        table.add_row(
            f.id,
            f"{f.score:.1f}",
            escape(finding),
            f.system,
            escape(f"{f.kind} {f.where}"),
            count,
            human_bytes(f.size) if f.size is not None else "",
            f.oldest.strftime("%Y-%m-%d") if f.oldest else "",
            escape(found or ("not inspected" if not f.inspected else "nothing")),
        )
    console.print(table)
    if len(shown) < len(findings):
        console.print(f"... and {len(findings) - len(shown)} more (--limit 0 shows all)")


def _print_systems(systems: list[Any]) -> None:
    from rich.markup import escape

    from sweeper.cli import console

    for s in systems:
        if s.outcome != "discovered":
            reason = f": {escape(s.reason)}" if s.reason else ""
            console.print(f"system {s.system}: {s.outcome}{reason}")


def _print_coverage(history: list[Coverage]) -> None:
    """Print the coverage of the runs (oldest first), how the latest moved, and the legacy
    systems of the latest that still hold data."""
    from rich.table import Table

    from sweeper.cli import console
    from sweeper.coverage import change, percent

    if not history:
        return
    table = Table(title="coverage, oldest run first", title_justify="left")
    for col in (
        "run",
        "activities enforceable",
        "stores registered",
        "personal-data stores registered",
        "personal records registered",
        "legacy systems with data",
        "uninspectable",
    ):
        table.add_column(col)
    for c in history:
        table.add_row(
            c.run_id,
            f"{percent(c.activities_share)} ({c.activities_enforceable}/{c.activities})",
            f"{percent(c.stores_share)} ({c.stores_registered}/{c.stores})",
            f"{percent(c.personal_share)} ({c.personal_stores_registered}/{c.personal_stores})",
            f"{percent(c.records_share)} (~{c.personal_records_registered}/~{c.personal_records})",
            str(c.legacy_systems_with_data),
            str(c.uninspectable),
        )
    console.print(table)
    moved = {k: v for k, v in change(history).items() if v}
    if moved:
        names = {
            "activities_share": "activities enforceable",
            "stores_share": "stores registered",
            "personal_share": "personal-data stores registered",
            "records_share": "personal records registered",
        }
        console.print(
            "since the run before: "
            + ", ".join(f"{names[k]} {v:+.1f} points" for k, v in moved.items())
        )
    latest = history[-1]
    for legacy in latest.legacy_systems:
        console.print(
            f"[bold red]legacy system {legacy['system']}[/] ({legacy['status']}) still holds "
            f"{legacy['items']} items in {legacy['stores']} store(s), "
            f"{legacy['personal_stores']} with personal data"
        )


@discover.command()
@click.option("--finding", "finding_id", required=True, metavar="ID", help="The finding's id.")
@click.option("--run", "run_id", metavar="RUN", help="From this run (default: the latest).")
@click.option(
    "--ropa", "ropa_path", type=click.Path(path_type=Path), help="RoPA (default: the run's)."
)
@click.pass_obj
def suggest(obj: _HasSettings, finding_id: str, run_id: str | None, ropa_path: Path | None) -> None:
    """Print a RoPA location snippet that registers a finding's store, to paste."""
    from sweeper.discover import stored_finding
    from sweeper.discover import suggest as snippet
    from sweeper.ropa import load_ropa
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        record = stored_finding(store, finding_id, run_id)
        path = ropa_path or _run_ropa(store, record["run_id"])
    finally:
        store.close()
    click.echo(snippet(load_ropa(path), record), nl=False)


def _run_ropa(store: Any, run_id: str) -> Path:
    from sweeper.discover import stored_runs

    for run in stored_runs(store, limit=10_000):
        if run["id"] == run_id:
            return Path(run["ropa_path"])
    raise click.ClickException(f"run {run_id} is not stored")


def _decide(obj: _HasSettings, finding_id: str, decision: str, by: str, reason: str) -> None:
    from datetime import UTC, datetime

    from sweeper.discover import decide, stored_finding
    from sweeper.store import Store

    settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        record = stored_finding(store, finding_id)
        number = decide(
            store,
            settings,
            record,
            decision=decision,
            by=by,
            reason=reason,
            now=datetime.now(UTC),
        )
    finally:
        store.close()
    what = "acknowledged" if decision == "acknowledged" else f"under review (review item {number})"
    click.echo(f"finding {record['id']} ({record['kind']} {record['where']}) {what} by {by}")


@discover.command()
@click.argument("finding_id", metavar="ID")
@click.option("--reason", required=True, help="Why it may stay as it is (kept and audited).")
@click.option("--by", "by", required=True, help="Who decides.")
@click.pass_obj
def acknowledge(obj: _HasSettings, finding_id: str, reason: str, by: str) -> None:
    """Acknowledge a finding: it stops appearing until its store holds something new."""
    _decide(obj, finding_id, "acknowledged", by, reason)


@discover.command()
@click.argument("finding_id", metavar="ID")
@click.option("--reason", required=True, help="What is to be looked into (kept and audited).")
@click.option("--by", "by", required=True, help="Who opens the review.")
@click.pass_obj
def review(obj: _HasSettings, finding_id: str, reason: str, by: str) -> None:
    """Turn a finding into a review item; acknowledging the finding closes it."""
    _decide(obj, finding_id, "review", by, reason)


@discover.command()
@click.option("--all", "show_all", is_flag=True, help="Include closed review items.")
@click.pass_obj
def reviews(obj: _HasSettings, show_all: bool) -> None:
    """List review items made from findings."""
    from rich.markup import escape
    from rich.table import Table

    from sweeper.cli import console
    from sweeper.discover import open_reviews
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        table = Table("item", "finding", "system", "opened", "by", "what", "state")
        for r in open_reviews(store, include_closed=show_all):
            state = r["state"] if r["state"] == "open" else f"closed by {r['closed_by']}"
            table.add_row(
                str(r["id"]),
                r["finding_id"],
                r["system"],
                f"{r['at']:%Y-%m-%d %H:%M}",
                escape(r["by"]),
                escape(r["reason"]),
                state,
            )
        console.print(table)
    finally:
        store.close()


@discover.command()
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@click.pass_obj
def runs(obj: _HasSettings, limit: int) -> None:
    """List the latest discovery runs with their coverage: the trend, oldest first."""
    from sweeper.coverage import coverage_history
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        _print_coverage(coverage_history(store, limit))
    finally:
        store.close()
