"""The HTML report rendered from stored plans: numbers, bounds, explanations, escaping and the
page's self-containment (the browser tests open it in Chromium)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from fakes import FakeConnector, fake_connectors
from report_plans import FORMULA_KEY, HELD_SUBJECT, MARKUP_KEY, Plans, build_plans

from sweeper.plan import PlanOptions, build_plan
from sweeper.report_html import ReportOptions, render
from sweeper.report_i18n import STRINGS
from sweeper.ropa import load_ropa


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plans]:
    built = build_plans(tmp_path_factory.mktemp("plans"))
    yield built
    built.store.close()


def page(plans: Plans, **options: object) -> str:
    return render(plans.store, plans.latest, ReportOptions(**options))  # type: ignore[arg-type]


def test_summary_cards_hold_the_plans_totals(plans: Plans) -> None:
    """Every number in the summary equals the stored plan's totals."""
    totals = plans.store.plan(plans.latest)["summary"]["totals"]
    cards = dict(
        re.findall(r'data-total="(\w+)">\s*<span class="num" data-value="(\d+)"', page(plans))
    )
    assert int(cards["overdue"]) == totals["due"] + totals["legacy_due"]
    assert int(cards["held"]) == totals["held"]
    assert int(cards["refused"]) == totals["locked"] + totals["protected"]
    assert int(cards["no_clock"]) == totals["no_clock"]
    assert int(cards["not_due"]) == totals["not_due"]
    assert int(cards["waiting_event"]) == totals["waiting_event"]
    assert int(cards["legacy"]) == 1


def test_states_plan_id_hash_and_the_exact_approve_command(plans: Plans) -> None:
    """The page gives the plan id, its content hash and the command that approves it."""
    plan = plans.store.plan(plans.latest)
    html = page(plans, program="sweeper --state-dir /srv/state")
    assert f"data-content-hash>{plan['content_hash']}<" in html
    assert f"sweeper --state-dir /srv/state approve {plan['id']} --by &#34;NAME&#34;" in html


def test_held_locked_and_protected_items_are_explained(plans: Plans) -> None:
    """Held, locked and protected items are listed with their reasons, not hidden."""
    html = page(plans)
    assert "complaint 2026-17" in html and HELD_SUBJECT in html
    assert "COMPLIANCE retention until 2031-06-30" in html
    assert "break-glass account, never touched" in html
    assert "created is NULL" in html


def test_items_per_location_are_bounded_and_the_rest_is_named(plans: Plans) -> None:
    """With a bound of 3, a location lists 3 items and says how many more the CSV holds."""
    html = page(plans, items_per_location=3, full_reports=("plan-x.csv",))
    grades = html[html.index('id="items-0"') : html.index("</table>", html.index('id="items-0"'))]
    assert grades.count("<tr data-status=") == 3
    assert "3 of 13 items are listed here" in html and "All 13 are in plan-x.csv" in html
    # the explained ones come first: the held item and the one without a clock
    assert 'data-status="held"' in grades and 'data-status="no_clock"' in grades


def test_values_from_systems_are_escaped(plans: Plans) -> None:
    """A key with markup is shown as text and the page has exactly one script, its own."""
    html = page(plans)
    assert MARKUP_KEY not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert html.count("<script") == 1
    assert "HYPERLINK" in html and FORMULA_KEY not in html  # quotes escaped


def test_page_loads_nothing_from_anywhere(plans: Plans) -> None:
    """No src or href points outside the page, and the CSP allows only its own style and
    script, by hash."""
    html = page(plans)
    assert re.findall(r'(?:src|href)="(?!#)[^"]*"', html) == []
    script = re.search(r"<script>(.*)</script>", html, re.S)
    style = re.search(r"<style>(.*)</style>", html, re.S)
    assert script is not None and style is not None
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    policy = unescape(csp.group(1))
    for text in (script.group(1), style.group(1)):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert policy.startswith("default-src 'none';")


def test_legacy_history_plots_every_plan(plans: Plans) -> None:
    """The legacy exposure chart has a point per plan: 7 items a month ago, 5 now."""
    html = page(plans)
    chart = html[html.index("Legacy systems&#39; exposure over time</title>") :]
    points = re.findall(r"<circle [^>]*><title>old (\S+): (\d+)</title>", chart)
    assert [n for _, n in points] == ["7", "5"]


def test_age_chart_counts_every_overdue_item(plans: Plans) -> None:
    """The bars of the overdue-age chart add up to the due and legacy-due items."""
    html = page(plans)
    chart = html[html.index("How long items have been overdue</title>") :]
    chart = chart[: chart.index("</svg>")]
    counts = [int(n) for n in re.findall(r"<rect [^>]*><title>[^<]*: (\d+)</title>", chart)]
    totals = plans.store.plan(plans.latest)["summary"]["totals"]
    assert sum(counts) == totals["due"] + totals["legacy_due"]


def test_rule_sources_come_from_the_unchanged_ropa(plans: Plans) -> None:
    """The activity's source, kind and note are shown when the RoPA is as the plan saw it."""
    html = page(plans)
    assert "School policy" in html and "own policy" in html and "No law sets this period." in html


def test_dutch_report_is_in_dutch(plans: Plans) -> None:
    """With language nl the page is Dutch: its title, headings, numbers and statuses."""
    html = page(plans, language="nl")
    assert '<html lang="nl">' in html
    assert "Rapport van de proefrun" in html and "In één oogopslag" in html
    assert "bewaartermijn verstreken" in html and "Dry-run report" not in html


def test_both_languages_use_the_same_placeholders() -> None:
    """Every sentence has the same {placeholders} in English and Dutch, and differs in text
    where it is a sentence."""
    for key, (en, nl) in STRINGS.items():
        assert set(re.findall(r"{(\w+)}", en)) == set(re.findall(r"{(\w+)}", nl)), key
        assert en.strip() and nl.strip(), key


def test_incomplete_plan_says_so(tmp_path: Path) -> None:
    """A plan whose system failed warns at the top and names the system."""
    other = build_plans(tmp_path)
    try:
        FakeConnector.unreachable = {"media"}
        result = build_plan(
            load_ropa(tmp_path / "ropa.yaml"),
            other.settings,
            other.store,
            PlanOptions(connectors=fake_connectors),
        )
        html = render(other.store, result.plan_id, ReportOptions())
        assert 'id="incomplete"' in html and "System media could not be reached" in html
    finally:
        FakeConnector.unreachable = set()
        other.store.close()


def test_without_discovery_the_coverage_section_says_how_to_get_it(plans: Plans) -> None:
    """A plan with no discovery run before it says so in the coverage section, naming the
    command, and shows no coverage figures."""
    html = page(plans)
    section = html[html.index('<section id="coverage">') : html.index('<section id="statuses">')]
    assert "data-coverage-none" in section and "sweeper discover" in section
    assert "data-coverage=" not in section
