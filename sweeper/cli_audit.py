"""``sweeper audit``: verify the audit log, show and export its records, answer for a subject,
and prune it past its retention.

Register it with ``cli.add_command(audit)``. Reading commands change nothing; ``prune`` is a
dry run unless given ``--execute``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO, TypeVar

import click

if TYPE_CHECKING:  # imported when a command runs: `sweeper --help` needs no SQLAlchemy
    from sweeper.audit import AuditLog
    from sweeper.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

CSV_COLUMNS = (
    "seq",
    "at",
    "event",
    "actor",
    "plan_id",
    "subject_ref",
    "activity",
    "system",
    "location",
    "action",
    "rule",
    "reason",
    "approved_by",
    "details",
    "hash",
    "prev",
)
_DETAIL_COLUMNS = ("activity", "system", "location", "action", "rule", "reason", "approved_by")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _HasSettings(Protocol):
    @property
    def settings(self) -> Settings: ...


def _moment(value: str | None, *, end_of_day: bool) -> datetime | None:
    """Given a date or a date and time, local unless it says Z or an offset, return it. A date
    alone is the start of that day, or with end_of_day the start of the next (so that
    --until 2024-05-01 includes the 1st). Raise click.BadParameter if it is neither."""
    if value is None:
        return None
    text = value.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        moment = datetime.combine(day, time()).astimezone()
        return moment + timedelta(days=1) if end_of_day else moment
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date (2024-05-01) or a time (2024-05-01T14:30)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    return _moment(value, end_of_day=False)


def _until(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    return _moment(value, end_of_day=True)


@contextmanager
def _opened(obj: _HasSettings) -> Iterator[AuditLog]:
    from sweeper.audit import AuditLog
    from sweeper.store import Store

    settings = obj.settings
    store = Store.open(settings.state_database_url)
    try:
        yield AuditLog.open(settings, store)
    finally:
        store.close()


def _filters(function: F) -> F:
    options = [
        click.option("--plan", "plan_id", metavar="PLAN", help="A plan id, or a prefix of one."),
        click.option(
            "--subject",
            metavar="ID",
            help="A subject id (student or staff number); matched by its pseudonym.",
        ),
        click.option(
            "--event",
            "events",
            multiple=True,
            metavar="EVENT",
            help="An event (item_done), or a prefix ending in * (item_*); repeat for more.",
        ),
        click.option(
            "--since",
            metavar="DATE",
            callback=_since,
            help="Records at or after this date or time (local time unless it ends in Z).",
        ),
        click.option(
            "--until",
            metavar="DATE",
            callback=_until,
            help="Records before this time, or up to the end of this date.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.group()
def audit() -> None:
    """The audit log: verify it, show and export records, find a subject, prune it."""


@audit.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_obj
def verify(obj: _HasSettings, fmt: str) -> None:
    """Check the whole hash chain and the state store's head.

    Exit 0 if the log is whole; 1 naming the first bad record (edited, deleted, reordered,
    truncated, …); 2 if the log is keyed and the key is not configured.
    """
    with _opened(obj) as log:
        result = log.verify()
    if fmt == "json":
        click.echo(json.dumps(dataclasses.asdict(result)))
    else:
        click.echo(str(result), err=not result.ok)
    if not result.ok:
        sys.exit(1)


@audit.command()
@_filters
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per record; json: an array of the records as stored.",
)
@click.pass_obj
def show(
    obj: _HasSettings,
    plan_id: str | None,
    subject: str | None,
    events: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    fmt: str,
) -> None:
    """Show records, oldest first, filtered by plan, subject, event and time.

    Show does not verify the chain: run `sweeper audit verify` for that.
    """
    with _opened(obj) as log:
        records = log.records(
            plan_id=plan_id, subject=subject, event=events or None, since=since, until=until
        )
        if fmt == "text":
            for record in records:
                click.echo(_text_line(record))
            return
        # A JSON array, written as it is read: the log may be larger than memory.
        separator = "[\n"
        for record in records:
            click.echo(separator + json.dumps(record, sort_keys=True), nl=False)
            separator = ",\n"
        click.echo("[]" if separator == "[\n" else "\n]")


@audit.command()
@_filters
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="csv for spreadsheets; jsonl: one JSON object per line, as stored.",
)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="File (default: stdout)"
)
@click.pass_obj
def export(
    obj: _HasSettings,
    plan_id: str | None,
    subject: str | None,
    events: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Export records for a spreadsheet (CSV) or another tool (JSON lines), with the same
    filters as show.

    The CSV has the common details (activity, system, rule, action, approved by, …) in their
    own columns and all of them, as JSON, in 'details'. Cells that a spreadsheet would run as
    a formula are prefixed with a quote.
    """
    with _opened(obj) as log:
        records = log.records(
            plan_id=plan_id, subject=subject, event=events or None, since=since, until=until
        )
        if output is None:
            count = _export(records, fmt, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as handle:
                count = _export(records, fmt, handle)
            click.echo(f"{count} record(s) written to {output}", err=True)


def _export(records: Iterator[dict[str, Any]], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
            count += 1
        return count
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        details = record["details"]
        row: dict[str, Any] = {
            **{k: record[k] for k in ("seq", "at", "event", "actor", "plan_id", "subject_ref")},
            **{k: _cell(details.get(k)) for k in _DETAIL_COLUMNS},
            "details": json.dumps(details, sort_keys=True, ensure_ascii=False),
            "hash": record["hash"],
            "prev": record["prev"],
        }
        writer.writerow([_safe_cell(row[c]) for c in CSV_COLUMNS])
        count += 1
    return count


@audit.command("find-subject")
@click.argument("subject", metavar="ID")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_obj
def find_subject(obj: _HasSettings, subject: str, fmt: str) -> None:
    """What happened to one data subject's data: each event with its time, plan, rule,
    action and who approved it.

    The log holds only a keyed pseudonym of each subject; this computes it from ID.
    """
    with _opened(obj) as log:
        rows = log.find_subject(subject)
        ref = log.subject_ref(subject) if rows else None
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(
            "no records about this subject in the audit log (records older than the audit "
            "retention are pruned)"
        )
        return
    click.echo(f"subject {subject}: pseudonym {ref} in the audit log, {len(rows)} record(s)")
    for row in rows:
        click.echo(f"\n{_when(row['at'])}  {row['event']}  by {row['actor']}")
        for label, key in (
            ("plan", "plan_id"),
            ("activity", "activity"),
            ("system", "system"),
            ("location", "location"),
            ("rule", "rule"),
            ("action", "action"),
            ("reason", "reason"),
        ):
            if row[key]:
                click.echo(f"    {label + ':':<13}{row[key]}")
        if row["event"].startswith("item_") or row["approved_by"]:
            approvers = ", ".join(row["approved_by"]) or "no approval recorded"
            click.echo(f"    {'approved by:':<13}{approvers}")


@audit.command()
@click.option("--execute", is_flag=True, help="Remove the segments (default: only list them).")
@click.option("--by", "by", help="Who prunes (recorded in the audit log; default: you).")
@click.pass_obj
def prune(obj: _HasSettings, execute: bool, by: str | None) -> None:
    """Remove whole segments whose last record is older than the audit retention.

    The removal is itself recorded, and what remains still verifies. A log that does not
    verify is not pruned. Without --execute, only lists what would be removed.
    """
    now = datetime.now(UTC)
    with _opened(obj) as log:
        retention = log.retention
        if not execute:
            paths = log.prunable(now)
            for path in paths:
                click.echo(f"would remove {path}")
            click.echo(
                f"{len(paths)} segment(s) older than the audit retention ({retention}); "
                + ("remove them with --execute" if paths else "nothing to remove")
            )
            return
        from sweeper.audit import default_actor

        removed = log.prune(now, actor=by or default_actor())
    for path in removed:
        click.echo(f"removed {path}")
    click.echo(f"{len(removed)} segment(s) older than the audit retention ({retention}) removed")


def _text_line(record: dict[str, Any]) -> str:
    details = " ".join(
        f"{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for k, v in record["details"].items()
    )
    return (
        f"{record['seq']:>7}  {_when(record['at'])}  {record['event']:<18} "
        f"{record['actor']:<12} plan={record['plan_id'] or '-'} "
        f"subject={record['subject_ref'] or '-'}  {details}"
    ).rstrip()


def _when(at: str) -> str:
    return at[:10] + " " + at[11:19] + "Z"


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def _safe_cell(value: Any) -> Any:
    """Return value, with a quote before text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return "" if value is None else value
