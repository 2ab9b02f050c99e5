"""The Dutch education templates in retention_policies/: valid with --strict, every period with
its source and kind of source, and the README's table in step with them.

Run ``python tests/unit/test_retention_templates.py`` to print the README's table again after
changing a template.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sweeper.ropa import load_ropa
from sweeper.ropa.model import EventClock, PathDateClock, RetentionRule

POLICIES = Path(__file__).resolve().parents[2] / "retention_policies"
TEMPLATES = {"po": "PO", "vo": "VO", "mbo": "MBO", "ho": "HO"}


def _clock(rule: RetentionRule) -> str:
    clock = rule.clock
    if isinstance(clock, str):
        return f"file {clock}"
    if isinstance(clock, EventClock):
        return f"event `{clock.event}`"
    if isinstance(clock, PathDateClock):
        return f"date in the path (`{clock.path_date}`)"
    return f"column `{clock.column}`"


def readme_table() -> list[str]:
    """Return the README's table: one row per activity of every template."""
    rows = [
        "| template | activity | period | clock starts | action | source | kind |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, sector in TEMPLATES.items():
        for activity in load_ropa(POLICIES / f"{name}.yaml").ropa.activities:
            rule = activity.retention
            assert rule is not None and rule.source_kind is not None
            period = str(rule.period) + (f" + {rule.grace}" if rule.grace else "")
            rows.append(
                f"| {sector} | {activity.name} (`{activity.id}`) | {period} | {_clock(rule)} "
                f"| {rule.action.value} | {rule.source} | {rule.source_kind.value} |"
            )
    return rows


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_template_validates_strictly(name: str) -> None:
    """Each template loads with --strict: no error and no Art. 30 warning."""
    loaded = load_ropa(POLICIES / f"{name}.yaml", strict=True)
    assert loaded.warnings == ()


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_period_names_its_source_and_kind(name: str) -> None:
    """Every activity of a template has a retention rule with a source and a source kind."""
    ropa = load_ropa(POLICIES / f"{name}.yaml").ropa
    missing = [
        a.id
        for a in ropa.activities
        if a.retention is None or not a.retention.source or a.retention.source_kind is None
    ]
    assert missing == []


def test_guidelines_and_policies_say_why_in_a_note() -> None:
    """A period that is a guideline or policy rather than law explains itself in a note."""
    unexplained = []
    for name in TEMPLATES:
        for a in load_ropa(POLICIES / f"{name}.yaml").ropa.activities:
            rule = a.retention
            assert rule is not None
            kind = rule.source_kind.value if rule.source_kind else None
            if kind in ("guideline", "policy") and not rule.note:
                unexplained.append(f"{name}:{a.id}")
    assert unexplained == []


EXAMPLES = [
    # (template, activity, period, source kind): the examples the issue asks for
    ("po", "leerlingenadministratie", "P5Y", "statute"),
    ("po", "leerlingdossier", "P2Y", "guideline"),
    ("vo", "centraal-examenwerk", "P6M", "statute"),
    ("vo", "sollicitaties", "P4W", "code_of_conduct"),
    ("vo", "sollicitaties-met-toestemming", "P1Y", "code_of_conduct"),
    ("mbo", "camerabeelden", "P4W", "guideline"),
    ("ho", "personeelsdossier", "P2Y", "guideline"),
    ("ho", "salarisadministratie", "P7Y", "statute"),
    ("mbo", "examendossier", "P1Y6M", "guideline"),
    ("ho", "afstudeerwerk", "P7Y", "archival_list"),
]


@pytest.mark.parametrize(("name", "activity_id", "period", "kind"), EXAMPLES)
def test_the_sector_periods_are_there(name: str, activity_id: str, period: str, kind: str) -> None:
    """The periods the sector's sources give are in the templates, with their kind of source."""
    ropa = load_ropa(POLICIES / f"{name}.yaml").ropa
    [activity] = [a for a in ropa.activities if a.id == activity_id]
    assert activity.retention is not None and activity.retention.source_kind is not None
    assert (str(activity.retention.period), activity.retention.source_kind.value) == (period, kind)


def test_camera_footage_is_the_only_auto_approved_rule() -> None:
    """Only camera footage (routine, 4 weeks) runs without a human approval in any template."""
    auto = {
        a.id
        for name in TEMPLATES
        for a in load_ropa(POLICIES / f"{name}.yaml").ropa.activities
        if a.retention is not None and a.retention.auto_approve
    }
    assert auto == {"camerabeelden"}


def test_readme_table_lists_every_template_activity() -> None:
    """The README's table has one row per activity of every template, as the templates say."""
    readme = (POLICIES / "README.md").read_text(encoding="utf-8")
    missing = [row for row in readme_table() if row not in readme]
    assert missing == [], "run python tests/unit/test_retention_templates.py and paste the table"


if __name__ == "__main__":
    sys.stdout.write("\n".join(readme_table()) + "\n")
