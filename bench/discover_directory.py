"""Benchmark: `sweeper discover` of a directory of 10,000 accounts in 20 OUs, and again with
the directory doubled (20,000 accounts in 40 OUs), in an OpenLDAP slapd on a free port of
127.0.0.1; wall time, CPU and peak RSS of each, against a baseline doing the bare LDAP reads
in the same run.

    .venv/bin/python bench/discover_directory.py [--accounts 10000] [--ous 20] [--dir DIR]

Baseline: an ldap3 script that reads what any discovery of the directory has to read: every
OU, every account's creation, last logon and lock state (paged), and one page of 100 accounts
with all their attributes per OU. The directory is built once in DIR and reused; slapd is
stopped at the end. Target: time linear in the directory, memory flat.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import ROOT, SWEEPER, Measurement, measure

sys.path.insert(0, str(ROOT / "tests" / "integration" / "directory"))
sys.path.insert(0, str(ROOT / "bench"))

import ldap3
from directory_servers import ADMIN_PASSWORD, SLAPD_BASE, SWEEPER_PASSWORD, Slapd, start_slapd
from discover import CPU, cpu_best_of

BASELINE = textwrap.dedent(
    """
    import sys
    import ldap3
    url, dn, password, base = sys.argv[1:5]
    conn = ldap3.Connection(ldap3.Server(url, get_info=ldap3.NONE), user=dn, password=password,
                            auto_bind=True, check_names=False)
    def paged(search_base, filt, attrs, scope=ldap3.SUBTREE, size=500, pages=None):
        cookie = None
        while True:
            conn.search(search_base, filt, scope, attributes=attrs, paged_size=size,
                        paged_cookie=cookie)
            yield from (e for e in conn.response if e["type"] == "searchResEntry")
            cookie = conn.result["controls"]["1.2.840.113556.1.4.319"]["value"]["cookie"]
            pages = None if pages is None else pages - 1
            if not cookie or pages == 0:
                return
    ous = [e["dn"] for e in paged(base, "(objectClass=organizationalUnit)", ["1.1"])]
    counts = {}
    for entry in paged(base, "(objectClass=inetOrgPerson)",
                       ["createTimestamp", "authTimestamp", "pwdAccountLockedTime"]):
        parent = entry["dn"].split(",", 1)[1]
        counts[parent] = counts.get(parent, 0) + 1
    for ou in ous:
        list(paged(ou, "(objectClass=inetOrgPerson)", ["*"], ldap3.LEVEL, size=100, pages=1))
    print(len(ous), sum(counts.values()))
    """
)


def build(server: Slapd, base: str, accounts: int, ous: int) -> None:
    """Make ``base`` hold ``ous`` OUs of ``accounts / ous`` accounts each (once): leavers with
    e-mail, student number, phone and postcode in every fifth OU, staff elsewhere."""
    admin = server.admin()
    admin.raise_exceptions = False
    admin.search(base, "(objectClass=inetOrgPerson)", attributes=["1.1"], paged_size=1000)
    if admin.result["result"] == 0 and admin.response:
        admin.unbind()
        return
    admin.add(base, ["organizationalUnit"])
    admin.unbind()
    print(f"adding {accounts} accounts in {ous} OUs to {base} ...", flush=True)
    start = time.perf_counter()
    conn = ldap3.Connection(
        ldap3.Server(server.url),
        user=server.admin_dn,
        password=ADMIN_PASSWORD,
        client_strategy=ldap3.ASYNC,
    )
    conn.bind()
    pending = []
    per = accounts // ous
    for o in range(ous):
        ou = f"ou=klas{o:03d},{base}"
        conn.get_response(conn.add(ou, ["organizationalUnit"]))
        for n in range(per):
            person = {"sn": f"Achternaam{n}", "givenName": f"Voornaam{n}"}
            if o % 5 == 0:
                person.update(
                    mail=f"leerling{o}.{n}@leerling.example.nl",
                    employeeNumber=f"{7000000 + o * per + n}",
                    mobile=f"06{48000000 + n:08d}",
                    postalCode=f"{1000 + n % 8999} AB",
                )
            pending.append(conn.add(f"cn=p{o:03d}-{n:05d},{ou}", ["inetOrgPerson"], person))
            if len(pending) >= 200:
                for message in pending:
                    conn.get_response(message)
                pending = []
    for message in pending:
        conn.get_response(message)
    conn.unbind()
    print(f"added in {time.perf_counter() - start:.0f} s", flush=True)


def run_size(server: Slapd, args: argparse.Namespace, scale: int) -> list[Measurement]:
    """Measure discovery at ``scale`` times the size (0: an empty OU, the fixed cost of a run)
    and the baseline."""
    base = f"ou=bench-{args.accounts * scale}-{args.ous * scale},{SLAPD_BASE}"
    if scale:
        build(server, base, args.accounts * scale, args.ous * scale)
    else:
        admin = server.admin()
        admin.raise_exceptions = False
        admin.add(base, ["organizationalUnit"])
        admin.unbind()
    work = args.dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    ropa = work / f"ropa-{scale}.yaml"
    ropa.write_text(
        "controller: {name: Bench, contact: {name: Bench}, dpo: {name: FG}}\n"
        "systems:\n"
        "  - {id: dir, name: Directory, kind: directory, owner: IT, connection: "
        f'{{servers: "{server.url}", tls: none, flavour: openldap, bind_dn: '
        f'"{server.sweeper_dn}", credential: directory, privileged_groups: []}}}}\n'
        f'discovery:\n  targets:\n    - {{system: dir, base: "{base}"}}\n'
    )
    env = {
        "SWEEPER_STATE_DIR": str(work / f"state-{scale}"),
        "SWEEPER_CREDENTIALS__DIRECTORY": SWEEPER_PASSWORD,
    }
    cmd = [*SWEEPER, "discover", "--ropa", str(ropa), "--limit", "1"]
    measure("warm-up", cmd, env=env)
    out = [cpu_best_of(3, f"sweeper discover x{scale}", cmd, env=env)]
    script = work / "baseline.py"
    script.write_text(BASELINE)
    baseline = [sys.executable, str(script), server.url, server.sweeper_dn, SWEEPER_PASSWORD, base]
    out.append(cpu_best_of(3, f"ldap3 reads x{scale}", baseline))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--ous", type=int, default=20)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "sweeper-bench-directory"
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    # The slapd database is kept in DIR, so the directory is built once.
    server = start_slapd(args.dir / "slapd", reuse=True)
    try:
        print(f"load before: {os.getloadavg()[0]:.2f}")
        sizes = [run_size(server, args, scale) for scale in (0, 1, 2)]
    finally:
        server.stop()
    for m in (m for size in sizes for m in size):
        print(f"{m}   CPU {CPU[m.label]:6.2f} s")
    (fixed, _), (one, base_one), (two, base_two) = sizes
    net = (two.seconds - fixed.seconds) / max(0.01, one.seconds - fixed.seconds)
    c0, c1, c2 = CPU[fixed.label], CPU[one.label], CPU[two.label]
    print(
        f"sweeper discover doubled: wall x{two.seconds / one.seconds:.2f} (less the empty "
        f"directory's x{net:.2f}), CPU x{c2 / c1:.2f} (less the empty directory's "
        f"x{(c2 - c0) / max(0.01, c1 - c0):.2f}); linear: x2.00; peak RSS "
        f"x{two.peak_rss_mb / one.peak_rss_mb:.2f} (flat: x1.00)"
    )
    for ours, base in ((one, base_one), (two, base_two)):
        print(f"{ours.label} / {base.label}: {ours.seconds / base.seconds:.2f}x")
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
