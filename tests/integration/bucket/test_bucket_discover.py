"""Discovery on moto's S3 server: buckets and prefixes with counts, bytes and ages."""

from __future__ import annotations

from datetime import timedelta

from bucket_store import NOW, Proxy, Store, connector

from connectors.base import DiscoveredStore, DiscoverRequest, ScanFinding


def test_discover_lists_the_bucket_and_its_prefixes(store: Store) -> None:
    """A bucket and its top-level prefixes come with objects, bytes, ages and stale counts."""
    bucket = store.bucket()
    store.put(bucket, "exports/2019/a.csv", b"12345", age=timedelta(days=900))
    store.put(bucket, "exports/2024/b.csv", b"1")
    store.put(bucket, "readme.txt", b"12")
    with connector(store.endpoint) as conn:
        found = list(conn.discover(DiscoverRequest(now=NOW, depth=1, base=bucket)))
    stores = {s.where: s for s in found if isinstance(s, DiscoveredStore)}
    assert stores[bucket].kind == "bucket" and stores[bucket].items == 3
    assert stores[bucket].size == 8 and stores[bucket].stale == 1
    prefix = stores[f"{bucket}/exports/"]
    assert (prefix.kind, prefix.items, prefix.size, prefix.stale) == ("prefix", 2, 6, 1)
    assert prefix.oldest is not None and prefix.oldest < NOW - timedelta(days=800)
    assert set(stores) == {bucket, f"{bucket}/exports/"}


def test_a_bucket_that_cannot_be_listed_is_uninspectable(store: Store) -> None:
    """A bucket that denies listing is an 'uninspectable' finding; the others are listed."""
    open_bucket, closed = store.bucket(), store.bucket()
    store.put(open_bucket, "x")
    with Proxy(store.endpoint) as proxy:
        proxy.denied.add(closed)
        with connector(proxy.endpoint) as conn:
            found = list(conn.discover(DiscoverRequest(now=NOW)))
    findings = [f for f in found if isinstance(f, ScanFinding)]
    assert [(f.kind, f.where) for f in findings] == [("uninspectable", closed)]
    assert any(isinstance(s, DiscoveredStore) and s.where == open_bucket for s in found)
