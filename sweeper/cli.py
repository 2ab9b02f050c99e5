"""The ``sweeper`` command line. Every command is a dry run unless it says otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from sweeper import logging as sweeper_logging
from sweeper.errors import Problem, RopaInvalid, SweeperError
from sweeper.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


class _Context:
    def __init__(self, config: Path | None, state_url: str | None, state_dir: Path | None):
        self.config = config
        self.overrides = {"state_url": state_url, "state_dir": state_dir}
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config, **self.overrides)
        return self._settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (YAML). Default: $SWEEPER_CONFIG or /etc/ropa-sweeper/sweeper.yaml.",
)
@click.option("--state-url", help="SQLAlchemy URL of the state store (overrides the settings).")
@click.option(
    "--state-dir", type=click.Path(path_type=Path, file_okay=False), help="State directory."
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="Log format; auto is human-readable on a terminal, JSON otherwise.",
)
@click.version_option(package_name="ropa-sweeper")
@click.pass_context
def cli(
    ctx: click.Context,
    config: Path | None,
    state_url: str | None,
    state_dir: Path | None,
    verbose: int,
    log_format: str,
) -> None:
    """ropa-sweeper: find personal data past the retention periods of your RoPA."""
    sweeper_logging.configure(verbose, None if log_format == "auto" else log_format == "json")
    ctx.obj = _Context(config, state_url, state_dir)


# -- validate / schema ------------------------------------------------------------------


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat Art. 30 completeness warnings as errors.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def validate(path: Path, strict: bool, fmt: str) -> None:
    """Validate a RoPA file or folder; list every problem. Exit 2 on errors."""
    from sweeper.ropa import load_ropa

    try:
        loaded = load_ropa(path, strict=strict)
    except RopaInvalid as err:
        _print_problems(err.problems, fmt)
        sys.exit(2)
    _print_problems(list(loaded.warnings), fmt)
    if fmt == "text":
        ropa = loaded.ropa
        click.echo(
            f"{path}: valid: {len(ropa.activities)} activities, {len(ropa.systems)} systems, "
            f"{len(ropa.events)} events, {len(loaded.warnings)} warning(s); "
            f"digest {loaded.digest[:12]}"
        )


def _print_problems(problems: list[Problem], fmt: str) -> None:
    if fmt == "json":
        console.print_json(
            json.dumps(
                [
                    {
                        "file": p.file,
                        "line": p.line,
                        "path": p.path,
                        "severity": p.severity,
                        "message": p.message,
                    }
                    for p in problems
                ]
            )
        )
        return
    for p in problems:
        click.echo(str(p), err=True)
    errors = sum(1 for p in problems if p.severity == "error")
    if errors:
        click.echo(f"{errors} error(s), {len(problems) - errors} warning(s)", err=True)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a RoPA file, generated from the models."""
    from sweeper.ropa.model import Ropa

    click.echo(json.dumps(Ropa.model_json_schema(), indent=2))


# -- plan / plans / report ----------------------------------------------------------------


@cli.command()
@click.option(
    "--ropa",
    "ropa_path",
    type=click.Path(path_type=Path),
    help="RoPA file or folder (default: the 'ropa' setting).",
)
@click.option("--list-not-due", is_flag=True, help="Store and report items not yet due too.")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Compute due dates as of this date (a preview; execution re-checks the real clock).",
)
@click.option(
    "--reports-dir", type=click.Path(path_type=Path, file_okay=False), help="Where to write."
)
@click.pass_obj
def plan(
    obj: _Context,
    ropa_path: Path | None,
    list_not_due: bool,
    as_of: datetime | None,
    reports_dir: Path | None,
) -> None:
    """Dry run: scan every location, store a plan, write JSON and CSV reports.

    Nothing is changed on any system. Exit 1 if a system failed (the others are scanned).
    """
    result, _ = run_plan(obj.settings, ropa_path, list_not_due, as_of, reports_dir)
    if not result.complete:
        sys.exit(1)


def run_plan(
    settings: Settings,
    ropa_path: Path | None,
    list_not_due: bool = False,
    as_of: datetime | None = None,
    reports_dir: Path | None = None,
) -> tuple[Any, dict[str, Path]]:
    """Load the RoPA, build and store a plan, write its reports and print the summary."""
    from sweeper.plan import PlanOptions, build_plan
    from sweeper.ropa import load_ropa
    from sweeper.store import Store

    path = ropa_path or settings.ropa
    if path is None:
        raise SweeperError("no RoPA given: use --ropa PATH or set 'ropa' in the settings")
    loaded = load_ropa(path)
    for warning in loaded.warnings:
        click.echo(str(warning), err=True)
    store = Store.open(settings.state_database_url)
    try:
        options: dict[str, Any] = {
            "list_not_due": list_not_due,
            "reports_dir": reports_dir or settings.reports_path,
        }
        if as_of is not None:
            from zoneinfo import ZoneInfo

            options["now"] = as_of.replace(tzinfo=ZoneInfo(loaded.ropa.timezone))
        with _progress() as progress:
            result = build_plan(loaded, settings, store, PlanOptions(progress=progress, **options))
        paths = result.reports
        _print_plan_summary(store, result.plan_id)
        console.print(f"\nplan [bold]{result.plan_id}[/] stored in {_safe_url(settings)}")
        console.print(f"reports: {paths['json']}\n         {paths['csv']}")
        console.print(
            f"to review in a browser or a spreadsheet: sweeper report {result.plan_id} "
            "--format html (or xlsx)"
        )
        if not result.complete:
            err_console.print(
                "[red]the plan is incomplete[/]: a system or location failed (see above); "
                "the others were scanned"
            )
        return result, paths
    finally:
        store.close()


@cli.command()
@click.option("--limit", default=20, show_default=True, help="How many plans to list.")
@click.pass_obj
def plans(obj: _Context, limit: int) -> None:
    """List stored plans, newest first."""
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        from sweeper.approve import decisions

        table = Table(
            "plan",
            "created",
            "by",
            "items",
            "due",
            "legacy",
            "held",
            "locked/protected",
            "complete",
            "decisions",
            "ropa",
        )
        for p in store.plans(limit):
            totals = p["summary"].get("totals", {})
            found = decisions(store, p["id"])
            verdicts = ", ".join(
                f"{d.decision} by {d.by}"
                + ("" if str(d.scope) == "the whole plan" else f" ({d.scope})")
                for d in found
            )
            table.add_row(
                p["id"],
                p["created_at"].strftime("%Y-%m-%d %H:%M"),
                p["created_by"],
                str(p["item_count"]),
                str(totals.get("due", 0)),
                str(totals.get("legacy_due", 0)),
                str(totals.get("held", 0)),
                str(totals.get("locked", 0) + totals.get("protected", 0)),
                "yes" if p["complete"] else ("building" if p["state"] == "building" else "no"),
                verdicts
                or (
                    "auto_approve dry run" if "activities" in p["summary"] else "awaiting approval"
                ),
                p["ropa_path"],
            )
        console.print(table)
    finally:
        store.close()


@cli.command()
@click.argument("plan_id", metavar="PLAN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv", "html", "xlsx"]),
    default="json",
    show_default=True,
    help="html: one self-contained page for review in a browser; xlsx: a workbook.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="File (default: stdout for json and csv, reports_dir/plan-ID.html|xlsx for html "
    "and xlsx; '-' for stdout).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "nl"]),
    help="Language of the html and xlsx reports (default: the report_language setting).",
)
@click.pass_obj
def report(obj: _Context, plan_id: str, fmt: str, output: Path | None, lang: str | None) -> None:
    """Render a stored plan again as JSON, CSV, HTML or XLSX."""
    from sweeper.report import write_csv, write_json
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    if fmt in ("html", "xlsx"):
        try:
            _report_for_people(obj, store, plan_id, fmt, output, lang)
        finally:
            store.close()
        return
    writer = write_json if fmt == "json" else write_csv
    try:
        if output is None:
            writer(store, plan_id, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                writer(store, plan_id, out)
            err_console.print(f"written: {output}")
    finally:
        store.close()


def _report_for_people(
    obj: _Context, store: Any, plan_id: str, fmt: str, output: Path | None, lang: str | None
) -> None:
    """Write the HTML or XLSX report of a plan, to a file (atomically) or to stdout."""
    import shutil
    import tempfile

    from sweeper.report_html import ReportOptions, save_report

    settings = obj.settings
    plan = store.plan(plan_id)
    options = ReportOptions.from_settings(
        settings, plan["id"], language=lang, program=_program(obj)
    )
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and fmt == "xlsx" and sys.stdout.isatty():
        raise SweeperError("an xlsx report is binary: give -o FILE, or pipe stdout")
    if to_stdout:
        with tempfile.TemporaryDirectory() as folder:
            written = save_report(store, plan["id"], Path(folder) / f"report.{fmt}", options, fmt)
            with written.open("rb") as report:
                shutil.copyfileobj(report, sys.stdout.buffer)
        return
    target = settings.reports_path / f"plan-{plan['id']}.{fmt}" if output is None else output
    save_report(store, plan["id"], target, options, fmt)
    err_console.print(f"written: {target}")


def _program(obj: _Context) -> str:
    """How to run this sweeper again with the same state: for the commands a report prints."""
    import shlex

    words = ["sweeper"]
    if obj.config is not None:
        words += ["--config", str(obj.config)]
    for name, value in obj.overrides.items():
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    return shlex.join(words)


# -- approve / reject / execute -----------------------------------------------------------------


def _plan_and_ropa(store: Any, settings: Settings, plan_id: str, ropa_path: Path | None) -> Any:
    """Return the stored plan and the RoPA as it is now (the plan's own path by default)."""
    from sweeper.ropa import load_ropa

    plan = store.plan(plan_id)
    return plan, load_ropa(ropa_path or Path(plan["ropa_path"]))


@cli.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--by", "by", required=True, help="Who approves (recorded in the audit log).")
@click.option("--note", help="A remark kept with the approval.")
@click.option(
    "--only",
    multiple=True,
    metavar="activity=ID|system=ID",
    help="Approve part of the plan; repeat for more.",
)
@click.option(
    "--ropa", "ropa_path", type=click.Path(path_type=Path), help="RoPA (default: the plan's)."
)
@click.pass_obj
def approve(
    obj: _Context,
    plan_id: str,
    by: str,
    note: str | None,
    only: tuple[str, ...],
    ropa_path: Path | None,
) -> None:
    """Approve a plan (or part of it) for execution, bound to its content hash."""
    from sweeper import approve as approval
    from sweeper.store import Store

    settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        plan, loaded = _plan_and_ropa(store, settings, plan_id, ropa_path)
        found = approval.approve(
            store,
            plan,
            settings,
            by=by,
            note=note,
            only=only,
            now=_now(),
            current_digest=loaded.digest,
            audit=_audit_log(obj, store),
        )
        scope = approval.Scope.parse(only)
    finally:
        store.close()
    approvers = sorted({d.by for d in found if d.decision == "approved"})
    click.echo(
        f"plan {plan['id']} approved by {by} for {scope} "
        f"({len(approvers)} of {settings.approvers_required} approver(s): {', '.join(approvers)})"
    )
    if len(approvers) >= settings.approvers_required:
        click.echo(f"execute it with: sweeper execute {plan['id']}")


@cli.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--by", "by", required=True, help="Who rejects.")
@click.option("--reason", required=True, help="Why.")
@click.pass_obj
def reject(obj: _Context, plan_id: str, by: str, reason: str) -> None:
    """Reject a plan: it can never be executed."""
    from sweeper import approve as approval
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        plan = store.plan(plan_id)
        approval.reject(store, plan, by=by, reason=reason, now=_now(), audit=_audit_log(obj, store))
    finally:
        store.close()
    click.echo(f"plan {plan['id']} rejected by {by}")


@cli.command()
@click.argument("plan_id", metavar="PLAN")
@click.option(
    "--ropa", "ropa_path", type=click.Path(path_type=Path), help="RoPA (default: the plan's)."
)
@click.option("--by", "actor", help="Who runs the execution (default: the login name).")
@click.pass_obj
def execute(obj: _Context, plan_id: str, ropa_path: Path | None, actor: str | None) -> None:
    """Act on the approved items of a plan: delete, anonymise, quarantine, disable or move them.

    Each item is re-verified first (it still exists, is unchanged, is still due, is not held).
    Interrupted? Run the same command again: it finishes the plan without acting twice.
    Exit 1 if an item failed or a location was blocked.
    """
    import getpass

    from sweeper.execute import ExecuteOptions
    from sweeper.execute import execute as run_execution
    from sweeper.store import Store

    settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        plan, loaded = _plan_and_ropa(store, settings, plan_id, ropa_path)
        with (
            _execution_lock(settings, store, f"sweeper execute {plan['id']}"),
            _progress() as progress,
        ):
            result = run_execution(
                loaded,
                settings,
                store,
                plan["id"],
                ExecuteOptions(actor=actor or getpass.getuser(), progress=progress),
            )
    finally:
        store.close()
    table = Table(title=f"plan {result.plan_id}, run {result.run_id}", title_justify="left")
    for col in ("location", "action", "done", "skipped", "failed", "review", "earlier", "outcome"):
        table.add_column(
            col,
            justify="right"
            if col in ("done", "skipped", "failed", "review", "earlier")
            else "left",
        )
    waiting = []
    for loc in result.locations:
        if loc.outcome == "not_approved":
            waiting.append(loc)
            continue
        table.add_row(
            loc.label,
            # A staged delete disables some accounts and deletes others: name what was done.
            ", ".join(f"{a} {n}" for a, n in sorted(loc.acted.items())) or loc.action,
            *(str(loc.counts[k]) for k in ("done", "skipped", "failed", "review", "already")),
            loc.outcome if loc.outcome == "executed" else f"[red]{loc.outcome}[/]",
        )
    console.print(table)
    for loc in result.locations:
        if loc.reason and loc.outcome != "not_approved":
            console.print(f"{_escape(loc.label)}: {loc.outcome}: {_escape(loc.reason)}")
    if waiting:
        console.print(
            f"not approved, so not acted on: {', '.join(_escape(w.label) for w in waiting)}"
        )
    if result.purged:
        console.print(f"{result.purged} quarantined item(s) purged after their restore period")
    if not result.ok:
        sys.exit(1)


@cli.command()
@click.argument("plan_id", metavar="PLAN")
@click.option("--item", "keys", multiple=True, help="Restore only this item (repeat); default all.")
@click.option("--by", "by", required=True, help="Who restores.")
@click.option(
    "--ropa", "ropa_path", type=click.Path(path_type=Path), help="RoPA (default: the plan's)."
)
@click.pass_obj
def restore(
    obj: _Context, plan_id: str, keys: tuple[str, ...], by: str, ropa_path: Path | None
) -> None:
    """Move quarantined files of a plan back, while their restore period lasts."""
    from sweeper.execute import restore as run_restore
    from sweeper.ropa import load_ropa
    from sweeper.store import Store

    settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        plan = store.plan(plan_id)
        loaded = load_ropa(ropa_path or Path(plan["ropa_path"]))
        with _execution_lock(settings, store, f"sweeper restore {plan['id']}"):
            count = run_restore(
                loaded, settings, store, plan["id"], keys=keys or None, by=by, now=_now()
            )
    finally:
        store.close()
    click.echo(f"{count} item(s) of plan {plan['id']} restored")


# -- holds ------------------------------------------------------------------------------------


@cli.group()
def hold() -> None:
    """Legal holds: data under a hold is never changed, whatever a rule says."""


@hold.command("add")
@click.option("--subject", help="Hold everything of one data subject (student or staff number).")
@click.option("--system", "system_id", help="Hold a whole system.")
@click.option(
    "--location",
    help="Hold a location, as plans label it: SYSTEM:TABLE, SYSTEM:PATTERNS, "
    "SYSTEM:BUCKET/PREFIX or SYSTEM:BASE_DN (`sweeper plans` and the reports show it).",
)
@click.option("--item", "item_key", help="With --location: hold one item, by its key.")
@click.option("--reason", required=True, help="Why the data must be kept (e.g. a case number).")
@click.option("--by", "by", required=True, help="Who places the hold.")
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="When the hold ends by itself (default: when released).",
)
@click.pass_obj
def hold_add(
    obj: _Context,
    subject: str | None,
    system_id: str | None,
    location: str | None,
    item_key: str | None,
    reason: str,
    by: str,
    until: datetime | None,
) -> None:
    """Place a legal hold on a subject, an item, a location or a system."""
    from sweeper.holds import HoldInvalid, place
    from sweeper.store import Store

    given = [name for name, v in (("subject", subject), ("system", system_id)) if v]
    if location:
        given.append("item" if item_key else "location")
    elif item_key:
        raise HoldInvalid("--item needs --location: the item's location as plans label it")
    if len(given) != 1:
        raise HoldInvalid(
            "give exactly one of --subject, --system, --location (with --item for one item)"
        )
    settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        placed = place(
            store,
            given[0],  # type: ignore[arg-type]
            reason=reason,
            by=by,
            now=_now(),
            subject=subject,
            system=system_id,
            location=location,
            item_key=item_key,
            until=_local(until),
            subject_pattern=settings.subject_pattern,
            audit=_audit_log(obj, store),
        )
    finally:
        store.close()
    click.echo(f"hold {placed.id} placed on {placed.target}")


@hold.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include released and ended holds.")
@click.pass_obj
def hold_list(obj: _Context, show_all: bool) -> None:
    """List holds (active ones unless --all)."""
    from sweeper.holds import all_holds
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        now = _now()
        table = Table("id", "on", "reason", "placed by", "placed", "until", "state")
        for h in all_holds(store):
            if not show_all and not h.active(now):
                continue
            state = (
                "active"
                if h.active(now)
                else (
                    f"released by {h.released_by}: {h.release_reason}" if h.released_at else "ended"
                )
            )
            table.add_row(
                str(h.id),
                h.target,
                h.reason,
                h.placed_by,
                f"{h.placed_at:%Y-%m-%d %H:%M}",
                f"{h.until:%Y-%m-%d}" if h.until else "",
                state,
            )
        console.print(table)
    finally:
        store.close()


@hold.command("release")
@click.argument("hold_id", metavar="ID", type=int)
@click.option("--by", "by", required=True, help="Who releases the hold.")
@click.option("--reason", required=True, help="Why the data no longer needs to be kept.")
@click.pass_obj
def hold_release(obj: _Context, hold_id: int, by: str, reason: str) -> None:
    """Release a hold; its data falls under the retention rules again."""
    from sweeper.holds import release
    from sweeper.store import Store

    store = Store.open(obj.settings.state_database_url)
    try:
        release(store, hold_id, by=by, reason=reason, now=_now(), audit=_audit_log(obj, store))
    finally:
        store.close()
    click.echo(f"hold {hold_id} released")


def _now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def _local(value: datetime | None) -> datetime | None:
    """A date or time typed on the command line is local time."""
    return value.astimezone() if value is not None else None


@contextmanager
def _execution_lock(settings: Settings, store: Any, command: str) -> Iterator[None]:
    """Hold the execution lock shared with the daemon, saying so while waiting for it."""
    from sweeper.lock import execution_lock

    said: list[str] = []

    def waiting(holder: Any) -> None:
        if not said:
            said.append(str(holder))
            err_console.print(f"waiting for the execution lock, held by {_escape(str(holder))}")

    with execution_lock(settings, store, command, waiting=waiting):
        yield


def _audit_log(obj: _Context, store: Any) -> Any:
    """Return the audit log, for a decision to be recorded in."""
    from sweeper.audit import AuditLog

    return AuditLog.open(obj.settings, store)


# -- demo -------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-estate"),
    show_default=True,
    help="Where to build the demo estate (rebuilt on every run).",
)
def demo(directory: Path) -> None:
    """Build the bundled demo estate (a SQLite SIS and a local share) and dry-run it."""
    from sweeper.demo import build_estate

    ropa_path = build_estate(directory)
    console.print(f"demo estate built in {directory}/ (RoPA: {ropa_path})\n")
    settings = load_settings(None, state_dir=directory / "state")
    result, _ = run_plan(settings, ropa_path)
    program = sys.argv[0] if Path(sys.argv[0]).name == "sweeper" else "sweeper"
    if Path(program).is_absolute() and Path(program).is_relative_to(Path.cwd()):
        program = str(Path(program).relative_to(Path.cwd()))
    state = f"{program} --state-dir {directory / 'state'}"
    click.echo(
        "\nNothing was changed: this was a dry run. To try the rest of the cycle on the demo:\n"
        f"  {state} approve {result.plan_id} --by YOU --only activity=exports\n"
        f"  {state} execute {result.plan_id}\n"
        f"  {state} audit show"
    )
    if not result.complete:
        sys.exit(1)


# -- output helpers ---------------------------------------------------------------------------


class _RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def start(self, label: str, total: int | None = None) -> None:
        self.task = self.progress.add_task(label, total=total)

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, count)

    def finish(self, label: str, outcome: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=f"{label} ({outcome})")
            self.progress.stop_task(self.task)
            self.task = None


@contextmanager
def _progress() -> Iterator[Any]:
    from sweeper.plan import NoProgress

    if not err_console.is_terminal:
        yield NoProgress()
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("items"),
        console=err_console,
        transient=False,
    ) as progress:
        yield _RichProgress(progress)


def _print_plan_summary(store: Any, plan_id: str) -> None:
    from sweeper.report import human_bytes, summary_rows

    plan = store.plan(plan_id)
    table = Table(title=f"plan {plan_id}: items per activity and system", title_justify="left")
    for col in (
        "activity",
        "system",
        "due",
        "not due",
        "no clock",
        "held",
        "locked/protected",
        "bytes due",
        "oldest due",
        "next due",
        "action",
    ):
        table.add_column(
            col,
            justify="right"
            if col in ("due", "not due", "no clock", "held", "locked/protected", "bytes due")
            else "left",
        )
    for row in summary_rows(store, plan_id):
        due = row["due"] + row["legacy_due"]
        table.add_row(
            row["activity"],
            row["system"],
            (f"[bold red]{due}[/]" if due else "0") + (" (legacy)" if row["legacy_due"] else ""),
            str(row["not_due"] + row["waiting_event"]),
            str(row["no_clock"]),
            str(row["held"]),
            str(row["locked"] + row["protected"]),
            human_bytes(row["bytes_due"]),
            (row["oldest_due"] or "")[:10],
            (row["next_due"] or "")[:10],
            row["action"] if not row["failed"] else f"[red]failed[/]: {_escape(row['failed'])}",
        )
    console.print(table)
    legacy = plan["summary"].get("legacy_systems", [])
    if legacy:
        lt = Table(
            title="legacy systems (decommissioned but still holding data?)", title_justify="left"
        )
        for col in (
            "system",
            "decommissioned",
            "days since",
            "reachable",
            "items",
            "bytes",
            "subjects",
        ):
            lt.add_column(col)
        for sys_row in legacy:
            lt.add_row(
                sys_row["system"],
                sys_row["decommissioned_on"],
                str(sys_row["days_since"]),
                "[bold red]yes[/]" if sys_row["reachable"] else "no",
                str(sys_row["items"]),
                human_bytes(sys_row["bytes"]),
                str(sys_row["subjects"]),
            )
        console.print(lt)
    findings = plan["summary"].get("findings", 0)
    if findings:
        console.print(
            f"{findings} finding(s) during the scan (unreadable folders, links out of "
            "a share): see the report's 'findings'"
        )


def _safe_url(settings: Settings) -> str:
    from sqlalchemy import make_url

    return make_url(settings.state_database_url).render_as_string(hide_password=True)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _register_groups() -> None:
    from sweeper.cli_audit import audit
    from sweeper.cli_discover import discover
    from sweeper.cli_export import export
    from sweeper.cli_ropa import ropa

    cli.add_command(audit)
    cli.add_command(discover)
    cli.add_command(export)
    cli.add_command(ropa)

    from sweeper.cli_daemon import _register as register_daemon_commands

    register_daemon_commands(cli)


_register_groups()


def main() -> None:
    """Entry point of the console script: user errors become messages and exit codes."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except RopaInvalid as err:
        _print_problems(err.problems, "text")
        sys.exit(err.exit_code)
    except SweeperError as err:
        err_console.print(f"[red]error[/]: {_escape(str(err))}")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
