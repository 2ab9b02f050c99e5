"""Benchmark: `sweeper discover` over a bucket of 100,000 objects and over one of 200,000, against
a hand-written boto3 listing that reads the same objects, all on moto's S3 server on 127.0.0.1.

    .venv/bin/python bench/bucket_discover.py [--objects 100000]

Each bucket has departments of 25,000 objects in prefixes of 250 (``dept00/class0000/``: at
the default depth of 2 a store per class prefix); every 100th object is a small CSV of pupils
with BSNs, the others are one-byte recordings; half were written 400 days ago. moto runs in a
process of its own and the buckets are seeded through its backend (see bench/bucket_execute.py,
whose counting worker runs the sweeper here too). The baseline lists the bucket with
ListObjectsV2 and reads, per class prefix, the first ten CSVs with a ranged GetObject of up
to 256 KiB: the listing and reads that any discovery of the bucket has to make, without any
detection. Target: time linear in the objects, memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import Measurement, measure
from bucket_execute import KEY_ID, SECRET
from bucket_execute import worker as counting_worker
from discover import _bsn

CPU: dict[str, float] = {}


def _key(n: int) -> str:
    ext = "csv" if n % 100 == 0 else "mp4"
    return f"dept{n // 25_000:02d}/class{n // 250:04d}/object{n:07d}.{ext}"


def seed(bucket: str, objects: int) -> None:
    from freezegun import freeze_time
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(bucket, "us-east-1")
    rng = random.Random(objects)
    now = datetime.now(UTC)
    for age, parity in ((400, 0), (30, 1)):
        with freeze_time(now - timedelta(days=age)):
            for n in range(parity, objects, 2):
                body = b"x"
                if n % 100 == 0:
                    rows = "".join(f"Leerling {i};{_bsn(rng)}\n" for i in range(20))
                    body = ("naam;bsn\n" + rows).encode()
                backend.put_object(bucket, _key(n), body)


def serve(port_file: Path, sizes: list[int]) -> None:
    """Run moto's server on 127.0.0.1, seed a bucket per size, then write the port and serve."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    started = time.perf_counter()
    for size in sizes:
        seed(f"bench-discover-{size}", size)
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    port_file.write_text(str(server.get_host_and_port()[1]))
    while True:
        time.sleep(3600)


def baseline(out: Path, endpoint: str, bucket: str) -> None:
    """List the bucket and read the first ten CSVs of each class prefix, counting calls."""
    import boto3

    counts: Counter[str] = Counter()
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.meta.events.register("before-call.s3", lambda model, **_: counts.update([model.name]))
    chosen: dict[str, list[str]] = {}
    objects = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", ()):
            objects += 1
            key = entry["Key"]
            prefix = key.rsplit("/", 1)[0]
            if key.endswith(".csv") and len(chosen.setdefault(prefix, [])) < 10:
                chosen[prefix].append(key)
    for keys in chosen.values():
        for key in keys:
            body = client.get_object(Bucket=bucket, Key=key, Range="bytes=0-262143")["Body"]
            body.read()
            body.close()
    out.write_text(json.dumps(counts))


def cpu_measure(label: str, argv: list[str], **kw: Any) -> Measurement:
    before = os.times()
    measured = measure(label, argv, **kw)
    after = os.times()
    CPU[label] = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return measured


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        counting_worker(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        baseline(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--server":
        serve(Path(sys.argv[2]), [int(s) for s in sys.argv[3:]])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100_000)
    args = parser.parse_args()
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    sizes = [args.objects, 2 * args.objects]
    work = Path(tempfile.gettempdir()) / "sweeper-bench" / "work-bucket-discover"
    shutil.rmtree(work, ignore_errors=True)
    (work / "creds").mkdir(parents=True)
    (work / "creds" / "s3").write_text(
        f"aws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    )
    print(f"seeding buckets of {sizes[0]} and {sizes[1]} objects", flush=True)
    port_file = work / "port"
    here = str(Path(__file__).resolve())
    server = subprocess.Popen([sys.executable, here, "--server", str(port_file), *map(str, sizes)])
    try:
        while not port_file.exists():
            if server.poll() is not None:
                raise SystemExit("the moto server failed to start")
            time.sleep(0.5)
        endpoint = f"http://127.0.0.1:{port_file.read_text()}"
        results: list[tuple[int, Measurement, Measurement, dict[str, Any]]] = []
        for size in sizes:
            bucket = f"bench-discover-{size}"
            ropa = work / f"ropa-{size}.yaml"
            ropa.write_text(
                "controller: {name: Bench, contact: {name: Bench}, dpo: {name: FG}}\n"
                "systems:\n"
                "  - {id: s3, name: Objects, kind: bucket, connection: "
                f'{{endpoint_url: "{endpoint}", region: us-east-1, addressing_style: path, '
                "credential: s3}}\n"
                f"discovery:\n  targets:\n    - {{system: s3, base: {bucket}}}\n"
            )
            env = {
                "SWEEPER_STATE_DIR": str(work / f"state-{size}"),
                "CREDENTIALS_DIRECTORY": str(work / "creds"),
            }
            calls = work / f"calls-{size}.json"
            ours = cpu_measure(
                f"sweeper discover x{size}",
                [sys.executable, here, "--worker", str(calls), "discover", "--ropa", str(ropa)],
                env=env,
            )
            base_calls = work / f"base-{size}.json"
            base = cpu_measure(
                f"boto3 list + reads x{size}",
                [sys.executable, here, "--baseline", str(base_calls), endpoint, bucket],
            )
            report = json.loads(
                sorted((work / f"state-{size}" / "reports").glob("discovery-*.json"))[
                    -1
                ].read_text()
            )
            facts = {
                "calls": json.loads(calls.read_text()),
                "base_calls": json.loads(base_calls.read_text()),
                "stores": len(report["stores"]),
                "personal": sum(1 for s in report["stores"] if s["personal_data"]),
                "estimated": sum(s["estimated_personal_records"] for s in report["stores"]),
            }
            results.append((size, ours, base, facts))
    finally:
        server.terminate()
        server.wait()
    for size, ours, base, facts in results:
        print(f"{ours}   CPU {CPU[ours.label]:6.2f} s")
        print(f"{base}   CPU {CPU[base.label]:6.2f} s")
        print(
            f"  {size} objects: {facts['stores']} stores, {facts['personal']} with personal "
            f"data, ~{facts['estimated']} personal records (seeded: {size // 100 * 20}); "
            f"sweeper / baseline wall {ours.seconds / base.seconds:.2f}x, "
            f"CPU {CPU[ours.label] / max(0.01, CPU[base.label]):.2f}x"
        )
        print(f"  API calls, sweeper: {dict(sorted(facts['calls'].items()))}")
        print(f"  API calls, baseline: {dict(sorted(facts['base_calls'].items()))}")
    (_, one, _, _), (_, two, _, _) = results
    print(
        f"doubled: wall x{two.seconds / one.seconds:.2f}, CPU "
        f"x{CPU[two.label] / CPU[one.label]:.2f} (linear: x2.00); peak RSS "
        f"x{two.peak_rss_mb / one.peak_rss_mb:.2f} (flat: x1.00)"
    )
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
