"""Acting on objects directly through the connector on moto's S3 server: lookup, delete,
quarantine, restore and purge, and refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bucket_store import TZ, Store, act, connector, count_calls, location

from sweeper.errors import ActionUnsupported, LocationInvalid

OLD = timedelta(days=800)


def test_lookup_finds_existing_keys_and_drops_the_rest(store: Store) -> None:
    """lookup returns the keys that exist, as a scan reads them, in few list calls."""
    bucket = store.bucket()
    store.put_many(bucket, [f"k{n:04d}" for n in range(0, 2200, 2)], age=OLD)
    wanted = [f"k{n:04d}" for n in range(0, 2200, 3)]  # half of them exist
    with connector(store.endpoint) as conn:
        calls = count_calls(conn)
        found = conn.lookup(location(bucket), "modified", TZ, wanted)
    assert set(found) == {f"k{n:04d}" for n in range(0, 2200, 6)}
    assert calls["ListObjectsV2"] <= 4


def test_lookup_of_a_versioned_key_sees_every_version(store: Store) -> None:
    """In a versioned bucket lookup sees every version of the key, and no longer key."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "k", age=OLD + timedelta(days=1))
    store.put(bucket, "k", age=OLD)
    store.put(bucket, "k.bak", age=OLD)
    with connector(store.endpoint) as conn:
        found = conn.lookup(location(bucket), "modified", TZ, ["k", "missing"])
    assert set(found) == {"k"} and found["k"].details["versions"] == 2  # type: ignore[index]


def test_a_dry_run_connector_refuses_to_act(store: Store) -> None:
    """A read-only connector refuses every action before touching anything."""
    bucket = store.bucket()
    store.put(bucket, "k")
    with connector(store.endpoint) as conn, pytest.raises(ActionUnsupported, match="read-only"):
        act(conn, location(bucket), "delete", ["k"])
    assert store.keys(bucket) == {"k"}


def test_objects_cannot_be_anonymised(store: Store) -> None:
    """anonymise is refused with what to do instead."""
    bucket = store.bucket()
    with (
        connector(store.endpoint, read_only=False) as conn,
        pytest.raises(ActionUnsupported, match="cannot be anonymised"),
    ):
        act(conn, location(bucket), "anonymise", ["k"])


def test_deleting_a_key_that_is_gone_is_harmless(store: Store) -> None:
    """A key with nothing left is 'gone', and a second delete changes nothing."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "k")
    with connector(store.endpoint, read_only=False) as conn:
        first = act(conn, location(bucket), "delete", ["k"])
        second = act(conn, location(bucket), "delete", ["k"])
    assert first["k"].status == "done" and second["k"].status == "gone"
    assert store.versions(bucket) == {}


def test_quarantine_restore_and_purge(store: Store) -> None:
    """quarantine copies the newest data to the quarantine and removes every version; restore
    brings it back; a second quarantine and purge remove it for good."""
    bucket = store.bucket(versioned=True)
    qbucket = store.bucket(versioned=True)
    store.put(bucket, "rec/k", b"old", age=OLD + timedelta(days=1))
    store.put(bucket, "rec/k", b"newest", age=OLD)
    loc = location(bucket, prefix="rec/")
    quarantine = {"bucket": qbucket, "prefix": "q/"}
    with connector(store.endpoint, read_only=False, quarantine=quarantine) as conn:
        moved = act(conn, loc, "quarantine", ["rec/k"])
        assert moved["rec/k"].status == "done"
        assert store.versions(bucket) == {}
        body = store.client.get_object(Bucket=qbucket, Key="q/rec/k")["Body"].read()
        assert body == b"newest"
        back = act(conn, loc, "restore", ["rec/k"])
        assert back["rec/k"].status == "done"
        assert store.client.get_object(Bucket=bucket, Key="rec/k")["Body"].read() == b"newest"
        assert store.versions(qbucket) == {}
        act(conn, loc, "quarantine", ["rec/k"])
        purged = act(conn, loc, "purge", ["rec/k"])
    assert purged["rec/k"].status == "done"
    assert store.versions(bucket) == {} and store.versions(qbucket) == {}


def test_restore_never_replaces_a_new_object(store: Store) -> None:
    """restore refuses when another object now lives at the original key; both stay."""
    bucket = store.bucket()
    loc = location(bucket)
    store.put(bucket, "k", b"first")
    with connector(
        store.endpoint, read_only=False, quarantine={"bucket": bucket, "prefix": "quarantine/"}
    ) as conn:
        act(conn, location(bucket, prefix="k"), "quarantine", ["k"])
        store.put(bucket, "k", b"someone else's")
        outcome = act(conn, location(bucket, prefix="k"), "restore", ["k"])["k"]
    assert outcome.status == "failed" and "exists at the original key" in (outcome.message or "")
    assert store.keys(bucket) == {"k", "quarantine/k"}
    assert loc.bucket == bucket


def test_quarantine_overlapping_the_location_is_refused(store: Store) -> None:
    """A quarantine prefix inside the scanned prefix would be scanned again: refused."""
    bucket = store.bucket()
    quarantine = {"bucket": bucket, "prefix": "rec/q/"}
    with (
        connector(store.endpoint, quarantine=quarantine) as conn,
        pytest.raises(LocationInvalid, match="overlaps"),
    ):
        conn.prepare(location(bucket, prefix="rec/"), "modified")
