"""``sweeper daemon``, ``sweeper run --once JOB``, ``sweeper status`` and ``sweeper config``.

Register them with ``_register(cli)``; see ``sweeper.daemon`` for what the jobs do.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # imported when a command runs: `sweeper --help` stays fast
    from sweeper.settings import Settings

JOB_CHOICE = click.Choice(["plan", "execute", "discover", "prune"])


def _root(ctx: click.Context) -> Any:
    """The root context's object (settings sources) and its logging options."""
    return ctx.find_root()


def _daemon_logging(ctx: click.Context) -> None:
    """Log job starts and ends (info) unless asked for more; JSON unless on a terminal."""
    from sweeper import logging as sweeper_logging

    params = _root(ctx).params
    fmt = params.get("log_format", "auto")
    sweeper_logging.configure(
        max(1, params.get("verbose", 0)), None if fmt == "auto" else fmt == "json"
    )


_ropa_option = click.option(
    "--ropa",
    "ropa_path",
    type=click.Path(path_type=Path),
    help="RoPA file or folder (default: the 'ropa' setting).",
)


@click.command()
@_ropa_option
@click.pass_context
def daemon(ctx: click.Context, ropa_path: Path | None) -> None:
    """Run the jobs of the timetable (setting 'schedule') until stopped; for systemd.

    Everything is loaded and checked first (settings, RoPA, timetable, state directory,
    credentials); any problem stops it with exit 2 before it signals READY. SIGTERM finishes
    the batch in hand and exits 0; SIGHUP reloads settings and RoPA (an invalid new one is
    logged and the old one stays in force).
    """
    from sweeper.daemon import Daemon

    _daemon_logging(ctx)
    obj = ctx.obj
    runner = Daemon(obj.config, obj.overrides, ropa_path)
    runner.start()
    sys.exit(runner.run())


@click.command()
@click.argument("job", type=JOB_CHOICE)
@click.option("--once", is_flag=True, help="Run the job once and exit (for sweeper.timer).")
@_ropa_option
@click.pass_context
def run(ctx: click.Context, job: str, once: bool, ropa_path: Path | None) -> None:
    """Run one job of the daemon now, as the daemon would, and exit.

    Exit 0 if it succeeded, 1 if it failed or was stopped, 75 if the execution lock is held
    (with lock.on_busy refuse, or past lock.wait_timeout).
    """
    import os
    import signal
    import threading

    from sweeper.daemon import Runtime, load_everything, run_recorded
    from sweeper.metrics import MetricsPublisher

    if not once:
        raise click.UsageError(
            "sweeper run needs --once: it runs one job and exits (the long-running form is "
            "sweeper daemon)"
        )
    _daemon_logging(ctx)
    obj = ctx.obj
    settings, loaded = load_everything(obj.config, obj.overrides, ropa_path)
    stop = threading.Event()

    def on_stop(_signum: int, _frame: Any) -> None:
        stop.set()

    os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    signal.signal(signal.SIGTERM, on_stop)
    outcome = run_recorded(Runtime(settings, loaded, stop), job, "once")
    MetricsPublisher(settings, serve=False).publish()
    click.echo(f"{job}: {outcome.result}: {outcome.message}")
    if outcome.result == "busy":
        sys.exit(75)
    if outcome.result != "ok":
        sys.exit(1)


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_obj
def status(obj: Any, fmt: str) -> None:
    """What the sweeper did and will do: last and next runs, plans awaiting approval, holds,
    legacy systems, who holds the execution lock, and the coverage of the latest discovery runs
    with its trend. Works whether the daemon runs or not."""
    from sweeper.coverage import coverage_history
    from sweeper.store import Store

    settings: Settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        history = coverage_history(store, settings.discovery.trend_runs)
        report = _status(settings, store, history)
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, default=str))
        return
    _print_status(report)
    _print_coverage_status(history)


def _status(settings: Settings, store: Any, trend: list[Any]) -> dict[str, Any]:
    """The status as data; ``trend`` is the coverage of the latest discovery runs."""
    from sweeper.approve import decisions
    from sweeper.coverage import change
    from sweeper.holds import all_holds
    from sweeper.lock import current_holder
    from sweeper.metrics import last_runs, latest_full_plan

    now = datetime.now(UTC)
    runs = last_runs(store)
    latest = latest_full_plan(store)
    awaiting = []
    for p in store.plans(200):
        totals = p["summary"].get("totals", {})
        due = totals.get("due", 0) + totals.get("legacy_due", 0)
        expired = settings.plan_max_age.add_to(p["created_at"]) <= now
        if p["state"] != "ready" or expired or not due or "activities" in p["summary"]:
            continue
        if not decisions(store, p["id"]):
            awaiting.append(
                {
                    "plan": p["id"],
                    "created_at": p["created_at"],
                    "due": due,
                    "held": totals.get("held", 0),
                }
            )
    holder = current_holder(settings, store)
    return {
        "last_runs": [
            {
                "job": job,
                "started_at": r["started_at"],
                "seconds": (r["finished_at"] - r["started_at"]).total_seconds()
                if r["finished_at"]
                else None,
                "result": r["result"],
                "trigger": r["trigger"],
                "message": r["message"],
            }
            for job, r in runs.items()
        ],
        "next_runs": _next_runs(settings, store, now),
        "awaiting_approval": awaiting,
        "holds": [
            {"id": h.id, "on": h.target, "reason": h.reason, "by": h.placed_by, "until": h.until}
            for h in all_holds(store)
            if h.active(now)
        ],
        "latest_plan": latest["id"] if latest else None,
        "legacy_systems": latest["summary"].get("legacy_systems", []) if latest else [],
        "lock": str(holder) if holder else None,
        "coverage": trend[-1].as_dict() if trend else None,
        "coverage_change": change(trend),
        "coverage_trend": [
            {
                "run_id": c.run_id,
                "at": c.at,
                "complete": c.complete,
                **c.shares(),
                "legacy_systems_with_data": c.legacy_systems_with_data,
                "uninspectable": c.uninspectable,
            }
            for c in trend
        ],
    }


def _next_runs(settings: Settings, store: Any, now: datetime) -> list[dict[str, Any]]:
    """When each job runs next: as a running daemon recorded it, or else as the timetable in
    the settings places it from now (``daemon`` is then null)."""
    import socket
    from zoneinfo import ZoneInfo

    import sqlalchemy as sa

    from sweeper.store import daemon_schedule

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(daemon_schedule).order_by(daemon_schedule.c.job)).mappings()
        recorded = [dict(r) for r in rows]
    host = socket.gethostname()
    alive = [r for r in recorded if r["host"] != host or Path(f"/proc/{r['pid']}").exists()]
    if alive:
        return [
            {
                "job": r["job"],
                "timing": r["timing"],
                "next": r["next_at"],
                "daemon": f"pid {r['pid']} on {r['host']}",
            }
            for r in alive
        ]
    tz = ZoneInfo(settings.schedule.timezone or _ropa_timezone(settings) or "UTC")
    found = []
    for job in ("plan", "execute", "discover", "prune"):
        timing = getattr(settings.schedule, job)
        found.append(
            {
                "job": job,
                "timing": str(timing),
                "next": None if timing.never else timing.next_after(now, tz),
                "daemon": None,
            }
        )
    return found


def _ropa_timezone(settings: Settings) -> str | None:
    from sweeper.errors import SweeperError
    from sweeper.ropa import load_ropa

    if settings.ropa is None:
        return None
    try:
        return load_ropa(settings.ropa).ropa.timezone
    except SweeperError:
        return None


def _print_status(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape as _escape
    from rich.table import Table

    console = Console(highlight=False)
    runs = Table(
        "job",
        "started",
        "took",
        "result",
        "trigger",
        "message",
        title="last runs",
        title_justify="left",
    )
    for r in report["last_runs"]:
        runs.add_row(
            r["job"],
            f"{r['started_at']:%Y-%m-%d %H:%M:%S}Z",
            f"{r['seconds']:.1f} s" if r["seconds"] is not None else "-",
            r["result"] if r["result"] == "ok" else f"[red]{r['result']}[/]",
            r["trigger"],
            _escape(r["message"] or ""),
        )
    if not report["last_runs"]:
        runs.add_row("-", "never", "", "", "", "no job has run yet")
    console.print(runs)
    daemons = sorted({n["daemon"] for n in report["next_runs"] if n["daemon"]})
    title = (
        f"next runs (daemon: {', '.join(daemons)})"
        if daemons
        else "next runs (no daemon running: as the timetable places them from now)"
    )
    nexts = Table("job", "timetable", "next run", title=title, title_justify="left")
    for n in report["next_runs"]:
        nexts.add_row(
            n["job"], n["timing"], f"{n['next']:%Y-%m-%d %H:%M:%S}Z" if n["next"] else "-"
        )
    console.print(nexts)
    waiting = Table(
        "plan", "created", "due", "held", title="plans awaiting approval", title_justify="left"
    )
    for w in report["awaiting_approval"]:
        waiting.add_row(
            w["plan"], f"{w['created_at']:%Y-%m-%d %H:%M}Z", str(w["due"]), str(w["held"])
        )
    console.print(waiting if report["awaiting_approval"] else "no plan awaits approval")
    if report["holds"]:
        holds = Table(
            "id", "on", "reason", "by", "until", title="holds in force", title_justify="left"
        )
        for h in report["holds"]:
            holds.add_row(
                str(h["id"]),
                _escape(h["on"]),
                _escape(h["reason"]),
                h["by"],
                f"{h['until']:%Y-%m-%d}" if h["until"] else "",
            )
        console.print(holds)
    else:
        console.print("no hold in force")
    legacy = report["legacy_systems"]
    if legacy:
        table = Table(
            "system",
            "decommissioned",
            "days since",
            "reachable",
            "items",
            "subjects",
            title=f"legacy systems (plan {report['latest_plan']})",
            title_justify="left",
        )
        for s in legacy:
            table.add_row(
                s["system"],
                s["decommissioned_on"],
                str(s["days_since"]),
                "[bold red]yes[/]" if s["reachable"] else "no",
                str(s["items"]),
                str(s["subjects"]),
            )
        console.print(table)
    console.print(
        f"execution lock: held by {report['lock']}" if report["lock"] else "execution lock: free"
    )


def _print_coverage_status(history: list[Any]) -> None:
    """The coverage of the latest discovery runs, as `sweeper discover runs` prints it."""
    from sweeper.cli import console
    from sweeper.cli_discover import _print_coverage

    if not history:
        console.print("coverage: discovery has not run yet (sweeper discover, or the discover job)")
        return
    _print_coverage(history)


# -- config -------------------------------------------------------------------------------------


@click.group()
def config() -> None:
    """The settings file."""


@config.command()
def example() -> None:
    """Print an example settings file with every setting, its default and description,
    generated from the settings model (deploy/sweeper.yaml is this output)."""
    click.echo(example_settings(), nl=False)


def example_settings() -> str:
    """Return the example settings file: every setting, commented out at its default."""
    from sweeper.settings import Settings

    lines = [
        "# ropa-sweeper settings: /etc/ropa-sweeper/sweeper.yaml (or --config, $SWEEPER_CONFIG).",
        "# Generated by `sweeper config example` from the settings model; every setting is shown",
        "# at its default, commented out. Environment variables override this file:",
        "# SWEEPER_<NAME>, nested as SWEEPER_<SECTION>__<NAME> (SWEEPER_SCHEDULE__PLAN).",
        "# Secrets never go here: each credential is a file in $CREDENTIALS_DIRECTORY",
        "# (systemd's LoadCredential=), named as the RoPA's connection.credential names it.",
        "",
    ]
    lines += _model_lines(Settings, 0)
    return "\n".join(lines) + "\n"


def _model_lines(model: Any, depth: int) -> Iterator[str]:
    from pydantic import BaseModel

    indent = "  " * depth
    for name, info in model.model_fields.items():
        annotation = info.annotation
        for part in _wrap(info.description or "", 96 - len(indent)):
            yield f"{indent}# {part}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield f"{indent}# {name}:"
            yield from _model_lines(annotation, depth + 1)
            continue
        yield f"{indent}# {name}: {_default_text(name, info)}"
        yield ""


# Defaults that depend on the machine, shown as they are under sweeper.service.
_SYSTEMD_DEFAULTS = {
    "state_dir": "/var/lib/ropa-sweeper",
    "credentials_dir": "/run/credentials/sweeper.service",
}


def _default_text(name: str, info: Any) -> str:
    if name in _SYSTEMD_DEFAULTS:
        return _SYSTEMD_DEFAULTS[name]
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    return json.dumps(text) if any(c in text for c in ":#{}[]'\"") or text != text.strip() else text


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def _register(cli: click.Group) -> None:
    for command in (daemon, run, status, config):
        cli.add_command(command)
