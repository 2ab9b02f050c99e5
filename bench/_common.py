"""Shared helpers for the benchmarks: run a command, measure wall time and peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWEEPER = [sys.executable, "-m", "sweeper"]


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_rss_mb: float

    def __str__(self) -> str:
        return f"{self.label:<40} {self.seconds:8.2f} s   peak RSS {self.peak_rss_mb:7.1f} MB"


def measure(
    label: str,
    argv: list[str],
    *,
    stdout_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> Measurement:
    """Run argv to completion; return its wall time and its own peak RSS (not the parent's).

    Standard output goes to ``stdout_path`` (truncated first) or is discarded."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
    start = time.perf_counter()
    err = tempfile.TemporaryFile()  # noqa: SIM115  (a file, not a pipe: no deadlock)
    proc = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    err.close()
    if stdout_path:
        out.close()  # type: ignore[union-attr]
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{label} failed with exit code {code}:\n{stderr[-3000:]}")
    return Measurement(label, seconds, usage.ru_maxrss / 1024)


def best_of(n: int, label: str, argv: list[str], **kw: object) -> Measurement:
    """Run n times; keep the fastest wall time and the largest peak RSS."""
    runs = [measure(label, argv, **kw) for _ in range(n)]  # type: ignore[arg-type]
    return Measurement(label, min(r.seconds for r in runs), max(r.peak_rss_mb for r in runs))


def report(baseline: Measurement, ours: Measurement, *others: Measurement, target: float) -> None:
    print(baseline)
    print(ours)
    for other in others:
        print(other)
    ratio = ours.seconds / baseline.seconds
    verdict = "within" if ratio <= target else "OVER"
    print(
        f"ratio sweeper / {baseline.label.split()[0]}: {ratio:.2f}x "
        f"(target <= {target}x: {verdict}); sweeper peak RSS {ours.peak_rss_mb:.0f} MB "
        f"(target < 300 MB)"
    )
    for other in others:
        print(f"ratio sweeper / {other.label.split()[0]}: {ours.seconds / other.seconds:.2f}x")
