"""Benchmark: a complete `sweeper plan` of 10,000 Active Directory accounts (a Samba AD DC on
127.0.0.1, LDAPS) against a hand-written ldap3 paged search that reads the same entries and
attributes and writes the due ones to a CSV file, and against
`ldapsearch -E pr=1000/noprompt` (the protocol's own limit, from C). Then the LDAP requests
per 1,000 accounts acted on: a staged delete disables them, a second plan deletes them.

    .venv/bin/python bench/plan_directory.py [--accounts 10000] [--folder DIR]

The DC is provisioned in DIR (default: a folder under the system's temporary directory) and
reused by later runs, with its accounts (adding 10,000 takes a minute or two). It listens on
127.0.0.1:389 and :636, which must be free; it is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import ROOT, SWEEPER, best_of, report

sys.path.insert(0, str(ROOT / "tests" / "integration" / "directory"))

import ldap3
from directory_servers import (
    ADMIN_PASSWORD,
    SWEEPER_PASSWORD,
    SambaDC,
    start_samba,
)

from connectors.directory import DirectoryConnector, from_ad_time

EXPIRED = from_ad_time(datetime(2024, 1, 1, tzinfo=UTC))  # due under P1Y
LATER = from_ad_time(datetime(2031, 1, 1, tzinfo=UTC))
ATTRIBUTES = [
    "objectGUID",
    "uSNChanged",
    "accountExpires",
    "employeeID",
    "sAMAccountName",
    "userAccountControl",
    "objectSid",
]
FILTER = "(&(objectClass=user)(!(objectClass=computer)))"

BASELINE = textwrap.dedent(
    """
    import csv, ssl, sys, uuid
    from datetime import datetime, timedelta, timezone
    import ldap3
    base, ca, password, out = sys.argv[1:5]
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca, valid_names=["DC1.school.test"])
    server = ldap3.Server("ldaps://127.0.0.1:636", use_ssl=True, tls=tls)
    conn = ldap3.Connection(server, user="CN=sweeper,CN=Users,DC=school,DC=test",
                            password=password, auto_bind=True)
    cutoff = datetime.now(timezone.utc) - timedelta(days=365)
    epoch = datetime(1601, 1, 1, tzinfo=timezone.utc)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        cookie = None
        while True:
            conn.search(base, %(filter)r, attributes=%(attributes)r,
                        paged_size=1000, paged_cookie=cookie)
            for entry in conn.response:
                if entry.get("type") != "searchResEntry":
                    continue
                raw = entry["raw_attributes"]
                expires = epoch + timedelta(microseconds=int(raw["accountExpires"][0]) // 10)
                if expires <= cutoff:
                    writer.writerow([str(uuid.UUID(bytes_le=raw["objectGUID"][0])),
                                     raw["employeeID"][0].decode(), expires.isoformat(),
                                     raw["uSNChanged"][0].decode()])
            cookie = conn.result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
            if not cookie:
                break
    """
) % {"filter": FILTER, "attributes": ATTRIBUTES}


def ensure_accounts(dc: SambaDC, ou: str, count: int, prefix: str, *, all_due: bool) -> None:
    """Make ``ou`` hold exactly ``count`` accounts: all expired (due under P1Y), or every
    other one."""
    with dc.admin() as conn:
        conn.raise_exceptions = False
        if _count(conn, ou) == count:
            return
        conn.delete(ou, controls=[("1.2.840.113556.1.4.805", True, None)])  # tree delete
        conn.add(ou, ["organizationalUnit"])
    print(f"adding {count} accounts to {ou} ...", flush=True)
    start = time.perf_counter()
    server = ldap3.Server("ldaps://127.0.0.1:636", use_ssl=True, tls=dc.tls())
    conn = ldap3.Connection(
        server, user=dc.admin_dn, password=ADMIN_PASSWORD, client_strategy=ldap3.ASYNC
    )
    conn.bind()
    pending = []
    for n in range(count):
        expires = EXPIRED if all_due or n % 2 == 0 else LATER
        attributes = {
            "sAMAccountName": f"{prefix}{n:06d}",
            "userAccountControl": "544",
            "employeeID": str(100000 + n),
            "accountExpires": str(expires),
        }
        pending.append(
            conn.add(
                f"CN={prefix}{n:06d},{ou}",
                ["top", "person", "organizationalPerson", "user"],
                attributes,
            )
        )
        if len(pending) >= 200:  # pipelined, a few hundred requests in flight
            for message in pending:
                conn.get_response(message)
            pending = []
    for message in pending:
        conn.get_response(message)
    conn.unbind()
    print(f"added in {time.perf_counter() - start:.0f} s", flush=True)


def _count(conn: ldap3.Connection, ou: str) -> int:
    """Return the accounts in ``ou`` (0 if it does not exist)."""
    total, cookie = 0, None
    while True:
        conn.search(
            ou, "(objectClass=user)", attributes=["1.1"], paged_size=1000, paged_cookie=cookie
        )
        if conn.result["result"] != 0:
            return 0
        total += len([e for e in conn.response if e["type"] == "searchResEntry"])
        control = conn.result.get("controls", {}).get("1.2.840.113556.1.4.319")
        cookie = control["value"]["cookie"] if control else None
        if not cookie:
            return total


def write_ropa(folder: Path, dc: SambaDC, ou: str, disabled_for: str = "P30D") -> Path:
    connection = {**dc.connection(), "page_size": 1000}
    ropa = {
        "controller": {"name": "School", "contact": {"name": "Office"}, "dpo": {"name": "FG"}},
        "timezone": "UTC",
        "systems": [
            {"id": "ad", "name": "AD", "kind": "directory", "owner": "IT", "connection": connection}
        ],
        "activities": [
            {
                "id": "accounts",
                "name": "Pupil accounts",
                "retention": {
                    "period": "P1Y",
                    "clock": {"attribute": "accountExpires"},
                    "action": "delete",
                    "limits": {"max_fraction": 1},
                },
                "locations": [
                    {
                        "system": "ad",
                        "base_dn": ou,
                        "subject": "employeeID",
                        "report": ["sAMAccountName"],
                        "disabled_for": disabled_for,
                    }
                ],
            }
        ],
    }
    path = folder / f"ropa-{abs(hash(ou))}.yaml"
    path.write_text(json.dumps(ropa))
    return path


def requests_per_thousand(folder: Path, dc: SambaDC, ou: str) -> tuple[int, int]:
    """Plan and execute a staged delete of 1,000 accounts twice (disable, then delete);
    return the LDAP requests each execution sent (binds and reads included)."""
    from pydantic import SecretStr

    from sweeper import approve as approval
    from sweeper import execute as execution
    from sweeper.audit import AuditLog
    from sweeper.plan import PlanOptions, build_plan
    from sweeper.ropa import load_ropa
    from sweeper.settings import Settings
    from sweeper.store import Store

    made: list[DirectoryConnector] = []

    class Counted(DirectoryConnector):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    execution.connector_class = lambda kind: Counted  # type: ignore[assignment]
    path = write_ropa(folder, dc, ou, disabled_for="P0D")
    settings = Settings(
        state_dir=folder / "state-acted", credentials={"directory": SecretStr(SWEEPER_PASSWORD)}
    )
    store = Store.open(settings.state_database_url)
    counts = []
    for step in range(2):
        now = datetime.now(UTC) + timedelta(seconds=step)
        loaded = load_ropa(path)
        plan = build_plan(loaded, settings, store, PlanOptions(now=now, created_by="bench"))
        approval.approve(
            store,
            store.plan(plan.plan_id),
            settings,
            by="fg",
            note=None,
            only=(),
            now=now,
            current_digest=loaded.digest,
            audit=AuditLog.open(settings, store),
        )
        made.clear()
        result = execution.execute(
            loaded, settings, store, plan.plan_id, execution.ExecuteOptions(now=now, actor="bench")
        )
        assert result.total("done") == 1000, result.locations
        counts.append(sum(c.round_trips for c in made))
    store.close()
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "ropa-sweeper-bench-samba"
    )
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    dc = start_samba(args.folder, reuse=True)
    try:
        base = f"OU=Bench,{dc.base}"
        ensure_accounts(dc, base, args.accounts, "p", all_due=False)
        acted = f"OU=Acted,{dc.base}"
        ensure_accounts(dc, acted, 1000, "a", all_due=True)  # deleted by the last step
        run = Path(tempfile.mkdtemp(prefix="bench-directory-"))
        ropa = write_ropa(run, dc, base)
        env = {
            "SWEEPER_STATE_DIR": str(run / "state"),
            "SWEEPER_CREDENTIALS__DIRECTORY": SWEEPER_PASSWORD,
        }
        print(f"load before: {os.getloadavg()[0]:.2f}")
        baseline = best_of(
            3,
            "ldap3 paged search -> CSV",
            [
                sys.executable,
                "-c",
                BASELINE,
                base,
                str(dc.ca_file),
                SWEEPER_PASSWORD,
                str(run / "baseline.csv"),
            ],
        )
        ours = best_of(3, "sweeper plan", [*SWEEPER, "plan", "--ropa", str(ropa)], env=env)
        ldapsearch = shutil.which("ldapsearch")
        others = []
        if ldapsearch:
            others.append(
                best_of(
                    3,
                    "ldapsearch -E pr=1000/noprompt",
                    [
                        ldapsearch,
                        "-LLL",
                        "-x",
                        "-H",
                        "ldaps://127.0.0.1:636",
                        "-D",
                        dc.sweeper_dn,
                        "-w",
                        SWEEPER_PASSWORD,
                        "-E",
                        "pr=1000/noprompt",
                        "-b",
                        base,
                        FILTER,
                        *ATTRIBUTES,
                    ],
                    stdout_path=run / "ldapsearch.ldif",
                    # The DC's certificate names DC1.school.test, not 127.0.0.1: ldapsearch has
                    # no tls_server_name, so it checks the chain but not the name.
                    env={"LDAPTLS_CACERT": str(dc.ca_file), "LDAPTLS_REQCERT": "allow"},
                )
            )
        report(baseline, ours, *others, target=1.3)
        disable, delete = requests_per_thousand(run, dc, acted)
        print(f"LDAP requests per 1,000 accounts acted on: disable {disable}, delete {delete}")
        print(f"load after: {os.getloadavg()[0]:.2f}")
    finally:
        dc.stop()


if __name__ == "__main__":
    main()
