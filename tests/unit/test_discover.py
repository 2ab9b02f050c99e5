"""Discovery's scoring, finding ids, header detection and suggested locations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sweeper.detect import Detectors
from sweeper.discover import _looks_like_header, finding_id, score, suggest
from sweeper.ropa import load_ropa

NOW = datetime(2026, 1, 15, tzinfo=UTC)
DETECTORS = Detectors()
ages = st.integers(0, 40 * 365).map(lambda days: NOW - timedelta(days=days))


@given(st.integers(0, 10**7), st.integers(0, 10**7), ages)
def test_more_personal_records_never_score_lower(a: int, b: int, oldest: datetime) -> None:
    """The score grows with the estimated number of personal records."""
    low, high = sorted((a, b))
    assert score(["bsn"], DETECTORS, low, oldest, NOW) <= score(
        ["bsn"], DETECTORS, high, oldest, NOW
    )


@given(st.integers(0, 10**6), ages, ages)
def test_older_data_never_scores_lower(records: int, a: datetime, b: datetime) -> None:
    """The score grows with the age of the oldest item, up to ten years."""
    newer, older = sorted((a, b), reverse=True)
    assert score(["email"], DETECTORS, records, newer, NOW) <= score(
        ["email"], DETECTORS, records, older, NOW
    )


@given(st.integers(0, 10**6), ages)
def test_a_bsn_outweighs_a_name(records: int, oldest: datetime) -> None:
    """The same store scores higher with a BSN than with only a name."""
    assert score(["name"], DETECTORS, records, oldest, NOW) < score(
        ["bsn"], DETECTORS, records, oldest, NOW
    )


def test_nothing_found_scores_nothing_unless_it_could_not_be_inspected() -> None:
    """A clean store scores 0; one that could not be read ranks just above it."""
    assert score([], DETECTORS, 1000, NOW - timedelta(days=4000), NOW) == 0
    assert (
        0
        < score([], DETECTORS, 1000, None, NOW, inspected=False)
        < score(["name"], DETECTORS, 1000, None, NOW)
    )


def test_finding_ids_are_stable_and_distinct() -> None:
    """A store's finding id depends on its system, kind and name only."""
    assert finding_id("share", "folder", "exports") == finding_id("share", "folder", "exports")
    assert finding_id("share", "folder", "exports") != finding_id("share2", "folder", "exports")
    assert finding_id("share", "folder", "exports").startswith("d")


def test_a_first_row_of_labels_is_a_header_and_one_of_values_is_not() -> None:
    """Labels are a header; a row with a BSN, an e-mail address or numbers is data."""
    assert _looks_like_header(["naam", "bsn", "geboortedatum"])
    assert not _looks_like_header(["Jan", "123456782", "2010-03-12"])
    assert not _looks_like_header(["Jan", "jan@example.nl"])
    assert not _looks_like_header([1, 2, 3])


def test_a_suggested_folder_pattern_names_exactly_that_folder(tmp_path: Path) -> None:
    """Special characters of a folder's name become one-character classes, so the pattern
    matches that folder only; a folder's own files get '/*', a whole subtree '/**'."""
    ropa = tmp_path / "ropa.yaml"
    ropa.write_text(
        "controller: {name: S, contact: {name: A}}\n"
        "systems:\n  - {id: share, name: S, kind: fileshare, connection: {root: s}}\n"
    )
    loaded = load_ropa(ropa)
    record = {
        "id": "d1",
        "kind": "folder",
        "where": "exports [old]*",
        "system": "share",
        "registration": "unregistered",
        "details": {"extent": "subtree"},
        "detections": {},
    }
    assert '  include: ["exports [[]old][*]/**"]' in suggest(loaded, record)
    record["details"] = {"extent": "files"}
    assert '  include: ["exports [[]old][*]/*"]' in suggest(loaded, record)


def test_a_suggested_bucket_location_names_the_bucket_and_prefix(tmp_path: Path) -> None:
    """A prefix's finding suggests a location of its bucket and prefix that validates as a
    bucket location; a bucket's own store suggests the whole bucket."""
    import yaml

    from sweeper.ropa.model import BucketLocation

    ropa = tmp_path / "ropa.yaml"
    ropa.write_text(
        "controller: {name: S, contact: {name: A}}\n"
        "systems:\n  - {id: s3, name: S, kind: bucket, connection: {}}\n"
    )
    loaded = load_ropa(ropa)
    record = {
        "id": "d1",
        "kind": "prefix",
        "where": "exports-2019/leerlingen/",
        "system": "s3",
        "registration": "unregistered",
        "details": {"extent": "subtree"},
        "detections": {},
    }
    [location] = yaml.safe_load(suggest(loaded, record))
    found = BucketLocation(**location)
    assert (found.system, found.bucket, found.prefix) == ("s3", "exports-2019", "leerlingen/")
    record.update(kind="bucket", where="exports-2019", details={"extent": "objects"})
    [location] = yaml.safe_load(suggest(loaded, record))
    assert (location["bucket"], location["prefix"]) == ("exports-2019", "")
