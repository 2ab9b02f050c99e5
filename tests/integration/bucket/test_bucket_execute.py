"""Plan → approve → execute on moto's S3 server: deletion that really deletes (every version
and delete marker), Object Lock, changes after planning, throttling, and failing buckets."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from bucket_cycle import Cycle, activity, bucket_system
from bucket_store import DAY, NOW, Proxy, Store

OLD = timedelta(days=800)
NEW = timedelta(days=30)


def test_due_keys_lose_every_version_and_marker_the_rest_keeps_all(
    store: Store, tmp_path: Path
) -> None:
    """After execution ListObjectVersions shows nothing of due keys and everything of the
    others, old versions and delete markers included."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "rec/due-1", age=OLD + DAY)
    store.put(bucket, "rec/due-1", age=OLD)
    store.delete_marker(bucket, "rec/due-1", age=OLD - DAY)
    store.put(bucket, "rec/due-2", age=OLD)
    gone = store.put(bucket, "rec/only-marker", age=OLD + DAY)
    store.delete_marker(bucket, "rec/only-marker", age=OLD)
    store.client.delete_object(Bucket=bucket, Key="rec/only-marker", VersionId=gone)
    store.put(bucket, "rec/kept", age=OLD)
    store.put(bucket, "rec/kept", age=NEW)  # current version not due: the key stays whole
    store.put(bucket, "rec/new", age=NEW)
    store.put(bucket, "elsewhere/old", age=OLD)
    before = store.versions(bucket)
    cycle = Cycle.make(
        tmp_path, bucket_system("s3", store.endpoint), activity("exams", "s3", bucket, "rec/")
    )
    plan_id, items = cycle.plan()
    assert {i["key"] for i in items if i["status"] == "due"} == {
        "rec/due-1",
        "rec/due-2",
        "rec/only-marker",
    }
    due_1 = next(i for i in items if i["key"] == "rec/due-1")
    assert json.loads(due_1["details"]) == {
        "versions": 2,
        "delete_markers": 1,
        "bytes": 8,
        "current": "delete_marker",
    }
    cycle.approve(plan_id)
    result = cycle.execute(plan_id)
    assert result.ok and result.total("done") == 3
    after = store.versions(bucket)
    assert set(after) == {"rec/kept", "rec/new", "elsewhere/old"}
    assert {k: sorted(v) for k, v in after.items()} == {k: sorted(before[k]) for k in after}


def test_locked_versions_are_reported_and_untouched(store: Store, tmp_path: Path) -> None:
    """A key with a COMPLIANCE retention or a legal hold is planned as locked with the mode
    and date, is not a failure at execution, and keeps every version."""
    bucket = store.bucket(lock=True)
    until = NOW + timedelta(days=3650)
    store.put(
        bucket, "compliance", age=OLD, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )
    store.put(bucket, "held", age=OLD, ObjectLockLegalHoldStatus="ON")
    store.put(bucket, "free", age=OLD)
    cycle = Cycle.make(
        tmp_path, bucket_system("s3", store.endpoint), activity("exams", "s3", bucket)
    )
    plan_id, items = cycle.plan()
    by_key = {i["key"]: i for i in items}
    assert by_key["compliance"]["status"] == "locked"
    assert by_key["compliance"]["reason"] == f"COMPLIANCE retention until {until:%Y-%m-%d}"
    assert by_key["held"]["status"] == "locked" and "legal hold" in by_key["held"]["reason"]
    assert by_key["free"]["status"] == "due"
    cycle.approve(plan_id)
    result = cycle.execute(plan_id)
    assert result.ok and result.total("failed") == 0 and result.total("done") == 1
    assert set(store.versions(bucket)) == {"compliance", "held"}


def test_governance_is_bypassed_only_when_allowed_and_audited_per_object(
    store: Store, tmp_path: Path
) -> None:
    """With bypass_governance, a GOVERNANCE-retained version is deleted and its bypass is in
    the audit record of that item; without it, the key is locked."""
    bucket = store.bucket(lock=True)
    until = NOW + timedelta(days=365)
    version = store.put(
        bucket, "gov", age=OLD, ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )
    cycle = Cycle.make(
        tmp_path, bucket_system("s3", store.endpoint), activity("exams", "s3", bucket)
    )
    _, items = cycle.plan()
    assert items[0]["status"] == "locked" and "GOVERNANCE" in items[0]["reason"]

    allowed = Cycle.make(
        tmp_path / "b",
        bucket_system("s3", store.endpoint, bypass_governance="true"),
        activity("exams", "s3", bucket),
    )
    plan_id, items = allowed.plan()
    assert items[0]["status"] == "due"
    allowed.approve(plan_id)
    assert allowed.execute(plan_id).total("done") == 1
    assert store.versions(bucket) == {}
    (record,) = allowed.audit("item_done")
    assert record["details"]["result"]["overrode_governance"] == [
        {"version_id": version, "retain_until": f"{until:%Y-%m-%dT%H:%M:%SZ}"}
    ]


def test_key_with_a_new_version_after_planning_is_skipped(store: Store, tmp_path: Path) -> None:
    """A version written after the plan changes the key's fingerprint: it is skipped and
    keeps every version, the new one too; the other due key is deleted."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "a", age=OLD)
    store.put(bucket, "b", age=OLD)
    cycle = Cycle.make(
        tmp_path, bucket_system("s3", store.endpoint), activity("exams", "s3", bucket)
    )
    plan_id, _ = cycle.plan()
    store.put(bucket, "a", age=OLD - DAY)  # an old date, so it would still be due
    cycle.approve(plan_id)
    result = cycle.execute(plan_id)
    assert result.total("skipped") == 1 and result.total("done") == 1
    assert len(store.versions(bucket)["a"]) == 2 and "b" not in store.versions(bucket)
    (skip,) = cycle.audit("item_skipped")
    assert skip["details"]["reason"] == "changed since the plan was made"


def test_throttling_is_retried_without_losing_or_repeating_a_delete(
    store: Store, tmp_path: Path
) -> None:
    """503 SlowDown replies and a DeleteObjects reply of per-key SlowDown errors are retried:
    every due version is deleted, and sent to the server exactly once."""
    bucket = store.bucket(versioned=True)
    for n in range(30):
        store.put(bucket, f"k{n:02d}", age=OLD + DAY)
        store.put(bucket, f"k{n:02d}", age=OLD)
    wanted = sorted((k, v) for k, vs in store.versions(bucket).items() for v in vs)
    with Proxy(store.endpoint) as proxy:
        cycle = Cycle.make(
            tmp_path, bucket_system("s3", proxy.endpoint), activity("exams", "s3", bucket)
        )
        plan_id, _ = cycle.plan()
        cycle.approve(plan_id)
        proxy.slow_down, proxy.key_errors = 3, 1
        result = cycle.execute(plan_id)
        assert proxy.refused == 4  # the store really did refuse, four times
    assert result.ok and result.total("done") == 30
    assert store.versions(bucket) == {}
    assert sorted(proxy.deleted_objects()) == wanted


def test_2500_due_objects_take_three_delete_calls(store: Store, tmp_path: Path) -> None:
    """2,500 due objects are deleted with three DeleteObjects calls (1,000 objects each)."""
    bucket = store.bucket()
    store.put_many(bucket, [f"obj/{n:05d}" for n in range(2500)], age=OLD)
    with Proxy(store.endpoint) as proxy:
        cycle = Cycle.make(
            tmp_path, bucket_system("s3", proxy.endpoint), activity("exams", "s3", bucket)
        )
        plan_id, _ = cycle.plan()
        cycle.approve(plan_id)
        assert cycle.execute(plan_id).total("done") == 2500
    assert len(proxy.forwarded_deletes) == 3
    assert store.keys(bucket) == set()


def test_missing_and_denied_buckets_fail_alone(store: Store, tmp_path: Path) -> None:
    """A bucket that does not exist and one that denies access each fail their own location
    with a clear reason; the other system is planned and executed."""
    good = store.bucket()
    denied = store.bucket()
    store.put(good, "old", age=OLD)
    store.put(denied, "old", age=OLD)
    with Proxy(store.endpoint) as proxy:
        proxy.denied.add(denied)
        systems = bucket_system("good", store.endpoint) + bucket_system("bad", proxy.endpoint)
        activities = (
            activity("a", "good", good)
            + activity("b", "bad", "no-such-bucket-here")
            + activity("c", "bad", denied)
        )
        cycle = Cycle.make(tmp_path, systems, activities)
        plan_id, items = cycle.plan()
        locations = {loc["activity"]: loc for loc in cycle.store.locations(plan_id)}
        assert locations["a"]["outcome"] == "scanned"
        assert (
            locations["b"]["error"] == "system 'bad': bucket 'no-such-bucket-here' does not exist"
        )
        assert locations["c"]["outcome"] == "failed" and "access denied" in locations["c"]["error"]
        assert [i["key"] for i in items] == ["old"]
        cycle.approve(plan_id)
        assert cycle.execute(plan_id).total("done") == 1
    assert store.keys(good) == set() and store.keys(denied) == {"old"}
