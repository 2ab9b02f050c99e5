"""Scanning buckets on moto's S3 server: items are keys with all their versions, clocks,
cutoffs, the noncurrent-versions finding, and streaming over many pages."""

from __future__ import annotations

from datetime import timedelta

from bucket_store import DAY, NOW, Store, connector, location, scan

from sweeper.ropa.model import EventClock, MetadataClock, PathDateClock, TagClock

OLD = timedelta(days=800)
NEW = timedelta(days=10)
CUTOFF = NOW - timedelta(days=365)


def test_unversioned_keys_are_items_with_their_size_and_age(store: Store) -> None:
    """Each object under the prefix is an item whose clock is the LastModified the server
    recorded when it was uploaded (under a frozen clock)."""
    bucket = store.bucket()
    store.put(bucket, "exams/a.mp4", b"12345", age=OLD)
    store.put(bucket, "other/b.mp4", age=OLD)
    with connector(store.endpoint) as conn:
        found = scan(conn, location(bucket, prefix="exams/"))
    assert found.keys() == {"exams/a.mp4"}
    item = found.item("exams/a.mp4")
    assert item.size == 5
    assert item.clock is not None and abs(item.clock - (NOW - OLD)) < timedelta(seconds=2)
    assert item.details == {"versions": 1, "delete_markers": 0, "bytes": 5}


def test_cutoff_counts_new_objects_instead_of_listing_them(store: Store) -> None:
    """With a cutoff, objects modified after it are counted in a summary, not yielded."""
    bucket = store.bucket()
    store.put(bucket, "old", age=OLD)
    store.put(bucket, "new", b"123", age=NEW)
    with connector(store.endpoint) as conn:
        found = scan(conn, location(bucket), cutoff=CUTOFF)
    assert found.keys() == {"old"}
    assert found.not_due == 1 and found.summaries[0].size == 3


def test_versioned_key_is_one_item_with_every_version_and_marker(store: Store) -> None:
    """A key with two versions and a delete marker is one item holding all three, marked as
    looking deleted while its data stays."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "k", b"one", age=OLD + DAY)
    store.put(bucket, "k", b"three", age=OLD)
    store.delete_marker(bucket, "k", age=OLD - DAY)
    with connector(store.endpoint) as conn:
        item = scan(conn, location(bucket)).item("k")
    assert item.details == {
        "versions": 2,
        "delete_markers": 1,
        "bytes": 8,
        "current": "delete_marker",
    }
    assert item.clock is not None and abs(item.clock - (NOW - OLD)) < timedelta(seconds=2)


def test_created_clock_is_the_oldest_version(store: Store) -> None:
    """The created clock reads the oldest version's LastModified, modified the newest."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "k", age=OLD)
    store.put(bucket, "k", age=NEW)
    with connector(store.endpoint) as conn:
        created = scan(conn, location(bucket), clock="created").item("k").clock
        modified = scan(conn, location(bucket), clock="modified").item("k").clock
    assert created is not None and modified is not None
    assert abs(created - (NOW - OLD)) < timedelta(seconds=2)
    assert abs(modified - (NOW - NEW)) < timedelta(seconds=2)


def test_noncurrent_versions_of_keys_not_due_are_a_finding(store: Store) -> None:
    """Old versions behind a current version that is not due are reported with counts."""
    bucket = store.bucket(versioned=True)
    store.put(bucket, "k", b"12345", age=OLD)
    store.put(bucket, "k", b"1", age=NEW)
    with connector(store.endpoint) as conn:
        found = scan(conn, location(bucket), cutoff=CUTOFF)
    assert found.items == [] and found.not_due == 1
    (finding,) = found.findings
    assert finding.kind == "noncurrent_versions" and finding.where == f"s3://{bucket}/"
    assert "1 noncurrent version(s) (5 bytes)" in finding.message
    assert "1 key(s)" in finding.message


def test_key_regex_selects_keys_and_gives_subject_and_date(store: Store) -> None:
    """key_regex filters keys; its groups give the subject and a path_date clock."""
    bucket = store.bucket()
    store.put(bucket, "rec/2019-06-30/123456/exam.mp4")
    store.put(bucket, "rec/readme.txt")
    loc = location(bucket, key_regex=r"^rec/(?P<d>\d{4}-\d{2}-\d{2})/(?P<subject>\d{6})/")
    with connector(store.endpoint) as conn:
        found = scan(conn, loc, clock=PathDateClock(path_date="d"))
    (item,) = found.items
    assert item.subject == "123456"
    assert item.clock is not None and item.clock.date().isoformat() == "2019-06-30"


def test_a_key_date_that_does_not_parse_is_a_problem(store: Store) -> None:
    """A date in the key that does not match the format leaves the clock unread, with why."""
    bucket = store.bucket()
    store.put(bucket, "rec/2019-13-45/x")
    loc = location(bucket, key_regex=r"^rec/(?P<d>[^/]+)/")
    with connector(store.endpoint) as conn:
        (item,) = scan(conn, loc, clock=PathDateClock(path_date="d")).items
    assert item.clock is None and item.problem is not None and "2019-13-45" in item.problem


def test_tag_clock_reads_the_date_from_an_object_tag(store: Store) -> None:
    """A {tag: KEY} clock reads the tag's date; an object without the tag has no clock."""
    bucket = store.bucket()
    store.put(bucket, "a", Tagging="recorded=2018-01-15")
    store.put(bucket, "b")
    with connector(store.endpoint) as conn:
        found = scan(conn, location(bucket), clock=TagClock(tag="recorded"))
    assert found.item("a").clock is not None
    assert found.item("a").clock.date().isoformat() == "2018-01-15"  # type: ignore[union-attr]
    assert found.item("b").clock is None and "no tag" in (found.item("b").problem or "")


def test_metadata_clock_reads_the_date_from_user_metadata(store: Store) -> None:
    """A {metadata: NAME} clock reads x-amz-meta-NAME, and a cutoff then counts new ones."""
    bucket = store.bucket()
    store.put(bucket, "a", Metadata={"exam-date": "20170301"})
    store.put(bucket, "b", Metadata={"exam-date": NOW.strftime("%Y%m%d")})
    with connector(store.endpoint) as conn:
        found = scan(
            conn,
            location(bucket),
            clock=MetadataClock(metadata="exam-date", format="%Y%m%d"),
            cutoff=CUTOFF,
        )
    assert found.keys() == {"a"} and found.not_due == 1


def test_event_clock_leaves_the_clock_to_the_lifecycle(store: Store) -> None:
    """With an event clock, items carry their subject and no clock (the event is read later)."""
    bucket = store.bucket()
    store.put(bucket, "homes/100001/cv.pdf")
    loc = location(bucket, key_regex=r"^homes/(?P<subject>\d+)/")
    with connector(store.endpoint) as conn:
        (item,) = scan(conn, loc, clock=EventClock(event="left")).items
    assert item.subject == "100001" and item.clock is None and item.problem is None


def test_listing_streams_over_pages_and_versions_split_across_them(store: Store) -> None:
    """A key whose versions run over a page boundary is still one item; all keys come once."""
    bucket = store.bucket(versioned=True)
    store.put_many(bucket, [f"k{n:04d}" for n in range(999)], age=OLD)
    for _ in range(3):
        store.put(bucket, "k0998", age=OLD)  # its versions straddle the first page's end
    store.put_many(bucket, [f"k{n:04d}" for n in range(999, 1500)], age=OLD)
    with connector(store.endpoint) as conn:
        found = scan(conn, location(bucket))
    assert len(found.items) == 1500
    assert found.item("k0998").details["versions"] == 4  # type: ignore[index]
