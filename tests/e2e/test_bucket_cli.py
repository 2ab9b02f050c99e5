"""The whole cycle on an S3 bucket as a user runs it: `sweeper plan`, `approve`, `execute`
(quarantine), `restore`, and `export s3-lifecycle`, against moto's S3 server on 127.0.0.1.

The server runs in a thread of this test process; the sweeper runs as its own process and
reaches it over HTTP. Old objects are uploaded while freezegun holds this process's clock
(and so the server's) 800 days back, so the server records that LastModified itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cli_run import Run
from freezegun import freeze_time

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
CREDENTIAL = "aws_access_key_id = AKIAE2E\naws_secret_access_key = e2e-secret-not-shown\n"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def seed(endpoint: str) -> Any:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="AKIAE2E",
        aws_secret_access_key="e2e-secret-not-shown",
        region_name="us-east-1",
    )
    for bucket in ("exams", "exams-quarantine"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with freeze_time(datetime.now(UTC) - timedelta(days=800)):
        s3.put_object(Bucket="exams", Key="rec/100001/exam.mp4", Body=b"old recording")
        s3.put_object(Bucket="exams", Key="rec/100002/exam.mp4", Body=b"old recording 2")
    s3.put_object(Bucket="exams", Key="rec/100003/exam.mp4", Body=b"new recording")
    return s3


def test_plan_approve_execute_restore_on_a_bucket(
    sweeper: Run, tmp_path: Path, endpoint: str
) -> None:
    """Due recordings are quarantined, one is restored, and the audit log verifies."""
    s3: Any = seed(endpoint)
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "exams-s3").write_text(CREDENTIAL)
    ropa = tmp_path / "ropa.yaml"
    ropa.write_text(f"""
controller: {{name: School, contact: {{name: Office}}, dpo: {{name: FG}}}}
systems:
  - id: exams
    name: Exam recordings
    kind: bucket
    connection:
      endpoint_url: {endpoint}
      region: us-east-1
      addressing_style: path
      credential: exams-s3
      quarantine: {{bucket: exams-quarantine, prefix: q/}}
activities:
  - id: exam-recordings
    name: Exam recordings
    purposes: [exams]
    legal_basis: [public_task]
    retention: {{period: P2Y, clock: modified, action: quarantine, quarantine_for: P30D,
                 limits: {{max_fraction: 1}}}}
    locations:
      - {{system: exams, bucket: exams, prefix: rec/, key_regex: '^rec/(?P<subject>\\d+)/'}}
""")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    planned = sweeper("plan", "--ropa", str(ropa), extra_env=env)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    report = json.loads(next((tmp_path / "state" / "reports").glob("plan-*.json")).read_text())
    due = sorted(i["key"] for i in report["items"] if i["status"] == "due")
    assert due == ["rec/100001/exam.mp4", "rec/100002/exam.mp4"]
    plan_id = report["plan"]["id"]
    assert sweeper("approve", plan_id, "--by", "fg", extra_env=env).returncode == 0
    executed = sweeper("execute", plan_id, extra_env=env)
    assert executed.returncode == 0, executed.stdout + executed.stderr
    left = {v["Key"] for v in s3.list_object_versions(Bucket="exams").get("Versions", [])}
    assert left == {"rec/100003/exam.mp4"}
    restored = sweeper("restore", plan_id, "--by", "fg", "--item", due[0], extra_env=env)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert s3.get_object(Bucket="exams", Key=due[0])["Body"].read() == b"old recording"
    quarantined = {o["Key"] for o in s3.list_objects_v2(Bucket="exams-quarantine")["Contents"]}
    assert quarantined == {"q/" + due[1]}
    assert sweeper("audit", "verify").returncode == 0
    raw = b"".join(p.read_bytes() for p in (tmp_path / "state" / "audit").glob("*.jsonl"))
    assert b"e2e-secret-not-shown" not in raw and b"100001" not in raw


def test_export_s3_lifecycle_writes_rules_and_names_what_it_cannot(
    sweeper: Run, tmp_path: Path
) -> None:
    """A modified-clock rule becomes lifecycle rules; an event-clock rule is listed as not
    expressible."""
    ropa = tmp_path / "ropa.yaml"
    ropa.write_text("""
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
systems:
  - {id: sis, name: SIS, kind: sql, connection: {url: 'sqlite:///sis.db'}}
  - {id: s3, name: Objects, kind: bucket, connection: {region: eu-west-1}}
events:
  - {id: left, system: sis, table: enrolments, subject: student_id, date: end_date}
activities:
  - id: cameras
    name: Camera footage
    retention: {period: P4W, clock: modified, action: delete}
    locations: [{system: s3, bucket: cameras, prefix: footage/}]
  - id: homes
    name: Home folders
    retention: {period: P1Y, clock: {event: left}, action: delete}
    locations: [{system: s3, bucket: homes, key_regex: '^(?P<subject>\\d+)/'}]
""")
    result = sweeper("export", "s3-lifecycle", "--ropa", str(ropa), "--system", "s3")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rules = document["buckets"]["cameras"]["Rules"]
    assert rules[0]["Filter"] == {"Prefix": "footage/"}
    assert rules[0]["Expiration"] == {"Days": 28}
    assert rules[1]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert "homes" not in document["buckets"]
    assert "not expressible: homes s3:homes/: the clock is event 'left'" in result.stderr
    wrong = sweeper("export", "s3-lifecycle", "--ropa", str(ropa), "--system", "sis")
    assert wrong.returncode == 2 and "not a bucket system" in wrong.stderr
