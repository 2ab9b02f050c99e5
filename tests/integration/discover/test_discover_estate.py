"""Discovery over a small real estate: a PostgreSQL database, a file share and an S3 account,
counted by hand.

The estate (``estate`` below):

========== ============================ ============== =============================
system     store                        registered by  holds
========== ============================ ============== =============================
sis (PG)   leerlingen                   pupils         names
sis (PG)   export_2019                  -              names, BSNs, dates of birth
sis (PG)   codes                        -              course codes (no personal data)
share      exports (its own files)      -              a CSV of pupils with BSNs
share      courses/wiskunde             -              anonymous course material
share      homes/jan                    homes          a CV
share      numbers (its own files)      -              nine-digit numbers failing the
                                                       eleven-test
s3         EXPORTS (its own objects)    -              a CSV of pupils with BSNs
s3         EXAMS/rec/2024/              exams          exam recordings
========== ============================ ============== =============================

The S3 account is moto's, reached through a proxy that gives each test an account of its own
(holding only its two buckets, EXPORTS and EXAMS, named at random); the ``s3`` system has no
base, so it discovers the whole account. The EXAMS bucket's own store holds no object and
does not count.

Activities: pupils (rule, location), homes (rule, location), exams (rule, location),
newsletter (no location): three of four enforceable. Stores: 9, registered 3. Stores with
personal data: 5, registered 2.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from bucket_store import CREDENTIAL, Proxy, Server
from bucket_store import Store as S3
from fileshare_tree import as_unprivileged
from sql_databases import pg_reader_role

from sweeper.coverage import coverage_history, latest_coverage
from sweeper.detect import bsn_valid
from sweeper.discover import (
    DiscoveryOptions,
    DiscoveryResult,
    decide,
    run_discovery,
    stored_finding,
)
from sweeper.ropa import load_ropa
from sweeper.settings import Settings, load_settings
from sweeper.store import Store, discovery_stores

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def _bsns(count: int, seed: int) -> list[str]:
    """Return ``count`` distinct numbers passing the eleven-test."""
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        candidate = f"{rng.randrange(10**8, 10**9):09d}"
        if bsn_valid(candidate):
            found.add(candidate)
    return sorted(found)


@dataclass
class Estate:
    ropa: Path
    settings: Settings
    store: Store
    schema: str
    values: list[str]  # every personal value in the estate: none may be kept anywhere
    share: Path
    proxy: Proxy  # the S3 account's endpoint
    exports: str  # the bucket with the exported CSV
    exams: str  # the bucket of the registered exam recordings

    def run(self, **kw: object) -> DiscoveryResult:
        options = DiscoveryOptions(
            now=NOW, created_by="fg", reports_dir=self.settings.reports_path, **kw
        )  # type: ignore[arg-type]
        return run_discovery(load_ropa(self.ropa), self.settings, self.store, options)


def _ropa(
    path: Path, url: str, schema: str, share: Path, extra: str = "", s3: str = "", exams: str = ""
) -> None:
    """Write the estate's RoPA; with ``s3`` (an endpoint) and ``exams`` (a bucket), with the
    S3 account and the exams activity."""
    bucket_system = (
        f"""  - id: s3
    name: Objectopslag
    kind: bucket
    owner: ICT
    connection: {{endpoint_url: "{s3}", addressing_style: path, credential: s3}}
"""
        if s3
        else ""
    )
    exams_activity = (
        f"""  - id: exams
    name: Examenopnames
    retention: {{period: P2Y, clock: modified, action: delete}}
    locations:
      - {{system: s3, bucket: "{exams}", prefix: rec/}}
"""
        if s3
        else ""
    )
    path.write_text(
        f"""
controller: {{name: Voorbeeldschool, contact: {{name: Administratie}}, dpo: {{name: FG}}}}
systems:
  - id: sis
    name: Leerlingadministratie
    kind: sql
    owner: Administratie
    connection:
      url: "{url}"
      connect_args: {{options: "-c search_path={schema}"}}
  - {{id: share, name: Fileserver, kind: fileshare, owner: ICT, connection: {{root: "{share}"}}}}
{bucket_system}{extra}
activities:
  - id: pupils
    name: Leerlingadministratie
    retention: {{period: P5Y, clock: {{column: created_at}}, action: delete}}
    locations:
      - {{system: sis, table: leerlingen, key: id}}
  - id: homes
    name: Thuismappen
    retention: {{period: P1Y, clock: modified, action: delete}}
    locations:
      - {{system: share, include: ["homes/**"]}}
{exams_activity}  - id: newsletter
    name: Nieuwsbrief
discovery:
  targets:
    - {{system: sis, schemas: ["{schema}"]}}
""",
        encoding="utf-8",
    )


@pytest.fixture
def estate(
    tmp_path: Path, pg_schema: tuple[str, sa.Engine], discovery_database: str, s3_server: Server
) -> Iterator[Estate]:
    schema, admin = pg_schema
    bsns = _bsns(300, seed=8)
    names = [f"Leerling{n:03d} Achternaam{n:03d}" for n in range(300)]
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE leerlingen (id int PRIMARY KEY, naam text, created_at timestamptz)"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE export_2019 "
                "(id int PRIMARY KEY, naam text, bsn text, geboortedatum date)"
            )
        )
        conn.execute(sa.text("CREATE TABLE codes (code text PRIMARY KEY, omschrijving text)"))
        for n in range(40):
            conn.execute(
                sa.text("INSERT INTO leerlingen VALUES (:n, :naam, :at)"),
                {"n": n, "naam": names[n], "at": datetime(2018, 9, 1, tzinfo=UTC)},
            )
            conn.execute(
                sa.text("INSERT INTO export_2019 VALUES (:n, :naam, :bsn, :dob)"),
                {
                    "n": n,
                    "naam": names[n],
                    "bsn": bsns[n],
                    "dob": date(2008, 1 + n % 12, 1 + n % 28),
                },
            )
        for n in range(5):
            conn.execute(
                sa.text("INSERT INTO codes VALUES (:c, :o)"), {"c": f"WI{n}", "o": f"Wiskunde {n}"}
            )
    share = tmp_path / "share"
    (share / "exports").mkdir(parents=True)
    rows = "".join(f"{names[100 + n]};{bsns[100 + n]};2008-05-0{1 + n % 9}\n" for n in range(150))
    (share / "exports" / "leerlingen 2019.csv").write_text("naam;bsn;geboortedatum\n" + rows)
    lessons = share / "courses" / "wiskunde"
    lessons.mkdir(parents=True)
    for n in range(12):
        (lessons / f"les {n}.txt").write_text(
            "Breuken: 1/2 + 1/3 = 5/6. Opgave 12 op bladzijde 34.\n" * 30
        )
    (share / "homes" / "jan").mkdir(parents=True)
    (share / "homes" / "jan" / "cv.txt").write_text(f"Curriculum vitae {names[299]}\n")
    (share / "numbers").mkdir()
    failing = [f"{100000000 + n * 7919:09d}" for n in range(300)]
    failing = [f for f in failing if not bsn_valid(f)][:40]
    (share / "numbers" / "lijst.csv").write_text("nummer\n" + "".join(f"{f}\n" for f in failing))
    proxy = Proxy(s3_server.endpoint, account=f"{random.randrange(10**11, 10**12)}")
    with proxy:
        s3 = S3(proxy.endpoint)
        exports, exams = s3.bucket(), s3.bucket()
        csv = "".join(f"{names[200 + n]};{bsns[200 + n]}\n" for n in range(60))
        s3.put(exports, "leerlingen 2019.csv", ("naam;bsn\n" + csv).encode())
        for n in range(3):
            s3.put(exams, f"rec/2024/{100000 + n}.mp4", b"\0" * 64)
        ropa = tmp_path / "ropa.yaml"
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{discovery_database}"
        _ropa(ropa, url, schema, share, s3=proxy.endpoint, exams=exams)
        settings = load_settings(None, state_dir=tmp_path / "state", credentials={"s3": CREDENTIAL})
        store = Store.open(settings.state_database_url)
        values = bsns + names + failing
        yield Estate(ropa, settings, store, schema, values, share, proxy, exports, exams)
        store.close()


def test_unregistered_personal_data_is_ranked_above_anonymous_material(estate: Estate) -> None:
    """The exported CSV of pupils with BSNs on the share, the unregistered table and the
    unregistered bucket holding such a CSV rank above the folder of course material, which
    scores nothing; registered stores are no findings."""
    result = estate.run()
    assert result.complete
    ranked = [(f.system, f.where) for f in result.findings]
    courses = ranked.index(("share", "courses/wiskunde"))
    assert ranked.index(("share", "exports")) < courses
    assert ranked.index(("sis", f"{estate.schema}.export_2019")) < courses
    assert ranked.index(("s3", estate.exports)) < courses
    by_where = {f.where: f for f in result.findings}
    assert by_where["exports"].tally.hits["bsn"].values == 100  # the sample's 100 rows
    assert by_where["exports"].estimated == 150  # the rows of the whole file
    assert by_where[f"{estate.schema}.export_2019"].tally.hits["bsn"].values == 40
    bucket = by_where[estate.exports]
    assert (bucket.kind, bucket.finding) == ("bucket", "unregistered")
    assert bucket.tally.hits["bsn"].values == 60 and bucket.estimated == 60
    assert by_where["courses/wiskunde"].score == 0
    assert ("share", "homes/jan") not in ranked
    assert ("sis", f"{estate.schema}.leerlingen") not in ranked
    assert ("s3", f"{estate.exams}/rec/2024/") not in ranked


def test_numbers_failing_the_eleven_test_are_not_counted_as_bsns(estate: Estate) -> None:
    """A file of nine-digit numbers that fail the eleven-test holds no BSN, and no personal
    data at all."""
    result = estate.run()
    numbers = next(s for s in result.stores if s.where == "numbers")
    assert "bsn" not in numbers.tally.hits
    assert not numbers.personal_data


def test_coverage_matches_the_hand_count(estate: Estate) -> None:
    """Activities 3 of 4 enforceable, stores 3 of 9 registered, stores with personal data 2
    of 5 registered; stored per run and read back as the trend."""
    first = estate.run()
    coverage = first.coverage
    assert (coverage.activities_enforceable, coverage.activities) == (3, 4)
    assert (coverage.stores_registered, coverage.stores) == (3, 9)
    assert (coverage.personal_stores_registered, coverage.personal_stores) == (2, 5)
    assert coverage.stores_partial == 0 and coverage.uninspectable == 0
    assert coverage.legacy_systems_with_data == 0
    second = estate.run()
    assert latest_coverage(estate.store) == second.coverage
    assert [c.run_id for c in coverage_history(estate.store)] == [first.run_id, second.run_id]


def test_findings_never_hold_a_full_value(estate: Estate) -> None:
    """No personal value of the estate is in the stored rows, the JSON report or the audit
    log; masked examples are."""
    result = estate.run()
    with estate.store.engine.connect() as conn:
        stored = json.dumps(
            [list(r) for r in conn.execute(sa.select(discovery_stores))], default=str
        )
    assert result.report is not None
    report = result.report.read_text(encoding="utf-8")
    audit = "".join(p.read_text() for p in estate.settings.audit_path.glob("*.jsonl"))
    assert '"*' in report or "**" in report  # masked examples are there
    for text in (stored, report, audit):
        for value in estate.values:
            assert value not in text


def test_an_acknowledged_finding_stops_appearing_until_it_holds_more(estate: Estate) -> None:
    """An acknowledged finding is left out of the next run's findings (still counted in the
    coverage); it comes back when its store holds a kind of data it did not hold before."""
    first = estate.run()
    codes = next(f for f in first.findings if f.where.endswith(".codes"))
    record = stored_finding(estate.store, codes.id)
    decide(
        estate.store,
        estate.settings,
        record,
        decision="acknowledged",
        by="fg",
        reason="codes",
        now=NOW,
    )
    second = estate.run()
    assert codes.id not in {f.id for f in second.findings}
    assert second.coverage.stores_registered == first.coverage.stores_registered
    _, admin = _admin(estate)
    with admin.begin() as conn:
        conn.execute(sa.text("INSERT INTO codes VALUES ('X', 'contact: jan.devries@example.nl')"))
    admin.dispose()
    third = estate.run()
    back = next(f for f in third.findings if f.id == codes.id)
    assert back.status == "new" and "email" in (back.note or "")
    audit = "".join(p.read_text() for p in estate.settings.audit_path.glob("*.jsonl"))
    assert '"event":"discovery_acknowledged"' in audit


def _with_system(text: str, target: str, system: str) -> str:
    """The RoPA's text with one more system (``system``, a YAML flow mapping) and, first in
    discovery.targets, ``target`` for it."""
    text = text.replace("discovery:\n  targets:\n", f"discovery:\n  targets:\n    - {target}\n")
    return text.replace("activities:", f"  - {system}\nactivities:", 1)


def _server(root: Path) -> str:
    """A discovery-only file share system on ``root``."""
    return (
        "{id: server, name: Hele server, kind: fileshare, owner: ICT, "
        f'connection: {{root: "{root}"}}}}'
    )


def _account(estate: Estate) -> str:
    """A discovery-only bucket system for the whole S3 account."""
    return (
        f"{{id: account, name: S3-account, kind: bucket, owner: ICT, connection: "
        f'{{endpoint_url: "{estate.proxy.endpoint}", addressing_style: path, credential: s3}}}}'
    )


def _admin(estate: Estate) -> tuple[str, sa.Engine]:
    url = load_ropa(estate.ropa).ropa.system("sis").connection.url  # type: ignore[union-attr]
    engine = sa.create_engine(url, connect_args={"options": f"-c search_path={estate.schema}"})
    return estate.schema, engine


def test_a_share_root_and_a_share_on_a_folder_of_it_are_discovered_once(
    estate: Estate, tmp_path: Path
) -> None:
    """A discovery-only target on the share's parent folder skips the share, which is
    discovered by its own system, and its other folders are unregistered."""
    (tmp_path / "elders" / "oud").mkdir(parents=True)
    (tmp_path / "elders" / "oud" / "adressen.csv").write_text("naam;adres\nA;B\n")
    text = _with_system(estate.ropa.read_text(), "{system: server, depth: 2}", _server(tmp_path))
    estate.ropa.write_text(text)
    result = estate.run()
    server = [s.where for s in result.stores if s.system == "server"]
    assert "elders/oud" in server
    assert not any(w.startswith("share") for w in server)  # the share is its own system's
    assert [s.where for s in result.stores if s.system == "share" and s.where == "homes/jan"]


def test_a_decommissioned_system_still_holding_data_is_counted(
    estate: Estate, tmp_path: Path
) -> None:
    """A decommissioned system that answers and holds data counts as a legacy system with
    data in the coverage."""
    old = tmp_path / "oude-server"
    old.mkdir()
    (old / "leerlingen.csv").write_text("naam\nA\n")
    text = estate.ropa.read_text().replace(
        "activities:",
        f"  - {{id: old, name: Oude server, kind: fileshare, owner: ICT, "
        f"status: decommissioned, decommissioned_on: 2020-07-31, "
        f'connection: {{root: "{old}"}}}}\nactivities:',
        1,
    )
    estate.ropa.write_text(text)
    coverage = estate.run().coverage
    assert coverage.legacy_systems_with_data == 1
    assert coverage.legacy_systems[0]["system"] == "old"
    assert coverage.legacy_systems[0]["items"] == 1


def test_a_table_the_login_cannot_read_is_an_uninspectable_finding(
    tmp_path: Path, discovery_database: str
) -> None:
    """Discovery with a PostgreSQL role that may not SELECT a table reports that table as a
    finding of its own ('uninspectable'), ranked by what its column names tell, and goes on."""
    with pg_reader_role(discovery_database) as (role, schema):
        ropa = tmp_path / "ropa.yaml"
        url = f"postgresql+psycopg://{role}@127.0.0.1:5432/{discovery_database}"
        share = tmp_path / "share"
        share.mkdir()
        _ropa(ropa, url, schema, share)
        settings = load_settings(None, state_dir=tmp_path / "state")
        store = Store.open(settings.state_database_url)
        try:
            result = run_discovery(load_ropa(ropa), settings, store, DiscoveryOptions(now=NOW))
        finally:
            store.close()
    assert result.complete
    secret = next(f for f in result.findings if f.where == f"{schema}.secret")
    assert secret.finding == "uninspectable"
    assert "cannot be read" in secret.problems[0]
    assert "bsn" in secret.tally.hits and secret.tally.hits["bsn"].values == 0
    assert secret.score > 0
    assert result.coverage.uninspectable == 1


def test_a_folder_whose_every_file_was_sampled_is_judged_by_its_files(estate: Estate) -> None:
    """A pattern like **/*.txt covers a folder holding only .txt files entirely, and a folder
    in which no file matches not at all, once every file of it was sampled."""
    estate.ropa.write_text(
        estate.ropa.read_text().replace(
            'include: ["homes/**"]', 'include: ["**/cv.txt", "numbers/*.pdf"]'
        )
    )
    result = estate.run()
    by_where = {s.where: s for s in result.stores if s.system == "share"}
    assert by_where["homes/jan"].registration == "registered"
    assert by_where["numbers"].registration == "unregistered"


def test_an_unreadable_folder_is_a_finding_of_its_own_and_the_run_goes_on() -> None:
    """A folder the sweeper's user cannot list is an 'uninspectable' finding; the rest of the
    share is discovered and the run completes."""
    base = Path(tempfile.mkdtemp(prefix="discover-test-"))
    try:
        base.chmod(0o777)
        share = base / "share"
        (share / "open").mkdir(parents=True)
        (share / "open" / "a.txt").write_text("x")
        (share / "closed").mkdir()
        (share / "closed" / "b.csv").write_text("bsn\n123456782\n")
        for path in (share, share / "open", share / "closed"):
            path.chmod(0o755)
        (share / "open" / "a.txt").chmod(0o644)
        ropa = base / "ropa.yaml"
        ropa.write_text(
            "controller: {name: S, contact: {name: A}}\n"
            "systems:\n"
            f'  - {{id: share, name: S, kind: fileshare, connection: {{root: "{share}"}}}}\n'
        )
        ropa.chmod(0o644)
        # A first run here loads every module a run needs: the child that drops its
        # privileges below may not read the interpreter's files.
        warm = load_settings(None, state_dir=base / "warm-up")
        warm_store = Store.open(warm.state_database_url)
        run_discovery(load_ropa(ropa), warm, warm_store, DiscoveryOptions(now=NOW))
        warm_store.close()
        (share / "closed").chmod(0)

        def discover_unprivileged() -> tuple[bool, list[tuple[str | None, str]]]:
            settings = load_settings(None, state_dir=base / "state")
            store = Store.open(settings.state_database_url)
            try:
                result = run_discovery(load_ropa(ropa), settings, store, DiscoveryOptions(now=NOW))
            finally:
                store.close()
            return result.complete, [(f.finding, f.where) for f in result.findings]

        complete, findings = as_unprivileged(discover_unprivileged)
        assert complete
        assert findings == [("uninspectable", "closed"), ("unregistered", "open")]
    finally:
        (base / "share" / "closed").chmod(0o755)
        shutil.rmtree(base)


def test_a_bucket_without_list_rights_is_an_uninspectable_finding(estate: Estate) -> None:
    """A bucket the credentials may not list is a finding of its own ('uninspectable', ranked
    above what was inspected and found clean); the run completes."""
    estate.proxy.denied.add(estate.exports)
    result = estate.run()
    assert result.complete
    closed = next(f for f in result.findings if f.where == estate.exports)
    assert (closed.kind, closed.finding, closed.inspected) == ("bucket", "uninspectable", False)
    assert "access denied" in closed.problems[0]
    assert closed.score > 0
    assert result.coverage.uninspectable == 1


def test_a_discovery_only_system_for_the_whole_account_finds_what_others_register(
    estate: Estate,
) -> None:
    """A discovery-only system for the S3 account discovers every bucket (the activity's
    system, on the same endpoint, does not discover them again); the exams prefix counts as
    registered by the activity's location and the export bucket is unregistered."""
    text = _with_system(estate.ropa.read_text(), "{system: account, depth: 1}", _account(estate))
    estate.ropa.write_text(text)
    result = estate.run()
    outcomes = {s.system: s.outcome for s in result.systems}
    assert (outcomes["account"], outcomes["s3"]) == ("discovered", "same_place")
    stores = {s.where: s for s in result.stores if s.kind in ("bucket", "prefix")}
    assert {s.system for s in stores.values()} == {"account"}
    exams = stores[f"{estate.exams}/rec/"]  # depth 1: the whole prefix
    assert exams.registration == "registered"
    assert exams.covered_by == [f"exams:s3:{estate.exams}/rec/"]
    assert stores[estate.exports].finding == "unregistered"


def test_a_share_root_does_not_list_another_systems_quarantine(
    estate: Estate, tmp_path: Path
) -> None:
    """The share's quarantine root lies in the parent folder a discovery-only target walks:
    the quarantined files (the sweeper's own, purged after the grace period) are not listed as
    an unregistered store; the parent's other folders are."""
    held = tmp_path / "quarantaine" / "share" / "exports"
    held.mkdir(parents=True)
    (held / "leerlingen 2017.csv").write_text(
        "naam;bsn\n"
        + (estate.share / "exports" / "leerlingen 2019.csv").read_text().split("\n", 1)[1]
    )
    (tmp_path / "elders").mkdir()
    (tmp_path / "elders" / "adressen.csv").write_text("naam;adres\nA;B\n")
    quarantine = tmp_path / "quarantaine" / "share"
    text = estate.ropa.read_text().replace(
        f'connection: {{root: "{estate.share}"}}',
        f'connection: {{root: "{estate.share}", quarantine_root: "{quarantine}"}}',
    )
    text = _with_system(text, "{system: server, depth: 3}", _server(tmp_path))
    assert "quarantine_root" in text
    estate.ropa.write_text(text)
    result = estate.run()
    server = [s.where for s in result.stores if s.system == "server"]
    assert "elders" in server
    assert not [w for w in server if w.startswith("quarantaine")], server


def test_an_account_wide_discovery_does_not_list_another_systems_quarantine(
    estate: Estate,
) -> None:
    """The bucket system's quarantine prefix, in the export bucket, is not listed by the
    discovery-only system for the whole account; the bucket's other objects are."""
    s3 = S3(estate.proxy.endpoint)
    s3.put(estate.exports, "quarantaine/exams/rec/2019/1.mp4", b"\0" * 64)
    text = estate.ropa.read_text().replace(
        "addressing_style: path, credential: s3}",
        f'addressing_style: path, credential: s3, quarantine: {{bucket: "{estate.exports}", '
        'prefix: "quarantaine/"}}',
        1,
    )
    text = _with_system(text, "{system: account, depth: 1}", _account(estate))
    assert "quarantaine/" in text
    estate.ropa.write_text(text)
    result = estate.run()
    stores = {s.where: s for s in result.stores if s.system == "account"}
    assert estate.exports in stores
    assert f"{estate.exports}/quarantaine/" not in stores, sorted(stores)
    assert stores[estate.exports].items == 1  # the export, not the quarantined recording


def test_an_empty_store_is_no_finding_until_something_is_in_it(estate: Estate) -> None:
    """An unregistered empty table is in the report as unregistered but is no finding and
    does not count in the coverage; once it holds a row it is a finding and counts."""
    _, admin = _admin(estate)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leeg (id int PRIMARY KEY, naam text)"))
    first = estate.run()
    [empty] = [s for s in first.stores if s.where.endswith("leeg")]
    assert (empty.items, empty.registration, empty.finding) == (0, "unregistered", None)
    assert empty not in first.findings
    report = json.loads(Path(first.report).read_text())
    assert [s["finding"] for s in report["stores"] if s["where"].endswith("leeg")] == [None]
    assert not [s for s in report["findings"] if s["where"].endswith("leeg")]
    with admin.begin() as conn:
        conn.execute(sa.text("INSERT INTO leeg VALUES (1, 'Leerling Achternaam')"))
    second = estate.run()
    [filled] = [s for s in second.findings if s.where.endswith("leeg")]
    assert filled.finding == "unregistered"
    assert second.coverage.stores == first.coverage.stores + 1
    admin.dispose()
