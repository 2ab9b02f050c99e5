"""Benchmark: `sweeper plan` + `sweeper execute` on a bucket of 100,000 objects, half past a
one-year period, against a hand-written boto3 paginator + `delete_objects` loop over an
identical bucket; both against moto's S3 server on 127.0.0.1.

    .venv/bin/python bench/bucket_execute.py [--objects 100000] [--versions 1]

moto's server runs in a process of its own (the measured processes are forked from this one
and would otherwise count its memory as theirs). The buckets are seeded through the server's
own backend (an HTTP PUT per object would take longer than the benchmark), the old half under
a clock frozen 400 days back so the server records that LastModified. With ``--versions 2``
the buckets are versioned and every key has two versions. API calls are counted with
botocore's event hooks inside each measured process; wall time and peak RSS are those of
the measured process alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import SWEEPER, measure

KEY_ID, SECRET = "AKIABENCH", "bench-secret"
DAY = timedelta(days=1)


def seed(bucket: str, objects: int, versions: int) -> None:
    from freezegun import freeze_time
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    if versions > 1:
        backend.put_bucket_versioning(bucket, "Enabled")
    now = datetime.now(UTC)
    for age, parity in ((400, 0), (30, 1)):
        with freeze_time(now - age * DAY):
            for n in range(parity, objects, 2):
                for _ in range(versions):
                    backend.put_object(bucket, f"rec/{n // 1000:03d}/{n:06d}.mp4", b"x")


def worker(argv: list[str]) -> None:
    """Run the sweeper (or the baseline) in this process, counting S3 calls by operation."""
    counts: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counts[model.name] += 1

    out = Path(argv[0])
    if argv[1] == "baseline":
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=argv[2],
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )
        client.meta.events.register("before-call.s3", count)
        baseline(client, argv[3], versioned=argv[4] == "versioned")
    else:
        from connectors.bucket import BucketConnector

        make = BucketConnector._make_client

        def counted(self: BucketConnector) -> Any:
            client = make(self)
            client.meta.events.register("before-call.s3", count)
            return client

        BucketConnector._make_client = counted  # type: ignore[method-assign]
        from sweeper.cli import main

        sys.argv = ["sweeper", *argv[1:]]
        try:
            main()
        except SystemExit as exit_:
            if exit_.code:
                raise
    out.write_text(json.dumps(counts))


def baseline(client: Any, bucket: str, versioned: bool) -> None:
    """What a sysadmin would write: list, keep what is older than a year, delete in 1,000s."""
    cutoff = datetime.now(UTC) - 365 * DAY
    batch: list[dict[str, str]] = []

    def flush() -> None:
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        batch.clear()

    if versioned:
        newest: dict[str, datetime] = {}
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for v in page.get("Versions", ()):
                if v["IsLatest"]:
                    newest[v["Key"]] = v["LastModified"]
                if newest.get(v["Key"], v["LastModified"]) <= cutoff:
                    batch.append({"Key": v["Key"], "VersionId": v["VersionId"]})
                    if len(batch) == 1000:
                        flush()
    else:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", ()):
                if o["LastModified"] <= cutoff:
                    batch.append({"Key": o["Key"]})
                    if len(batch) == 1000:
                        flush()
    if batch:
        flush()


def serve(port_file: Path, objects: int, versions: int) -> None:
    """Run moto's server on 127.0.0.1, seed both buckets, then write the port and serve."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    started = time.perf_counter()
    seed("bench-sweeper", objects, versions)
    seed("bench-baseline", objects, versions)
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    port_file.write_text(str(server.get_host_and_port()[1]))
    while True:
        time.sleep(3600)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        serve(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=1)
    args = parser.parse_args()
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    work = Path(tempfile.gettempdir()) / "sweeper-bench" / "work-bucket"
    shutil.rmtree(work, ignore_errors=True)
    (work / "creds").mkdir(parents=True)
    (work / "creds" / "s3").write_text(
        f"aws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    )
    print(f"seeding two buckets of {args.objects} keys x {args.versions} version(s)", flush=True)
    port_file = work / "port"
    here = str(Path(__file__).resolve())
    server = subprocess.Popen(
        [sys.executable, here, "--server", str(port_file), str(args.objects), str(args.versions)]
    )
    while not port_file.exists():
        if server.poll() is not None:
            raise SystemExit("the moto server failed to start")
        time.sleep(0.5)
    endpoint = f"http://127.0.0.1:{port_file.read_text()}"
    ropa = work / "ropa.yaml"
    ropa.write_text(f"""
controller: {{name: Bench, contact: {{name: Bench}}, dpo: {{name: FG}}}}
systems:
  - {{id: s3, name: Objects, kind: bucket, connection: {{endpoint_url: "{endpoint}",
      region: us-east-1, addressing_style: path, credential: s3}}}}
activities:
  - id: recordings
    name: Recordings
    retention: {{period: P1Y, clock: modified, action: delete}}
    locations:
      - {{system: s3, bucket: bench-sweeper, prefix: rec/}}
""")
    env = {
        "SWEEPER_STATE_DIR": str(work / "state"),
        "SWEEPER_MAX_ITEMS_PER_RUN": "10000000",
        "CREDENTIALS_DIRECTORY": str(work / "creds"),
    }
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    plan = measure(
        "sweeper plan", [*me, str(work / "plan.json"), "plan", "--ropa", str(ropa)], env=env
    )
    plan_id = sorted((work / "state" / "reports").glob("plan-*.json"))[-1].stem[5:]
    measure("approve", [*SWEEPER, "approve", plan_id, "--by", "bench"], env=env)
    execute = measure(
        "sweeper execute", [*me, str(work / "execute.json"), "execute", plan_id], env=env
    )
    kind = "versioned" if args.versions > 1 else "plain"
    base = measure(
        "boto3 paginator + delete_objects",
        [*me, str(work / "base.json"), "baseline", endpoint, "bench-baseline", kind],
    )
    server.terminate()
    server.wait()
    calls = {
        name: json.loads((work / f"{name}.json").read_text())
        for name in ("plan", "execute", "base")
    }
    n, due = args.objects, args.objects // 2
    entries = n * args.versions
    list_bound = math.ceil(entries / 1000)
    delete_bound = math.ceil(due * args.versions / 1000)
    print(plan)
    print(execute)
    print(base)
    total = plan.seconds + execute.seconds
    print(
        f"plan + execute {total:.2f} s vs baseline {base.seconds:.2f} s: "
        f"{total / base.seconds:.2f}x (target <= 1.3x); execute alone "
        f"{execute.seconds / base.seconds:.2f}x"
    )
    print(
        f"peak RSS: plan {plan.peak_rss_mb:.0f} MB, execute {execute.peak_rss_mb:.0f} MB "
        "(target < 300 MB)"
    )
    print(f"bound: {list_bound} list calls (ceil(entries/1000)) + {delete_bound} delete calls")
    for name, counted in calls.items():
        print(f"API calls, {name}: {dict(sorted(counted.items()))}")
    scan_lists = sum(v for k, v in calls["plan"].items() if k.startswith("ListObject"))
    deletes = calls["execute"].get("DeleteObjects", 0)
    verify = sum(v for k, v in calls["execute"].items() if k.startswith("ListObject"))
    print(
        f"scan list calls {scan_lists} vs {list_bound} ({scan_lists / list_bound - 1:+.1%}); "
        f"delete calls {deletes} vs {delete_bound} ({deletes / delete_bound - 1:+.1%}); "
        f"re-verification list calls at execution {verify}"
    )


if __name__ == "__main__":
    main()
