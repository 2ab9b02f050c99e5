"""The coverage section of the HTML report, from real discovery runs over a file share stored
in the same state store as the plans: two runs before the plan, one after it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from fakes import fake_connectors
from report_plans import NOW, Plans, build_plans

from sweeper.coverage import Coverage, coverage_history
from sweeper.detect import bsn_valid
from sweeper.discover import DiscoveryOptions, run_discovery
from sweeper.plan import PlanOptions, build_plan
from sweeper.report_html import ReportOptions, render
from sweeper.ropa import load_ropa

SHARE_ROPA = """
controller: {{name: School, contact: {{name: Office}}}}
systems: [{{id: share, name: Share, kind: fileshare, owner: IT, connection: {{root: "{root}"}}}}]
activities:
  - id: homes
    name: Home folders
    retention: {{period: P1Y, clock: modified, action: delete}}
    locations: [{{system: share, include: ["homes/**"]}}]
"""


@dataclass
class Covered:
    plans: Plans
    plan_id: str
    runs: list[Coverage]  # the two runs before the plan
    after: str  # the run after it
    bsns: list[str]


def _bsns(count: int) -> list[str]:
    found = [f"{n:09d}" for n in range(100000000, 100100000, 7) if bsn_valid(f"{n:09d}")]
    return found[:count]


def _csv(folder: Path, bsns: list[str]) -> None:
    folder.mkdir(parents=True)
    rows = "".join(f"Leerling {n};{b}\n" for n, b in enumerate(bsns))
    (folder / "leerlingen.csv").write_text("naam;bsn\n" + rows)


@pytest.fixture(scope="module")
def covered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Covered]:
    tmp = tmp_path_factory.mktemp("covered")
    (tmp / "plans").mkdir()
    plans = build_plans(tmp / "plans")
    share = tmp / "share"
    (share / "homes" / "jan").mkdir(parents=True)
    (share / "homes" / "jan" / "cv.txt").write_text("Curriculum vitae, geboren 1990-01-01\n")
    bsns = _bsns(90)
    _csv(share / "exports", bsns[:30])
    ropa = tmp / "share-ropa.yaml"
    ropa.write_text(SHARE_ROPA.format(root=share))

    def discover() -> str:
        options = DiscoveryOptions(now=NOW, reports_dir=plans.settings.reports_path)
        return run_discovery(load_ropa(ropa), plans.settings, plans.store, options).run_id

    discover()
    _csv(share / "oud", bsns[30:60])
    discover()
    result = build_plan(
        load_ropa(tmp / "plans" / "ropa.yaml"),
        plans.settings,
        plans.store,
        PlanOptions(now=NOW, connectors=fake_connectors, created_by="tester"),
    )
    runs = coverage_history(plans.store)
    _csv(share / "later", bsns[60:])
    after = discover()
    yield Covered(plans, result.plan_id, runs, after, bsns)
    plans.store.close()


def page(covered: Covered, **options: object) -> str:
    return render(covered.plans.store, covered.plan_id, ReportOptions(**options))  # type: ignore[arg-type]


def test_the_cards_are_the_latest_run_before_the_plan(covered: Covered) -> None:
    """The section names the last discovery run before the plan and its shares, rounded
    down; a run made after the plan is not in it."""
    html = page(covered)
    latest = covered.runs[-1]
    section = html[html.index('<section id="coverage">') : html.index('<section id="statuses">')]
    assert latest.run_id in section and covered.after not in html
    cards = dict(
        re.findall(r'data-coverage="(\w+)">\s*<span class="num" data-value="(\d*)"', section)
    )
    for key, share in (
        ("activities", latest.activities_share),
        ("stores", latest.stores_share),
        ("personal", latest.personal_share),
        ("records", latest.records_share),
    ):
        assert share is not None
        assert int(cards[key]) == math.floor(share * 100 + 1e-9), key
    assert (latest.stores_registered, latest.stores) == (1, 3)
    assert cards["stores"] == "33"


def test_the_trend_has_a_point_per_run_and_share(covered: Covered) -> None:
    """The coverage chart plots each share of each run before the plan, in run order."""
    html = unescape(page(covered))
    chart = html[html.index("Coverage over the discovery runs</title>") :]
    chart = chart[: chart.index("</svg>")]
    stores = [int(v) for v in re.findall(r"<title>stores \S+: (\d+)%</title>", chart)]
    assert stores == [math.floor((c.stores_share or 0) * 100 + 1e-9) for c in covered.runs]
    assert stores == [50, 33]


def test_the_findings_are_ranked_and_hold_no_value(covered: Covered) -> None:
    """The latest run's findings are listed highest score first, with what was found and the
    estimated records, and never a value found."""
    html = page(covered)
    table = html[
        html.index('id="coverage-findings"') : html.index(
            "</table>", html.index('id="coverage-findings"')
        )
    ]
    stores = re.findall(r'<td class="mono key">folder (\S+)</td>', table)
    assert sorted(stores) == ["exports", "oud"]
    scores = [float(s) for s in re.findall(r'<tr><td class="n">([\d.]+)</td>', table)]
    assert scores == sorted(scores, reverse=True)
    assert "bsn 30" in table
    for value in covered.bsns:
        assert value not in html


def test_the_dutch_section_is_in_dutch(covered: Covered) -> None:
    """With language nl the coverage section is Dutch."""
    html = page(covered, language="nl")
    assert "Dekking van het register" in html and "opslagplaatsen geregistreerd" in html
    assert "Coverage of the RoPA" not in html
