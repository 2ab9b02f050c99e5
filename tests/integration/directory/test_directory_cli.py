"""The whole cycle as a sysadmin and a privacy officer run it, on the command line, against the
Samba AD DC: validate, plan, approve, execute, audit verify."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml
from directory_data import Directory
from directory_servers import SWEEPER_PASSWORD


def sweeper(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPER_")}
    env.update(
        SWEEPER_STATE_DIR=str(tmp_path / "state"),
        SWEEPER_CREDENTIALS__DIRECTORY=SWEEPER_PASSWORD,
        COLUMNS="200",
    )
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )


def write_ropa(ad: Directory, tmp_path: Path, **location: object) -> Path:
    with sqlite3.connect(tmp_path / "sis.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS enrolments (student_id TEXT, end_date DATE)")
        db.execute("INSERT INTO enrolments VALUES ('100001', '2025-06-30')")
    ropa = {
        "controller": {"name": "School", "contact": {"name": "Office"}, "dpo": {"name": "FG"}},
        "timezone": "Europe/Amsterdam",
        "systems": [
            {
                "id": "sis",
                "name": "SIS",
                "kind": "sql",
                "owner": "IT",
                "connection": {"url": "sqlite:///sis.db"},
            },
            {
                "id": "ad",
                "name": "Active Directory",
                "kind": "directory",
                "owner": "IT",
                "connection": ad.connection,
            },
        ],
        "events": [
            {
                "id": "left",
                "system": "sis",
                "table": "enrolments",
                "subject": "student_id",
                "date": "end_date",
            }
        ],
        "activities": [
            {
                "id": "pupil-accounts",
                "name": "Pupil accounts",
                "purposes": ["school network access"],
                "legal_basis": ["public_task"],
                "data_subjects": ["pupils"],
                "data_categories": ["account"],
                "security_measures": ["LDAPS"],
                "retention": {
                    "period": "P1M",
                    "clock": {"event": "left"},
                    "action": "delete",
                    "limits": {"max_fraction": 1},
                },
                "locations": [
                    {"system": "ad", "base_dn": ad.ou, "subject": "employeeID", **location}
                ],
            }
        ],
    }
    path = tmp_path / "ropa.yaml"
    path.write_text(yaml.safe_dump(ropa, sort_keys=False))
    return path


def test_plan_approve_execute_disables_the_leaver(ad: Directory, tmp_path: Path) -> None:
    """On the command line, a leaver's account is planned, approved, disabled and audited."""
    jan = ad.user("Jan", attributes={"employeeID": "100001"})
    piet = ad.user("Piet", attributes={"employeeID": "100002"})
    ropa = write_ropa(ad, tmp_path)
    assert sweeper(tmp_path, "validate", str(ropa)).returncode == 0

    planned = sweeper(tmp_path, "plan", "--ropa", str(ropa))
    assert planned.returncode == 0, planned.stderr
    (report,) = (tmp_path / "state" / "reports").glob("plan-*.json")
    plan = json.loads(report.read_text())
    assert [(i["key"], i["action"]) for i in plan["items"]] == [(jan.key, "disable")]
    plan_id = plan["plan"]["id"]

    assert sweeper(tmp_path, "approve", plan_id, "--by", "fg").returncode == 0
    executed = sweeper(tmp_path, "execute", plan_id)
    assert executed.returncode == 0, executed.stderr + executed.stdout
    assert "disable 1" in executed.stdout

    def control(dn: str) -> int:
        entry = ad.read(dn, "userAccountControl")
        assert entry is not None
        return int(entry["userAccountControl"])

    assert (control(jan.dn) & 2, control(piet.dn) & 2) == (2, 0)
    assert sweeper(tmp_path, "audit", "verify").returncode == 0


def test_validate_names_a_filter_that_does_not_parse(ad: Directory, tmp_path: Path) -> None:
    """A raw filter that does not parse is an error with file, line and path; exit 2."""
    ropa = write_ropa(ad, tmp_path, filter="(department=4B")
    result = sweeper(tmp_path, "validate", str(ropa))
    assert result.returncode == 2
    assert "activities[0].locations[0].filter" in result.stdout + result.stderr
    assert "does not parse" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def _discovery_ropa(ad: Directory, tmp_path: Path, base: str, **location: object) -> Path:
    ropa = write_ropa(ad, tmp_path, **location)
    document = yaml.safe_load(ropa.read_text())
    document["discovery"] = {"targets": [{"system": "ad", "base": base}]}
    ropa.write_text(yaml.safe_dump(document, sort_keys=False))
    return ropa


def test_discover_lists_an_unregistered_ou_with_personal_data(
    ad: Directory, tmp_path: Path
) -> None:
    """sweeper discover prints the OU of leavers that no location covers as an unregistered
    finding, not the OU a location covers, and exits 0; no attribute value is printed."""
    pupils = ad.sub_ou("Leerlingen")
    ad.user("Jan", parent=pupils, attributes={"mail": "jan.devries@example.nl"})
    leavers = ad.sub_ou("Vertrokken")
    ad.user("Piet", parent=leavers, attributes={"mail": "piet.jansen@example.nl"})
    ropa = _discovery_ropa(ad, tmp_path, ad.ou, base_dn=pupils)
    result = sweeper(tmp_path, "discover", "--ropa", str(ropa))
    assert result.returncode == 0, result.stderr
    findings = result.stdout.split("systems", 1)[0]
    assert "unregistered" in findings and "OU=Vertrokken" in findings
    assert "OU=Leerlingen" not in findings
    assert "piet.jansen@example.nl" not in result.stdout + result.stderr


def test_discover_below_a_base_that_does_not_exist_fails_with_its_name(
    ad: Directory, tmp_path: Path
) -> None:
    """A discovery base DN that does not exist fails the system with a message naming it,
    exit 1, no traceback."""
    ropa = _discovery_ropa(ad, tmp_path, f"OU=Nergens,{ad.ou}")
    result = sweeper(tmp_path, "discover", "--ropa", str(ropa))
    assert result.returncode == 1
    assert "OU=Nergens" in result.stdout + result.stderr and "does not exist" in result.stdout
    assert "Traceback" not in result.stderr
