"""``sweeper export s3-lifecycle``: the S3 lifecycle configuration that enforces the RoPA's
rules for a bucket system inside the store itself, for buckets too large to list.

Register it with ``cli.add_command(export)``. It changes nothing: it writes JSON that a
sysadmin applies with ``aws s3api put-bucket-lifecycle-configuration``, and lists every rule
that a lifecycle rule cannot express, with the reason.

What a lifecycle rule can express: a location whose clock is ``modified`` (or ``created``,
which S3 counts from the current version's creation: never earlier), selected by a prefix
(no ``key_regex``, or one that is a plain prefix), with action ``delete``, and not under a
hold. Each becomes a rule with ``Expiration`` and ``NoncurrentVersionExpiration`` after the
period, plus a rule removing expired delete markers and unfinished multipart uploads. The
period becomes whole days, the most days it can last (``P1Y`` is 366 days, ``P1M`` 31), so the
store never deletes before the RoPA allows. Where two rules of a bucket overlap, S3 applies
the earliest expiration, so the shorter one is left out and reported.

What it cannot express: event clocks (the store does not know when a student left), dates in
the key, a tag or metadata, key patterns that are not prefixes, actions other than delete,
and holds (a lifecycle rule would delete held data).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

FORMAT = "ropa-sweeper/s3-lifecycle/1"
_MULTIPART_DAYS = 7


@dataclass(frozen=True)
class Unexpressible:
    activity: str
    location: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"activity": self.activity, "location": self.location, "reason": self.reason}


def literal_prefix(regex: str) -> str | None:
    """Given a key regex, return the prefix it stands for when it matches exactly the keys
    that start with a fixed text (``^exams/2024/``, ``^a\\.b/.*``), else None."""
    match = re.fullmatch(r"(?:\^|\\A)((?:\\[^A-Za-z0-9]|[^\\.^$*+?{}\[\]|()])*)(?:\.\*)?", regex)
    if match is None:
        return None
    return re.sub(r"\\(.)", r"\1", match.group(1))


def lifecycle_days(period: Any, grace: Any) -> int:
    """Given a period and a grace, return the most whole days they can last from any start
    (over a four-year cycle, leap day included), so that a lifecycle rule never expires an
    object before its due date."""
    from sweeper.retention import due_date

    start = datetime(2024, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    return max(
        math.ceil((due_date(start + n * day, period, grace) - (start + n * day)) / day)
        for n in range(1461)
    )


def lifecycle(ropa: Any, system_id: str, holds: Any) -> dict[str, Any]:
    """Given a RoPA, a bucket system's id and the active holds, return the export document:
    per bucket its ``LifecycleConfiguration``, and the rules that cannot be expressed."""
    from sweeper.plan import targets_of
    from sweeper.ropa.model import BucketLocation

    buckets: dict[str, list[tuple[str, int, str, str]]] = {}  # prefix, days, id, label
    unexpressible: list[Unexpressible] = []
    for target in targets_of(ropa):
        location = target.location
        if target.system.id != system_id or not isinstance(location, BucketLocation):
            continue
        label, activity = location.label, target.activity.id
        reason = _why_not(target, location, holds)
        if reason is not None:
            unexpressible.append(Unexpressible(activity, label, reason))
            continue
        prefix = location.prefix
        if location.key_regex is not None:
            regex_prefix = literal_prefix(location.key_regex) or ""
            if not regex_prefix.startswith(prefix) and not prefix.startswith(regex_prefix):
                unexpressible.append(Unexpressible(activity, label, "matches no key"))
                continue
            prefix = max(prefix, regex_prefix, key=len)
        days = lifecycle_days(target.rule.period, target.rule.grace)
        rule_id = f"ropa-sweeper {activity} {target.idx}"[:255]
        buckets.setdefault(location.bucket, []).append((prefix, days, rule_id, label))
    configurations = {}
    for bucket, rules in buckets.items():
        kept = []
        for prefix, days, rule_id, label in rules:
            longer = [
                other
                for other in rules
                if other[1] > days and (other[0].startswith(prefix) or prefix.startswith(other[0]))
            ]
            if longer:
                unexpressible.append(
                    Unexpressible(
                        rule_id.split(" ")[1],
                        label,
                        f"overlaps the longer rule of {longer[0][3]} ({longer[0][1]} days): S3 "
                        "applies the earliest expiration, so this rule is left out",
                    )
                )
                continue
            kept.append((prefix, days, rule_id))
        configurations[bucket] = {"Rules": _rules(kept)}
    return {
        "format": FORMAT,
        "system": system_id,
        "buckets": configurations,
        "unexpressible": [u.as_dict() for u in unexpressible],
    }


def _why_not(target: Any, location: Any, holds: Any) -> str | None:
    """Return why a location's rule cannot be a lifecycle rule, or None if it can."""
    from sweeper.ropa.model import EventClock, PathDateClock

    clock = target.clock
    if isinstance(clock, EventClock):
        return (
            f"the clock is event {clock.event!r}: the store cannot know when it happened; "
            "keep the sweeper's plan and execution for this rule"
        )
    if isinstance(clock, PathDateClock):
        return "the clock is a date in the key: lifecycle rules count from the object's creation"
    if not isinstance(clock, str):
        return "the clock is a tag or metadata date: lifecycle rules count from creation"
    if clock not in ("modified", "mtime", "created"):
        return f"clock {clock!r} is not one S3 records"
    if target.rule.action.value != "delete":
        return f"action {target.rule.action.value!r}: a lifecycle rule can only delete"
    if location.key_regex is not None and literal_prefix(location.key_regex) is None:
        return f"key_regex {location.key_regex!r} is not a plain prefix"
    hold = holds.location_hold(target.system.id, location.label)
    if hold is not None:
        return f"under {hold.explain()}: a lifecycle rule would delete held data"
    if holds.subjects and location.key_regex and location.subject_group in location.regex_groups:
        return (
            f"{len(holds.subjects)} subject hold(s) are active and this location has subjects: "
            "a lifecycle rule would delete held data"
        )
    if holds.items and any(loc == location.label for loc, _ in holds.items):
        return "items in this location are held: a lifecycle rule would delete held data"
    return None


def _rules(kept: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for prefix, days, rule_id in kept:
        rules.append(
            {
                "ID": rule_id,
                "Filter": {"Prefix": prefix},
                "Status": "Enabled",
                "Expiration": {"Days": days},
                "NoncurrentVersionExpiration": {"NoncurrentDays": days},
            }
        )
        rules.append(
            {
                "ID": f"{rule_id} markers"[:255],
                "Filter": {"Prefix": prefix},
                "Status": "Enabled",
                "Expiration": {"ExpiredObjectDeleteMarker": True},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": _MULTIPART_DAYS},
            }
        )
    return rules


@click.group()
def export() -> None:
    """Export the RoPA's rules for a system to enforce them itself."""


@export.command("s3-lifecycle")
@click.option("--ropa", "ropa_path", type=click.Path(path_type=Path), help="RoPA file or folder.")
@click.option("--system", "system_id", required=True, help="The bucket system's id.")
@click.option("--bucket", help="Write only this bucket's LifecycleConfiguration.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="File (default: stdout)"
)
@click.pass_obj
def s3_lifecycle(
    obj: Any, ropa_path: Path | None, system_id: str, bucket: str | None, output: Path | None
) -> None:
    """Write the S3 lifecycle configuration for a bucket system's rules (changes nothing).

    Rules a lifecycle cannot express (event clocks, dates in keys, tags, holds, patterns that
    are not prefixes) are listed on standard error and in the document's 'unexpressible'.
    Lifecycle rules act without a plan, an approval or the audit log: apply them only for
    buckets too large for the sweeper to list.
    """
    from sweeper.errors import SweeperError
    from sweeper.holds import HoldIndex
    from sweeper.ropa import load_ropa
    from sweeper.ropa.model import BucketSystem
    from sweeper.store import Store

    settings = obj.settings
    path = ropa_path or settings.ropa
    if path is None:
        raise SweeperError("no RoPA given: use --ropa PATH or set 'ropa' in the settings")
    loaded = load_ropa(path)
    system = loaded.ropa.system(system_id)
    if not isinstance(system, BucketSystem):
        buckets = [s.id for s in loaded.ropa.systems if isinstance(s, BucketSystem)]
        raise click.UsageError(
            f"--system {system_id!r} is not a bucket system of the RoPA "
            f"(bucket systems: {', '.join(buckets) or 'none'})"
        )
    store = Store.open(settings.state_database_url)
    try:
        holds = HoldIndex.load(store, datetime.now(UTC))
    finally:
        store.close()
    document = lifecycle(loaded.ropa, system_id, holds)
    if bucket is not None:
        if bucket not in document["buckets"]:
            raise click.UsageError(
                f"--bucket {bucket!r} has no rule that can be expressed "
                f"(buckets with rules: {', '.join(document['buckets']) or 'none'})"
            )
        payload: Any = document["buckets"][bucket]
    else:
        payload = document
    text = json.dumps(payload, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"written: {output}", err=True)
    for entry in document["unexpressible"]:
        click.echo(
            f"not expressible: {entry['activity']} {entry['location']}: {entry['reason']}",
            err=True,
        )
