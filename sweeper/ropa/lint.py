"""Art. 30 completeness: what a valid RoPA still lacks. Warnings, or errors with --strict."""

from __future__ import annotations

from sweeper.errors import Problem
from sweeper.ropa.model import Ropa, SystemStatus

Origins = dict[tuple[str, str], tuple[str, str, int | None]]


def lint(ropa: Ropa, origins: Origins) -> list[Problem]:
    """Given a valid RoPA, return its Art. 30 completeness warnings."""
    warnings: list[Problem] = []
    systems = {s.id for s in ropa.systems}

    def warn(section: str, item_id: str, sub: str, message: str) -> None:
        file, path, line = origins.get((section, item_id), ("", f"{section}[?]", None))
        warnings.append(Problem(file, path + sub, message, "warning", line))

    if ropa.controller.dpo is None:
        file, _, line = origins.get(("controller", ""), ("", "", None))
        warnings.append(
            Problem(
                file,
                "controller.dpo",
                "no data protection officer (Art. 30(1)(a)); public bodies, "
                "schools included, must appoint one (Art. 37(1)(a))",
                "warning",
                line,
            )
        )
    for activity in ropa.activities:
        aid = activity.id
        if not activity.purposes:
            warn("activities", aid, ".purposes", "no purposes (Art. 30(1)(b))")
        if not activity.legal_basis:
            warn("activities", aid, ".legal_basis", "no legal basis under Art. 6(1)")
        if activity.special_categories and not activity.art9_basis:
            warn(
                "activities",
                aid,
                ".art9_basis",
                "special categories of data ("
                + ", ".join(activity.special_categories)
                + ") are processed without an Art. 9(2) exception",
            )
        if not activity.data_subjects:
            warn("activities", aid, ".data_subjects", "no categories of data subjects (30(1)(c))")
        if not activity.data_categories:
            warn("activities", aid, ".data_categories", "no categories of personal data (30(1)(c))")
        for i, transfer in enumerate(activity.transfers):
            if not transfer.safeguards:
                warn(
                    "activities",
                    aid,
                    f".transfers[{i}].safeguards",
                    f"the transfer to {transfer.country} names no safeguards (Art. 30(1)(e), "
                    "Art. 44-49)",
                )
        if not activity.security_measures:
            warn("activities", aid, ".security_measures", "no security measures (30(1)(g))")
        if activity.retention is None:
            warn(
                "activities",
                aid,
                ".retention",
                "no retention rule (Art. 30(1)(f)): nothing can be enforced for this activity",
            )
        if activity.retention is not None:
            rule = activity.retention
            if not rule.source:
                warn(
                    "activities",
                    aid,
                    ".retention.source",
                    "the retention period names no source: give the statute and article, the "
                    "sector guideline, the archival selection list, the code of conduct or "
                    "the policy it comes from (and source_kind)",
                )
            elif rule.source_kind is None:
                warn(
                    "activities",
                    aid,
                    ".retention.source_kind",
                    "the retention period's source does not say what it is: set source_kind "
                    "to statute, guideline, archival_list, code_of_conduct or policy",
                )
        if not activity.locations:
            warn(
                "activities",
                aid,
                ".locations",
                "no locations: the sweeper cannot find this activity's data anywhere",
            )
        for i, location in enumerate(activity.locations):
            if location.system not in systems:
                warn(
                    "activities",
                    aid,
                    f".locations[{i}].system",
                    f"unknown system {location.system!r}: this location is not scanned "
                    f"(known: {', '.join(sorted(systems)) or 'none'})",
                )
    for system in ropa.systems:
        if system.owner is None:
            warn("systems", system.id, ".owner", "no owner: who answers for this system?")
        if system.status is SystemStatus.LEGACY and system.decommissioned_on is None:
            warn(
                "systems",
                system.id,
                ".decommissioned_on",
                "a legacy system without a planned decommissioning date",
            )
    return warnings
