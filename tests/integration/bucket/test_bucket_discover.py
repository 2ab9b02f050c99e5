"""Discovery on moto's S3 server: buckets and prefixes with counts, bytes and ages; bounded
samples read with ranged GETs; which locations cover which stores."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from bucket_store import NOW, Proxy, Store, connector, location

from connectors.base import (
    FULL,
    NONE,
    PARTIAL,
    DiscoveredStore,
    DiscoverRequest,
    Sample,
    SampleRequest,
    ScanFinding,
)
from connectors.bucket import BucketConnector


def discover(
    conn: BucketConnector, **request: Any
) -> tuple[dict[str, DiscoveredStore], list[ScanFinding]]:
    found = list(conn.discover(DiscoverRequest(now=NOW, **request)))
    stores = {s.where: s for s in found if isinstance(s, DiscoveredStore)}
    return stores, [f for f in found if isinstance(f, ScanFinding)]


def sample(conn: BucketConnector, store: DiscoveredStore, **bounds: Any) -> list[Sample]:
    out = list(conn.sample(SampleRequest(store=store, **bounds)))
    assert all(isinstance(s, Sample) for s in out), out
    return out  # type: ignore[return-value]


def test_each_object_counts_in_one_store_down_to_the_depth(store: Store) -> None:
    """At depth 1 the bucket's own store holds the objects directly in it and a top-level
    prefix everything below it, with objects, bytes, ages and stale counts."""
    bucket = store.bucket()
    store.put(bucket, "exports/2019/a.csv", b"12345", age=timedelta(days=900))
    store.put(bucket, "exports/2024/b.csv", b"1")
    store.put(bucket, "readme.txt", b"12")
    with connector(store.endpoint) as conn:
        stores, findings = discover(conn, depth=1, base=bucket)
    assert set(stores) == {bucket, f"{bucket}/exports/"} and not findings
    own = stores[bucket]
    assert (own.kind, own.items, own.size, own.stale) == ("bucket", 1, 2, 0)
    assert own.details is not None and own.details["extent"] == "objects"
    prefix = stores[f"{bucket}/exports/"]
    assert (prefix.kind, prefix.items, prefix.size, prefix.stale) == ("prefix", 2, 6, 1)
    assert prefix.details is not None and prefix.details["extent"] == "subtree"
    assert prefix.oldest is not None and prefix.oldest < NOW - timedelta(days=800)


def test_a_listing_reports_each_page_of_objects_as_it_comes_in(store: Store) -> None:
    """listed hears of each page of the listing before any store is given, so that a long
    listing shows progress; the counts add up to the bucket's objects."""
    bucket = store.bucket()
    store.put_many(bucket, [f"exports/{i:04d}.csv" for i in range(2500)], age=None)
    heard: list[tuple[int, int]] = []  # (objects, stores given so far)
    given: list[DiscoveredStore] = []
    with connector(store.endpoint) as conn:
        request = DiscoverRequest(
            now=NOW, base=bucket, listed=lambda n: heard.append((n, len(given)))
        )
        for out in conn.discover(request):
            if isinstance(out, DiscoveredStore):
                given.append(out)
    assert heard == [(1000, 0), (1000, 0), (500, 0)]


def test_a_prefix_above_the_depth_holds_only_its_own_objects(store: Store) -> None:
    """At depth 2 a top-level prefix counts the objects directly in it; its sub-prefixes are
    stores of their own."""
    bucket = store.bucket()
    for key in ("exports/list.csv", "exports/2019/a.csv", "exports/2019/deep/b.csv"):
        store.put(bucket, key)
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, depth=2, base=bucket)
    counts = {where: s.items for where, s in stores.items()}
    assert counts == {bucket: 0, f"{bucket}/exports/": 1, f"{bucket}/exports/2019/": 2}


def test_a_versioned_bucket_counts_the_versions_behind_a_delete_marker(store: Store) -> None:
    """Every version holding data counts, also behind a delete marker, with the noncurrent
    versions and delete markers named."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "old.csv", b"v1")
    store.put(bucket, "old.csv", b"v2-")
    store.delete_marker(bucket, "old.csv")
    store.put(bucket, "new.csv", b"x")
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, base=bucket)
    own = stores[bucket]
    assert (own.items, own.size) == (3, 6)
    assert own.details is not None
    assert (own.details["noncurrent_versions"], own.details["delete_markers"]) == (2, 1)
    assert own.details["versioning"] is True


def test_a_bucket_that_cannot_be_listed_is_uninspectable(store: Store) -> None:
    """A bucket that denies listing is a store that could not be read, with an
    'uninspectable' finding; the other buckets are listed."""
    open_bucket, closed = store.bucket(), store.bucket()
    store.put(open_bucket, "x")
    with Proxy(store.endpoint) as proxy:
        proxy.denied.add(closed)
        with connector(proxy.endpoint) as conn:
            stores, findings = discover(conn)
    assert [(f.kind, f.where) for f in findings] == [("uninspectable", closed)]
    assert "access denied" in findings[0].message
    assert stores[closed].details == {"readable": False}
    assert stores[open_bucket].items == 1


def test_credentials_that_may_not_list_buckets_discover_their_locations_buckets(
    store: Store,
) -> None:
    """Without s3:ListAllMyBuckets the buckets the system's locations name are discovered,
    and the listing is an 'uninspectable' finding of its own."""
    named, other = store.bucket(), store.bucket()
    store.put(named, "a.csv")
    store.put(other, "b.csv")
    with Proxy(store.endpoint) as proxy:
        proxy.denied.add("")
        with connector(proxy.endpoint) as conn:
            stores, findings = discover(conn, options={"buckets": [named]})
    assert set(stores) == {named}
    [finding] = findings
    assert finding.where == "(all buckets)" and named in finding.message


def test_excluded_prefixes_skipped_places_and_the_quarantine_are_not_listed(
    store: Store,
) -> None:
    """Objects under an excluded prefix, under a place another system discovers and in the
    system's own quarantine count in no store."""
    bucket = store.bucket()
    for key in ("keep/a.csv", "tmp/b.csv", "other/c.csv", "q/keep/d.csv", "e.csv"):
        store.put(bucket, key)
    with connector(store.endpoint, quarantine={"bucket": bucket, "prefix": "q/"}) as conn:
        skip = (*conn.scope(DiscoverRequest(now=NOW, base=f"{bucket}/other/")),)
        stores, _ = discover(conn, depth=1, base=bucket, exclude=("*/tmp",), skip=(skip,))
    assert {where: s.items for where, s in stores.items()} == {bucket: 1, f"{bucket}/keep/": 1}


def test_a_csv_is_read_with_a_range_up_to_the_byte_bound(store: Store) -> None:
    """A CSV larger than the byte bound is read up to it: whole lines only, as a fraction of
    the object that extrapolates to all of it."""
    bucket = store.bucket()
    body = "naam;bsn\n" + "".join(f"Leerling {n:04d};{n:09d}\n" for n in range(2000))
    store.put(bucket, "export.csv", body.encode())
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, base=bucket)
        [got] = sample(conn, stores[bucket], rows=100_000, bytes=4096)
    assert got.where == f"{bucket}/export.csv" and got.name == "export.csv"
    assert 100 < len(got.rows) < 300
    assert sum(len(";".join(r)) + 1 for r in got.rows) <= 4096
    assert got.fraction is not None and abs(got.fraction - 4096 / len(body)) < 0.01


def test_objects_of_other_types_are_judged_by_name_and_size(store: Store) -> None:
    """A PDF is not read: it comes with its name and size only."""
    bucket = store.bucket()
    store.put(bucket, "scans/paspoort jan.pdf", b"%PDF-1.4 not text")
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, base=bucket, depth=0)
        [got] = sample(conn, stores[bucket])
    assert (got.name, got.size, got.rows, got.text) == ("paspoort jan.pdf", 17, (), None)
    assert got.skipped == "judged by name and size only"


def test_a_spreadsheet_within_the_bound_is_read_and_a_larger_one_judged_by_name(
    store: Store,
) -> None:
    """An XLSX no larger than the byte bound is read row by row; one larger is not read."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["naam", "geboortedatum"])
    for n in range(20):
        sheet.append([f"Leerling {n}", "2010-01-01"])
    data = io.BytesIO()
    book.save(data)
    bucket = store.bucket()
    store.put(bucket, "small/list.xlsx", data.getvalue())
    store.put(bucket, "large/list.xlsx", data.getvalue())
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, base=bucket, depth=1)
        [small] = sample(conn, stores[f"{bucket}/small/"], bytes=len(data.getvalue()))
        [large] = sample(conn, stores[f"{bucket}/large/"], bytes=len(data.getvalue()) - 1)
    assert small.sheet == 1 and small.rows[0] == ["naam", "geboortedatum"]
    assert len(small.rows) == 21
    assert large.rows == () and large.skipped is not None and "read whole" in large.skipped


def test_the_newest_version_is_read_even_behind_a_delete_marker(store: Store) -> None:
    """In a versioned bucket an object that looks deleted is read at its newest version."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "notes.txt", b"first")
    store.put(bucket, "notes.txt", b"second text")
    store.delete_marker(bucket, "notes.txt")
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, base=bucket)
        [got] = sample(conn, stores[bucket])
    assert got.text == "second text"


def test_an_object_that_cannot_be_read_is_a_finding_of_its_store(store: Store) -> None:
    """When reading objects is denied but listing is not, sampling ends in one
    'uninspectable' finding for the store, and objects judged by name still come."""
    bucket = store.bucket()
    store.put(bucket, "a.csv", b"naam\nA\n")
    store.put(bucket, "b.pdf", b"%PDF")
    with Proxy(store.endpoint) as proxy:
        proxy.denied_reads.add(bucket)
        with connector(proxy.endpoint) as conn:
            stores, _ = discover(conn, base=bucket)
            out = list(conn.sample(SampleRequest(store=stores[bucket])))
    assert [s.name for s in out if isinstance(s, Sample)] == ["b.pdf"]
    [finding] = [f for f in out if isinstance(f, ScanFinding)]
    assert finding.kind == "uninspectable" and "1 sampled object(s)" in finding.message


def test_a_location_covers_the_stores_within_its_prefix(store: Store) -> None:
    """A location's prefix covers the stores inside it fully and a store it lies inside
    partly (unless none of that store's own objects can fit it); a key_regex makes it
    partial; another bucket or prefix it does not cover."""
    bucket = store.bucket()
    for key in ("rec/2024/a.mp4", "rec/b.mp4", "docs/c.txt", "top.txt"):
        store.put(bucket, key)
    with connector(store.endpoint) as conn:
        stores, _ = discover(conn, base=bucket, depth=2)

        def covers(**loc: Any) -> dict[str, str]:
            found = location(loc.pop("bucket", bucket), **loc)
            return {w: conn.coverage(found, conn.locate(s), s) for w, s in stores.items()}

        assert covers(prefix="rec/") == {
            bucket: NONE,
            f"{bucket}/rec/": FULL,
            f"{bucket}/rec/2024/": FULL,
            f"{bucket}/docs/": NONE,
        }
        assert covers(prefix="rec/b")[f"{bucket}/rec/"] == PARTIAL
        assert covers(prefix="rec/2024/")[f"{bucket}/rec/"] == NONE  # none directly in rec/
        assert covers(prefix="rec/2024/x")[f"{bucket}/rec/2024/"] == PARTIAL
        assert covers(prefix="rec/", key_regex=r"\.mp4$")[f"{bucket}/rec/2024/"] == PARTIAL
        assert covers(prefix="")[bucket] == FULL
        assert covers(prefix="top")[bucket] == PARTIAL
        assert set(covers(bucket=store.bucket()).values()) == {NONE}


def test_an_object_is_covered_when_its_key_fits_prefix_and_key_regex(store: Store) -> None:
    """One object is covered by a location whose prefix it starts with and whose key_regex
    matches it, and by no other."""
    bucket = store.bucket()
    with connector(store.endpoint) as conn:
        obj = DiscoveredStore("file", f"{bucket}/rec/2024/123456.mp4")
        place = conn.locate(obj)
        regex = r"^rec/\d{4}/(?P<subject>\d{6})\."
        assert conn.coverage(location(bucket, prefix="rec/", key_regex=regex), place, obj) == FULL
        assert conn.coverage(location(bucket, prefix="rec/", key_regex=r"\.pdf$"), place, obj) == (
            NONE
        )
        assert conn.coverage(location(bucket, prefix="docs/"), place, obj) == NONE


def test_systems_on_one_endpoint_reach_the_same_places(store: Store) -> None:
    """Two systems on the same endpoint reach the same account, and a base narrows it to a
    bucket and prefix inside it."""
    with connector(store.endpoint) as one, connector(store.endpoint.upper()) as two:
        account = one.scope(DiscoverRequest(now=NOW))
        assert two.scope(DiscoverRequest(now=NOW)) == account
        narrow = one.scope(DiscoverRequest(now=NOW, base="exams/rec"))
        assert narrow == (*account, "exams", "rec")
        assert one.locate(DiscoveredStore("prefix", "exams/rec/2024/")) == (*narrow, "2024")
