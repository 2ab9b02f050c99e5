"""The privacy officer's report of a plan: one self-contained HTML file.

Everything is inline: the CSS, the charts (SVG computed here) and a small script that sorts
and filters the tables. A Content-Security-Policy allows that script and style only (by their
hashes) and nothing from anywhere else, so the file opens offline, can be mailed, and no value
from a scanned system (a file name, a reason) can run as code; Jinja2 escapes every value.

The items are streamed from the state store once, in bounded memory: per location the page
lists at most ``items_per_location`` items (held, locked, protected and unreadable ones first,
then the most overdue) and says how many more the CSV and XLSX reports hold. The charts count
every item.

The coverage section comes from the discovery runs in the state store that started before the
plan was made (``sweeper.coverage``): the latest run's shares, their trend over the runs
before it, and that run's highest-scoring findings.
"""

from __future__ import annotations

import base64
import hashlib
import math
import shlex
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from sweeper.report import location_rows, summary_rows
from sweeper.report_i18n import Language, texts
from sweeper.retention import Period
from sweeper.store import Store

if TYPE_CHECKING:
    from sweeper.settings import Settings

OVERDUE = ("due", "legacy_due")
EXPLAINED = ("held", "locked", "protected", "no_clock")
STATUSES = (*OVERDUE, *EXPLAINED, "not_due", "waiting_event")
_PRIORITY = {"held": 0, "locked": 1, "protected": 2, "no_clock": 3, "legacy_due": 4, "due": 4}
AGE_BOUNDS = (31, 92, 366, 731, 1827)  # days: < 1 month, 3 months, 1, 2, 5 years
COLOURS = {
    "due": "#b03a2e",
    "legacy_due": "#7d3c98",
    "held": "#1f618d",
    "locked": "#7b7d7d",
    "protected": "#a6acaf",
    "no_clock": "#b7950b",
}
SERIES = ("#7d3c98", "#b03a2e", "#1f618d", "#117864", "#b7950b", "#5d6d7e")


@dataclass(frozen=True)
class ReportOptions:
    """How to render the report.

    Args:
        language: ``en`` or ``nl``.
        timezone: the IANA timezone dates are shown in.
        items_per_location: most items listed per location.
        approvers_required: distinct approvers the plan needs (from the settings).
        plan_max_age: how long a plan can be approved and executed (from the settings).
        program: how the approve command is spelt (``sweeper``, or with --state-dir).
        full_reports: the file names that list every item, for the "not shown" remark.
        coverage_runs: discovery runs in the coverage trend (the discovery.trend_runs setting).
        coverage_findings: findings of the latest discovery run listed.
        now: when the report is made.
    """

    language: Language = "en"
    timezone: str = "Europe/Amsterdam"
    items_per_location: int = 500
    approvers_required: int = 1
    plan_max_age: Period | None = None
    program: str = "sweeper"
    full_reports: tuple[str, ...] = ()
    coverage_runs: int = 10
    coverage_findings: int = 10
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings, plan_id: str, **given: Any) -> ReportOptions:
        """Return the options the settings give for a plan's report, overridden by ``given``
        (``language``, ``program``, …)."""
        values: dict[str, Any] = {
            "language": settings.report_language,
            "timezone": settings.report_timezone,
            "items_per_location": settings.report_items_per_location,
            "approvers_required": settings.approvers_required,
            "plan_max_age": settings.plan_max_age,
            "full_reports": (f"plan-{plan_id}.csv", f"plan-{plan_id}.xlsx"),
            "coverage_runs": settings.discovery.trend_runs,
        }
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)


@dataclass
class _Location:
    row: dict[str, Any]
    listed: int = 0
    items: list[tuple[Any, ...]] = field(default_factory=list)  # (sort key, item row)


def _keep_first(location: _Location, limit: int) -> None:
    location.items.sort(key=lambda pair: pair[0])
    del location.items[limit:]


def collect(store: Store, plan_id: str, limit: int) -> tuple[dict[int, _Location], Counter[int]]:
    """Stream the plan's items once; return per location the items to list (at most
    ``limit``, the most important first) and the overdue items per age bucket."""
    plan = store.plan(plan_id)
    clock: datetime = plan["clock"]
    locations = {row["idx"]: _Location(row) for row in location_rows(store, plan["id"])}
    ages: Counter[int] = Counter()
    for row in store.item_rows(plan["id"]):
        seq, idx, _key, _subject, _clock, due, status = row[:7]
        location = locations[idx]
        location.listed += 1
        if status in OVERDUE and due is not None:
            days = (clock - datetime.fromisoformat(due)).days
            ages[sum(1 for bound in AGE_BOUNDS if days >= bound)] += 1
        if limit == 0:
            continue
        location.items.append(((_PRIORITY.get(status, 9), due or "~", seq), row))
        if len(location.items) >= 2 * limit:
            _keep_first(location, limit)
    for location in locations.values():
        _keep_first(location, limit)
    return locations, ages


class _Formats:
    """Numbers, sizes and dates as the report's language writes them."""

    def __init__(self, language: Language, tz: ZoneInfo) -> None:
        self.language = language
        self.tz = tz

    def number(self, value: int) -> str:
        text = f"{value:,}"
        return text.replace(",", ".") if self.language == "nl" else text

    def size(self, size: int | None) -> str:
        if size is None:
            return ""
        value = float(size)
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if value < 1024 or unit == "TiB":
                text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
                return text.replace(".", ",") if self.language == "nl" else text
            value /= 1024
        return f"{size} B"

    def local(self, value: str | datetime | None) -> datetime | None:
        if value is None or value == "":
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(self.tz)

    def date(self, value: str | datetime | None) -> str:
        moment = self.local(value)
        return f"{moment:%Y-%m-%d}" if moment else ""

    def time(self, value: str | datetime | None) -> str:
        moment = self.local(value)
        return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


# -- charts ------------------------------------------------------------------------------------


def _svg(width: int, height: int, label: str, body: Iterable[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, Mapping[str, int]]],
    labels: Mapping[str, str],
    fmt: _Formats,
) -> Markup:
    """A horizontal bar per row, stacked by status; the total at the end of each bar."""
    label_w, bar_w, row_h = 230, 380, 24
    height = 30 + row_h * len(rows) + 24
    top = max((sum(v.values()) for _, v in rows), default=0) or 1
    body: list[str] = []
    for i, (name, counts) in enumerate(rows):
        y = 10 + i * row_h
        body.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="label">'
            f"{escape(_shorten(name, 34))}<title>{escape(name)}</title></text>"
        )
        x = float(label_w)
        for status, count in counts.items():
            if not count:
                continue
            w = max(bar_w * count / top, 1.5)
            body.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{COLOURS[status]}"><title>{escape(name)}: {fmt.number(count)} '
                f"{escape(labels[status])}</title></rect>"
            )
            x += w
        body.append(
            f'<text x="{x + 6:.1f}" y="{y + 15}" class="value">'
            f"{fmt.number(sum(counts.values()))}</text>"
        )
    legend_y = height - 10
    x = label_w
    for status in COLOURS:
        if any(counts.get(status) for _, counts in rows):
            body.append(
                f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" '
                f'fill="{COLOURS[status]}"/><text x="{x + 14}" y="{legend_y}" class="legend">'
                f"{escape(labels[status])}</text>"
            )
            x += 24 + 7 * len(labels[status])
    return _svg(label_w + bar_w + 80, height, title, body)


def age_chart(title: str, ages: Counter[int], names: Sequence[str], fmt: _Formats) -> Markup:
    """A column per age bucket of the overdue items."""
    width, height, base = 640, 220, 180
    col_w = (width - 40) / len(names)
    top = max(ages.values(), default=0) or 1
    body = [f'<line x1="20" y1="{base}" x2="{width - 20}" y2="{base}" class="axis"/>']
    for i, name in enumerate(names):
        count = ages.get(i, 0)
        h = (base - 30) * count / top
        x = 20 + i * col_w
        body.append(
            f'<rect x="{x + 8:.1f}" y="{base - h:.1f}" width="{col_w - 16:.1f}" height="{h:.1f}" '
            f'fill="{COLOURS["due"]}"><title>{escape(name)}: {fmt.number(count)}</title></rect>'
            f'<text x="{x + col_w / 2:.1f}" y="{base - h - 6:.1f}" text-anchor="middle" '
            f'class="value">{fmt.number(count)}</text>'
            f'<text x="{x + col_w / 2:.1f}" y="{base + 18}" text-anchor="middle" class="label">'
            f"{escape(name)}</text>"
        )
    return _svg(width, height, title, body)


def line_chart(
    title: str,
    axis: str,
    series: Mapping[str, Sequence[tuple[datetime, int]]],
    fmt: _Formats,
    top: int | None = None,
    unit: str = "",
) -> Markup:
    """A line per series (a legacy system's items in each plan, a coverage share in each
    discovery run) over time, from 0 to ``top`` (default: the highest value)."""
    width, height, left, right, top_y, base = 640, 240, 60, 150, 20, 190
    points = [p for s in series.values() for p in s]
    t0 = min(p[0] for p in points)
    t1 = max(p[0] for p in points)
    span = (t1 - t0).total_seconds() or 1
    peak = top or max(p[1] for p in points) or 1

    def xy(moment: datetime, value: int) -> tuple[float, float]:
        x = left + (width - left - right) * ((moment - t0).total_seconds() / span)
        if t0 == t1:
            x = left + (width - left - right) / 2
        return x, base - (base - top_y) * value / peak

    body = [
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" class="axis"/>',
        f'<line x1="{left}" y1="{top_y}" x2="{left}" y2="{base}" class="axis"/>',
        f'<text x="{left - 6}" y="{top_y + 4}" text-anchor="end" class="value">'
        f"{fmt.number(peak)}{unit}</text>",
        f'<text x="{left - 6}" y="{base}" text-anchor="end" class="value">0</text>',
        f'<text x="{left}" y="{base + 18}" class="label">{fmt.date(t0)}</text>',
        f'<text x="{width - right}" y="{base + 18}" text-anchor="end" class="label">'
        f"{fmt.date(t1)}</text>",
        f'<text x="{left}" y="{height - 8}" class="legend">{escape(axis)}</text>',
    ]
    for i, (name, values) in enumerate(series.items()):
        colour = SERIES[i % len(SERIES)]
        coords = [xy(m, v) for m, v in values]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for (moment, value), (x, y) in zip(values, coords, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>'
                f"{escape(name)} {fmt.date(moment)}: {fmt.number(value)}{unit}</title></circle>"
            )
        ly = top_y + 14 + i * 18
        body.append(
            f'<rect x="{width - right + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{width - right + 26}" y="{ly}" class="legend">'
            f"{escape(_shorten(name, 18))}</text>"
        )
    return _svg(width, height, title, body)


def _shorten(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


# -- the page ----------------------------------------------------------------------------------


def _asset(name: str) -> str:
    return files("sweeper").joinpath("templates", name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _program_version() -> str:
    try:
        return version("ropa-sweeper")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _rule_sources(plan: Mapping[str, Any]) -> dict[str, Any] | None:
    """The RoPA's activities by id, if the RoPA the plan was made from is readable and
    unchanged (its digest); else None."""
    from sweeper.errors import SweeperError
    from sweeper.ropa import load_ropa

    try:
        loaded = load_ropa(Path(plan["ropa_path"]))
    except SweeperError:
        return None
    if loaded.digest != plan["ropa_digest"]:
        return None
    return {a.id: a for a in loaded.ropa.activities}


def render(store: Store, plan_id: str, options: ReportOptions) -> str:
    """Return the HTML report of a stored plan."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from sweeper.approve import decisions

    t = texts(options.language)
    fmt = _Formats(options.language, ZoneInfo(options.timezone))
    plan = store.plan(plan_id)
    summary = plan["summary"]
    totals: dict[str, int] = {s: summary.get("totals", {}).get(s, 0) for s in STATUSES}
    locations, ages = collect(store, plan["id"], options.items_per_location)
    labels = {s: t[f"label_{s}"] for s in STATUSES}
    groups = summary_rows(store, plan["id"])
    activities = _rule_sources(plan)

    per_activity: dict[str, Counter[str]] = defaultdict(Counter)
    per_system: dict[str, Counter[str]] = defaultdict(Counter)
    for row in groups:
        for status in COLOURS:
            per_activity[row["activity"]][status] += row[status]
            per_system[row["system"]][status] += row[status]
    chart_rows = {
        "activity": sorted(
            ((a, dict(c)) for a, c in per_activity.items() if sum(c.values())),
            key=lambda r: -sum(r[1].values()),
        ),
        "system": sorted(
            ((s, dict(c)) for s, c in per_system.items() if sum(c.values())),
            key=lambda r: -sum(r[1].values()),
        ),
    }
    charts = {
        "activity": bar_chart(t["chart_activity"], chart_rows["activity"], labels, fmt)
        if chart_rows["activity"]
        else None,
        "system": bar_chart(t["chart_system"], chart_rows["system"], labels, fmt)
        if chart_rows["system"]
        else None,
        "age": age_chart(t["chart_age"], ages, [t[f"age_{i}"] for i in range(6)], fmt)
        if sum(ages.values())
        else None,
    }
    coverage = _coverage_view(store, plan, t, fmt, options)
    legacy_series, legacy_points = _legacy_history(store, plan)
    charts["legacy"] = (
        line_chart(t["chart_legacy"], t["chart_legacy_axis"], legacy_series, fmt)
        if legacy_series
        else None
    )

    oldest = min(
        (loc.row["oldest_due"] for loc in locations.values() if loc.row["oldest_due"]), default=None
    )
    overdue = totals["due"] + totals["legacy_due"]
    legacy = summary.get("legacy_systems", [])
    holding = [s for s in legacy if s["reachable"] and s["items"]]
    program = options.program
    pid = plan["id"]
    approve = {
        "all": f'{program} approve {pid} --by "NAME"',
        "part": [
            f'{program} approve {pid} --by "NAME" --only activity={shlex.quote(a)}'
            for a in list(per_activity)[:2]
        ],
        "reject": f'{program} reject {pid} --by "NAME" --reason "WHY"',
        "auto": sorted(
            {loc.row["label"] for loc in locations.values() if loc.row.get("auto_approve")}
        ),
        "until": fmt.time(options.plan_max_age.add_to(plan["created_at"]))
        if options.plan_max_age
        else None,
        "decisions": [
            t["decision_line"].format(
                decision=t[f"decision_{d.decision}"],
                by=d.by,
                at=fmt.time(d.at),
                scope=str(d.scope),
            )
            for d in decisions(store, pid)
        ],
    }
    sections = _sections(locations, activities, t, fmt, options, plan["clock"])
    env = Environment(
        loader=PackageLoader("sweeper", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css, js = _asset("report.css"), _asset("report.js")
    page = env.get_template("report.html.j2").render(
        t=t,
        lang=options.language,
        css=Markup(css),
        js=Markup(js),
        csp=f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
        "img-src data:; base-uri 'none'; form-action 'none'",
        plan=plan,
        created=fmt.time(plan["created_at"]),
        clock=fmt.time(plan["clock"]),
        tz=options.timezone,
        totals=totals,
        overdue=overdue,
        bytes_due=fmt.size(summary.get("bytes_due", 0)),
        oldest=fmt.date(oldest),
        max_days=(plan["clock"] - datetime.fromisoformat(oldest)).days if oldest else None,
        refused=totals["locked"] + totals["protected"],
        legacy=[
            {
                **s,
                "items_text": fmt.number(s["items"]),
                "bytes_text": fmt.size(s["bytes"]),
                "subjects_text": fmt.number(s["subjects"]),
            }
            for s in legacy
        ],
        holding=holding,
        holding_items=fmt.number(sum(s["items"] for s in holding)),
        holding_subjects=fmt.number(sum(s["subjects"] for s in holding)),
        legacy_points=legacy_points,
        failed=summary.get("failed_systems", {}),
        findings=store.findings(pid),
        unenforceable=summary.get("unenforceable_activities", []),
        approve=approve,
        approvers=options.approvers_required,
        charts=charts,
        groups=[_group_row(g, fmt) for g in groups],
        sections=sections,
        statuses=STATUSES,
        labels=labels,
        n=fmt.number,
        version=_program_version(),
        now=fmt.time(options.now),
        sources_unknown=activities is None,
        coverage=coverage,
    )
    return page


def _legacy_history(
    store: Store, plan: Mapping[str, Any]
) -> tuple[dict[str, list[tuple[datetime, int]]], int]:
    """Items on each decommissioned system in every plan up to this one, by the plans'
    clocks; and how many plans that is."""
    series: dict[str, list[tuple[datetime, int]]] = {}
    plans = 0
    for earlier in store.plan_history(plan["created_at"]):
        systems = earlier["summary"].get("legacy_systems", [])
        if not systems:
            continue
        plans += 1
        for system in systems:
            series.setdefault(system["system"], []).append((earlier["clock"], system["items"]))
    return {k: v for k, v in series.items() if any(n for _, n in v)}, plans


def _coverage_view(
    store: Store,
    plan: Mapping[str, Any],
    t: Mapping[str, str],
    fmt: _Formats,
    options: ReportOptions,
) -> dict[str, Any] | None:
    """The coverage section: the latest discovery run before the plan was made, the trend of
    its shares over the runs before it, and its highest-scoring findings; None if discovery
    never ran before the plan."""
    from sweeper.coverage import coverage_history, open_findings

    history = coverage_history(store, options.coverage_runs, until=plan["created_at"])
    if not history:
        return None
    latest = history[-1]
    names = {
        "activities_share": t["series_activities"],
        "stores_share": t["series_stores"],
        "personal_share": t["series_personal"],
        "records_share": t["series_records"],
    }
    series: dict[str, list[tuple[datetime, int]]] = {}
    for run in history:
        for key, share in run.shares().items():
            if share is not None:
                series.setdefault(names[key], []).append((run.at, _floor_percent(share)))
    chart = (
        line_chart(t["chart_coverage"], t["chart_coverage_axis"], series, fmt, top=100, unit="%")
        if series
        else None
    )
    shown, total = open_findings(store, latest.run_id, options.coverage_findings)

    def card(key: str, share: float | None, part: int, whole: int, hint: str) -> dict[str, Any]:
        return {
            "key": key,
            "value": None if share is None else _floor_percent(share),
            "hint": t[hint].format(part=fmt.number(part), whole=fmt.number(whole)),
            "what": t[f"cov_{key}"],
        }

    return {
        "run": latest.run_id,
        "at": fmt.time(latest.at),
        "complete": latest.complete,
        "runs": len(history),
        "cards": [
            card(
                "activities",
                latest.activities_share,
                latest.activities_enforceable,
                latest.activities,
                "cov_activities_hint",
            ),
            card(
                "stores",
                latest.stores_share,
                latest.stores_registered,
                latest.stores,
                "cov_of_hint",
            ),
            card(
                "personal",
                latest.personal_share,
                latest.personal_stores_registered,
                latest.personal_stores,
                "cov_of_hint",
            ),
            card(
                "records",
                latest.records_share,
                latest.personal_records_registered,
                latest.personal_records,
                "cov_records_hint",
            ),
        ],
        "legacy": latest.legacy_systems,
        "uninspectable": latest.uninspectable,
        "chart": chart,
        "findings": [
            {
                "id": f["id"],
                "score": f"{f['score']:.1f}".replace(".", "," if fmt.language == "nl" else "."),
                "finding": t.get(f"finding_{f['finding']}", f["finding"]),
                "system": f["system"],
                "store": f"{f['kind']} {f['where']}",
                "found": ", ".join(
                    f"{name} {fmt.number(hit['values'])}" if hit["values"] else name
                    for name, hit in sorted((f.get("detections") or {}).items())
                )
                or t["finding_not_inspected"],
                "records": fmt.number(f.get("estimated_personal_records") or 0),
                "oldest": fmt.date(f.get("oldest")),
            }
            for f in shown
        ],
        "more": total - len(shown),
        "report": f"discovery-{latest.run_id}.json",
    }


def _floor_percent(share: float) -> int:
    """A share as a whole percentage rounded down (82 of 83 is 98%), so that a share short of
    all never shows as 100%."""
    return math.floor(share * 100 + 1e-9)


def _group_row(row: Mapping[str, Any], fmt: _Formats) -> dict[str, Any]:
    return {
        **row,
        "overdue": row["due"] + row["legacy_due"],
        "refused": row["locked"] + row["protected"],
        "waiting": row["not_due"] + row["waiting_event"],
        "bytes_text": fmt.size(row["bytes_due"]),
        "oldest_text": fmt.date(row["oldest_due"]),
        "next_text": fmt.date(row["next_due"]),
    }


def _sections(
    locations: Mapping[int, _Location],
    activities: Mapping[str, Any] | None,
    t: Mapping[str, str],
    fmt: _Formats,
    options: ReportOptions,
    clock: datetime,
) -> list[dict[str, Any]]:
    """One section per activity, with its rule and a table per location."""
    by_activity: dict[str, list[_Location]] = defaultdict(list)
    for location in locations.values():
        by_activity[location.row["activity"]].append(location)
    sections = []
    for activity_id, locs in by_activity.items():
        first = locs[0].row
        model = activities.get(activity_id) if activities else None
        rule = model.retention if model is not None else None
        sections.append(
            {
                "id": activity_id,
                "name": first.get("activity_name") or activity_id,
                "rule": t["rule_line"].format(
                    period=first["period"],
                    clock=_clock_text(first["clock"]),
                    action=first["action"],
                ),
                "grace": t["grace_line"].format(grace=first["grace"])
                if first.get("grace")
                else None,
                "auto": bool(first.get("auto_approve")),
                "source": rule.source if rule is not None else None,
                "source_kind": t[f"kind_{rule.source_kind.value}"]
                if rule is not None and rule.source_kind is not None
                else None,
                "note": rule.note if rule is not None else None,
                "legal_basis": ", ".join(model.legal_basis) if model is not None else None,
                "legal_basis_note": model.legal_basis_note if model is not None else None,
                "locations": [_location_view(loc, t, fmt, options, clock) for loc in locs],
            }
        )
    return sections


def _clock_text(clock: str) -> str:
    """A plan stores a clock as a name or as JSON ({"event": "student_left"}): show it
    as the RoPA spells it."""
    import json

    if not clock.startswith("{"):
        return clock
    name, value = next(iter(json.loads(clock).items()))
    return f"{name} {value}"


def _location_view(
    location: _Location,
    t: Mapping[str, str],
    fmt: _Formats,
    options: ReportOptions,
    clock: datetime,
) -> dict[str, Any]:
    row = location.row
    rule = f"{row['period']} · {_clock_text(row['clock'])} · {row['action']}"
    items = []
    for _, item in location.items:
        _seq, _idx, key, subject, start, due, status, action, _fp, size, reason, _details = item
        items.append(
            {
                "key": key,
                "subject": subject or "",
                "start": fmt.date(start),
                "start_sort": start or "",
                "due": fmt.date(due),
                "due_sort": due or "",
                "days": days_over(due, clock),
                "status": status,
                "action": action,
                "reason": reason or "",
                "size": fmt.size(size),
                "size_sort": size or 0,
                "rule": rule,
            }
        )
    counts = row.get("counts", {})
    total_listed = location.listed
    shown = len(items)
    files_text = " / ".join(options.full_reports) or "CSV / XLSX"
    return {
        "idx": row["idx"],
        "label": row["label"],
        "system": row["system"],
        "failed": row["outcome"] == "failed",
        "error": row.get("error"),
        "counts": {s: counts.get(s, 0) for s in STATUSES},
        "items": items,
        "truncated": t["truncated"].format(
            shown=fmt.number(shown), total=fmt.number(total_listed), files=files_text
        )
        if shown < total_listed
        else None,
        "counted": t["counted_only"].format(
            count=fmt.number(counts.get("not_due", 0) + counts.get("waiting_event", 0))
        )
        if counts.get("not_due", 0) + counts.get("waiting_event", 0)
        else None,
    }


def write_html(store: Store, plan_id: str, out: IO[str], options: ReportOptions) -> None:
    """Write the HTML report of a stored plan to ``out``."""
    page = render(store, plan_id, options)
    out.write(page)


def save_report(
    store: Store, plan_id: str, target: Path, options: ReportOptions, fmt: str = "html"
) -> Path:
    """Write a stored plan's HTML (or, with ``fmt`` xlsx, XLSX) report to ``target`` through a
    temporary file in its folder, with mode 0600 (it is personal data), so that the report is
    either whole or absent; return ``target``."""
    import os
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        if fmt == "xlsx":
            from sweeper.report_xlsx import write_xlsx

            write_xlsx(store, plan_id, Path(tmp), options)
        else:
            with open(tmp, "w", encoding="utf-8") as out:
                write_html(store, plan_id, out, options)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def days_over(due: str | None, clock: datetime) -> int | None:
    """Whole days from a due date to the plan's clock; None if not yet due or no date."""
    if not due:
        return None
    days = (clock - datetime.fromisoformat(due)).days
    return days if days >= 0 else None
