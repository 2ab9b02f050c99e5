"""The bucket system and location in the RoPA, the credential format, and lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectors.bucket import parse_credential, start_before
from sweeper.cli_export import lifecycle_days, literal_prefix
from sweeper.errors import RopaInvalid
from sweeper.retention import Period
from sweeper.ropa import load_ropa

HEAD = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
systems:
  - {id: s3, name: Objects, kind: bucket, connection: {region: eu-west-1}}
activities:
  - id: exams
    name: Exams
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "ropa.yaml"
    path.write_text(HEAD + text)
    with pytest.raises(RopaInvalid) as err:
        load_ropa(path)
    return [f"{p.path}: {p.message}" for p in err.value.problems]


def test_path_date_clock_needs_its_group_in_key_regex(tmp_path: Path) -> None:
    """A key-date clock whose group key_regex lacks is an error at the location's key_regex."""
    found = problems(
        tmp_path,
        """
    retention: {period: P1Y, clock: {path_date: day}, action: delete}
    locations: [{system: s3, bucket: exams, key_regex: '^rec/(?P<date>[0-9-]+)/'}]
""",
    )
    assert found == [
        "activities[0].locations[0].key_regex: the clock reads the date from group 'day', "
        "which key_regex does not define: add (?P<day>...)"
    ]


def test_event_clock_needs_the_subject_group(tmp_path: Path) -> None:
    """An event clock on a bucket location needs the subject group in key_regex."""
    found = problems(
        tmp_path,
        """
    retention: {period: P1Y, clock: {event: left}, action: delete}
    locations: [{system: s3, bucket: exams}]
""",
    )
    assert any("key_regex: an event clock needs the subject from the key" in p for p in found)


def test_bucket_location_rejects_clocks_s3_does_not_have(tmp_path: Path) -> None:
    """accessed and column clocks are refused for objects, with the clocks there are."""
    found = problems(
        tmp_path,
        """
    retention: {period: P1Y, clock: accessed, action: delete}
    locations: [{system: s3, bucket: exams}]
""",
    )
    assert len(found) == 1 and "S3 does not record 'accessed' times" in found[0]


def test_quarantine_needs_a_destination_and_objects_cannot_be_anonymised(tmp_path: Path) -> None:
    """quarantine without connection.quarantine, and anonymise, are errors."""
    found = problems(
        tmp_path,
        """
    retention: {period: P1Y, clock: modified, action: quarantine}
    locations: [{system: s3, bucket: exams}]
  - id: other
    name: Other
    retention: {period: P1Y, clock: modified, action: anonymise}
    locations: [{system: s3, bucket: other}]
""",
    )
    assert any("has no connection.quarantine" in p for p in found)
    assert any("objects cannot be anonymised" in p for p in found)


def test_endpoint_url_with_a_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """An endpoint URL carrying user info is refused, and the message does not repeat it."""
    path = tmp_path / "ropa.yaml"
    path.write_text(
        HEAD.replace("{region: eu-west-1}", "{endpoint_url: 'https://AKIA:s3cr3t@s3.local'}")
        + "    retention: {period: P1Y, clock: modified, action: delete}\n"
    )
    with pytest.raises(RopaInvalid) as err:
        load_ropa(path)
    assert "contains a user or key" in str(err.value) and "s3cr3t" not in str(err.value)


def test_credential_format() -> None:
    """The credential holds the key id and secret as NAME = VALUE lines; errors name no value."""
    assert parse_credential("[default]\naws_access_key_id = A\naws_secret_access_key = B\n") == {
        "aws_access_key_id": "A",
        "aws_secret_access_key": "B",
    }
    with pytest.raises(ValueError, match="aws_secret_access_key missing"):
        parse_credential("aws_access_key_id = A")
    with pytest.raises(ValueError, match="line 1 is not") as err:
        parse_credential("secret-value-alone")
    assert "secret-value-alone" not in str(err.value)


def test_start_before_sorts_just_below_the_key() -> None:
    """start_before(k) < k, and nothing written in practice lies between."""
    for key in ("a", "rec/2019/x.mp4", "k\x01", "\ue000z"):
        assert start_before(key) < key
    assert start_before("rec/2019/x.mp4") > "rec/2019/x.mp3.bak"


def test_importing_the_connector_does_not_import_boto3() -> None:
    """boto3 is imported when a bucket system is used, not when the module is."""
    code = "import sys, connectors.bucket; sys.exit('boto3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_lifecycle_days_never_undercut_the_period() -> None:
    """A period becomes its longest length in whole days: P1Y is 366, P1M 31, P4W 28."""
    assert lifecycle_days(Period(years=1), None) == 366
    assert lifecycle_days(Period(months=1), None) == 31
    assert lifecycle_days(Period(days=28), None) == 28


def test_literal_prefix() -> None:
    """Only an anchored literal regex is a prefix."""
    assert literal_prefix(r"^exams/2024\.a/") == "exams/2024.a/"
    assert literal_prefix(r"^exams/(?P<subject>\d+)/") is None
    assert literal_prefix("exams/") is None
