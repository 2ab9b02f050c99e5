"""Discovery of shadow data in Active Directory (Samba AD DC): a whole run over a small
directory estate, counted by hand.

The estate, below the test's OU (the discovery target's base, level 0, without accounts of
its own):

=============== ========= ======================= ===========================================
OU              accounts  registered by           holds
=============== ========= ======================= ===========================================
Vertrokken      6         -                       leavers: employeeID student numbers, e-mail,
                                                  mobile, postcode, street, born on (info)
Service         3         -                       shared and service accounts: a description
Leerlingen      2         pupil-accounts          e-mail, employeeID
Personeel       2         staff-accounts, with a  e-mail, department
                          condition (partial)
Leeg            0         -                       nothing (an empty OU counts nowhere)
closed          unknown   -                       one account the sweeper may not see (a deny
                                                  of List Contents): uninspectable
=============== ========= ======================= ===========================================

Activities: pupil-accounts and staff-accounts (rule and location), alumni (neither): two of
three enforceable. Stores holding accounts or uninspectable: 5, registered 1, partial 1.
Stores with personal data: 3 (Vertrokken, Leerlingen, Personeel), registered 1.
Uninspectable: 1. The OUs and accounts are made once for the module; each test has a RoPA
and a state store of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from directory_data import Directory, samba_directory
from directory_servers import SWEEPER_PASSWORD, SambaDC

from sweeper.discover import DiscoveryOptions, DiscoveryResult, run_discovery, stored_finding
from sweeper.discover import suggest as suggest_location
from sweeper.ropa import load_ropa
from sweeper.ropa.model import DirectoryLocation
from sweeper.settings import Settings, load_settings
from sweeper.store import Store, discovery_stores

NOW = datetime.now(UTC)


@dataclass
class Estate:
    """The estate's accounts, with a RoPA and a state store of one test's own."""

    ad: Directory
    path: Path
    settings: Settings
    store: Store
    ous: dict[str, str]  # name -> DN
    values: list[str]  # every personal value in the estate: none may be kept anywhere

    def ropa(self, **changes: Any) -> None:
        """Write the RoPA: more systems, or another discovery section, where given."""
        ad = self.ad
        system = {
            "id": "ad",
            "name": "Active Directory",
            "kind": "directory",
            "owner": "ICT",
            "connection": ad.connection,
        }
        rule = {"period": "P1Y", "clock": "last_login", "action": "disable"}
        ropa = {
            "controller": {"name": "School", "contact": {"name": "Office"}, "dpo": {"name": "FG"}},
            "systems": [system, *changes.get("systems", [])],
            "activities": [
                {
                    "id": "pupil-accounts",
                    "name": "Pupil accounts",
                    "retention": rule,
                    "locations": [
                        {"system": "ad", "base_dn": self.ous["Leerlingen"], "subject": "employeeID"}
                    ],
                },
                {
                    "id": "staff-accounts",
                    "name": "Staff accounts",
                    "retention": rule,
                    "locations": [
                        {
                            "system": "ad",
                            "base_dn": self.ous["Personeel"],
                            "where": [{"attribute": "department", "value": "Docenten"}],
                        }
                    ],
                },
                {"id": "alumni", "name": "Alumni network"},
            ],
            "discovery": changes.get(
                "discovery",
                {
                    "targets": [{"system": "ad", "base": ad.ou}],
                    "patterns": [{"id": "student_number", "regex": r"\b735\d{4}\b"}],
                },
            ),
        }
        self.path.write_text(yaml.safe_dump(ropa, sort_keys=False))

    def run(self) -> DiscoveryResult:
        options = DiscoveryOptions(now=NOW, created_by="fg", reports_dir=self.settings.reports_path)
        return run_discovery(load_ropa(self.path), self.settings, self.store, options)


@dataclass(frozen=True)
class Accounts:
    """The estate's OUs and accounts in the Samba AD DC, made once for this module."""

    ad: Directory
    ous: dict[str, str]  # name -> DN
    values: list[str]


@pytest.fixture(scope="module")
def accounts(samba: SambaDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    ad = samba_directory(samba, tmp_path_factory.mktemp("shadow"))
    ous = {name: ad.sub_ou(name) for name in ("Vertrokken", "Service", "Leerlingen", "Personeel")}
    ous["Leeg"] = ad.sub_ou("Leeg")
    ous["closed"] = ad.closed_ou()
    values: list[str] = ["Verborgen", "verborgen@example.nl"]
    for n in range(6):
        person = {
            "givenName": f"Anouk{n}",
            "sn": f"Vermeulen{n}",
            "mail": f"anouk{n}.vermeulen@leerling.example.nl",
            "employeeID": f"735{1000 + n}",
            "mobile": f"06482310{n:02d}",
            "postalCode": f"{3511 + n} KX",
            "streetAddress": f"Lange Nieuwstraat {10 + n}",
            "info": f"Klas 6b, geboren {10 + n}-04-2006, vertrokken juli 2024",
        }
        ad.user(f"Anouk Vermeulen {n}", parent=ous["Vertrokken"], attributes=person)
        values += [f"Anouk Vermeulen {n}", *person.values(), f"{10 + n}-04-2006"]
    for name, what in (
        ("svc-backup", "Back-up service"),
        ("svc-print", "Print server"),
        ("balie", "Gedeeld account balie"),
    ):
        ad.user(name, parent=ous["Service"], attributes={"description": what})
    for n in range(2):
        pupil = {"mail": f"pupil{n}@leerling.example.nl", "employeeID": f"735{2000 + n}"}
        ad.user(f"Pupil {n}", parent=ous["Leerlingen"], attributes=pupil)
        staff = {"mail": f"docent{n}@example.nl", "department": "Docenten"}
        ad.user(f"Docent {n}", parent=ous["Personeel"], attributes=staff)
        values += [f"Pupil {n}", f"Docent {n}", *pupil.values(), staff["mail"]]
    yield Accounts(ad, ous, values)
    ad.remove()


@pytest.fixture
def estate(accounts: Accounts, tmp_path: Path) -> Iterator[Estate]:
    """The estate with a RoPA and a state store of this test's own."""
    settings = load_settings(
        None, state_dir=tmp_path / "state", credentials={"directory": SWEEPER_PASSWORD}
    )
    found = Estate(
        accounts.ad,
        tmp_path / "ropa.yaml",
        settings,
        Store.open(settings.state_database_url),
        accounts.ous,
        accounts.values,
    )
    found.ropa()
    yield found
    found.store.close()


def test_unregistered_leavers_rank_above_service_accounts(estate: Estate) -> None:
    """The OU of leavers' accounts with student numbers and e-mail addresses is an
    unregistered finding ranked above the OU of service accounts, which holds no personal
    data; the registered OU is no finding, the one registered with a condition is partial."""
    result = estate.run()
    assert result.complete
    ranked = [f.where for f in result.findings]
    leavers, service = estate.ous["Vertrokken"], estate.ous["Service"]
    assert ranked.index(leavers) < ranked.index(service)
    found = {s.where: s for s in result.stores}
    assert found[leavers].finding == "unregistered" and found[leavers].score > 0
    hits = found[leavers].tally.hits
    assert hits["student_number"].values == 6 and hits["student_number"].names == {"employeeID"}
    assert (hits["email"].values, hits["phone"].values, hits["postcode"].values) == (6, 6, 6)
    assert hits["date_of_birth"].values == 6
    assert found[leavers].estimated == 6
    assert not found[service].personal_data and found[service].score == 0
    assert estate.ous["Leerlingen"] not in ranked
    assert found[estate.ous["Leerlingen"]].registration == "registered"
    assert found[estate.ous["Personeel"]].finding == "partially_registered"


def test_coverage_matches_the_hand_count(estate: Estate) -> None:
    """Activities 2 of 3 enforceable; OUs holding accounts (or that could not be inspected)
    5, registered 1, partial 1; OUs with personal data 3, registered 1; uninspectable 1."""
    coverage = estate.run().coverage
    assert (coverage.activities_enforceable, coverage.activities) == (2, 3)
    assert (coverage.stores_registered, coverage.stores_partial, coverage.stores) == (1, 1, 5)
    assert (coverage.personal_stores_registered, coverage.personal_stores) == (1, 3)
    assert coverage.uninspectable == 1 and coverage.legacy_systems_with_data == 0


def test_findings_never_hold_a_full_value(estate: Estate) -> None:
    """No attribute value of the estate is in the stored rows, the JSON report or the audit
    log; masked examples are."""
    result = estate.run()
    with estate.store.engine.connect() as conn:
        stored = json.dumps(
            [list(r) for r in conn.execute(sa.select(discovery_stores))], default=str
        )
    assert result.report is not None
    report = result.report.read_text(encoding="utf-8")
    audit = "".join(p.read_text() for p in estate.settings.audit_path.glob("*.jsonl"))
    assert re.search(r'"an\*+nl"', report)  # a masked e-mail address
    for text in (stored, report, audit):
        for value in estate.values:
            assert value not in text


def test_an_ou_the_sweeper_may_not_list_is_a_finding_and_the_run_completes(
    estate: Estate,
) -> None:
    """The OU whose contents the sweeper's account may not see is an 'uninspectable'
    finding, ranked above what holds nothing personal; the run completes."""
    result = estate.run()
    assert result.complete
    closed = estate.ous["closed"]
    finding = next(f for f in result.findings if f.where == closed)
    assert finding.finding == "uninspectable" and "List Contents" in finding.problems[0]
    assert finding.items is None
    ranked = [f.where for f in result.findings]
    assert ranked.index(closed) < ranked.index(estate.ous["Service"])


def test_a_discovery_only_system_for_the_whole_tree_skips_what_another_system_discovers(
    estate: Estate,
) -> None:
    """A directory system that no activity uses, discovering the whole tree, leaves out the
    OU that the registered system discovers itself; its OUs are covered by the registered
    system's locations all the same."""
    tree = {
        "id": "ad-tree",
        "name": "Active Directory, whole tree",
        "kind": "directory",
        "owner": "ICT",
        "connection": estate.ad.connection,
    }
    estate.ropa(
        systems=[tree],
        discovery={
            "targets": [
                {"system": "ad", "base": estate.ous["Leerlingen"]},
                {"system": "ad-tree", "base": estate.ad.ou},
            ]
        },
    )
    result = estate.run()
    by_system: dict[str, set[str]] = {}
    for store in result.stores:
        by_system.setdefault(store.system, set()).add(store.where)
    assert by_system["ad"] == {estate.ous["Leerlingen"]}
    assert estate.ous["Leerlingen"] not in by_system["ad-tree"]
    assert estate.ous["Vertrokken"] in by_system["ad-tree"]
    staff = next(s for s in result.stores if s.where == estate.ous["Personeel"])
    assert (staff.system, staff.registration) == ("ad-tree", "partial")


def test_suggest_prints_a_location_that_registers_the_ou(estate: Estate) -> None:
    """The suggestion for the leavers' OU is a directory location for its base DN, with the
    student-number attribute as its subject, that the RoPA model accepts."""
    result = estate.run()
    leavers = next(f for f in result.findings if f.where == estate.ous["Vertrokken"])
    snippet = suggest_location(load_ropa(estate.path), stored_finding(estate.store, leavers.id))
    (location,) = yaml.safe_load(snippet)
    parsed = DirectoryLocation.model_validate(location)
    assert (parsed.system, parsed.base_dn, parsed.subject) == (
        "ad",
        estate.ous["Vertrokken"],
        "employeeID",
    )
