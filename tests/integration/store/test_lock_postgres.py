"""The execution lock on a PostgreSQL state store: agents with state directories of their own
(as on separate hosts) never overlap, the one refused is told who holds the lock, and a
holder killed with SIGKILL leaves no stale lock behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_store_postgres import state_url  # noqa: F401  (the fixture)

HOLDER = """
import sys, time
from sweeper.lock import execution_lock
from sweeper.settings import load_settings
from sweeper.store import Store
settings = load_settings(None)
store = Store.open(settings.state_database_url)
with execution_lock(settings, store, "agent A: execute job"):
    print("held", flush=True)
    time.sleep(600)
"""


def agent_env(tmp_path: Path, name: str, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPER_")}
    env.update(
        {
            "SWEEPER_STATE_URL": url,
            "SWEEPER_STATE_DIR": str(tmp_path / name),
            "SWEEPER_LOCK__ON_BUSY": "refuse",
        }
    )
    return env


def prune_once(tmp_path: Path, env: dict[str, str], ropa: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeper", "run", "--once", "prune", "--ropa", str(ropa)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def status_lock(env: dict[str, str]) -> str | None:
    """Who holds the execution lock, as `sweeper status` tells it."""
    result = subprocess.run(
        [sys.executable, "-m", "sweeper", "status", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lock: str | None = json.loads(result.stdout)["lock"]
    return lock


@pytest.mark.postgres
def test_agents_sharing_a_store_never_overlap_and_a_killed_holder_frees_it(
    state_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Agent B is refused while agent A holds the lock, and both it and sweeper status say
    who holds it; after A is killed with SIGKILL the lock is free."""
    from sweeper.demo import build_estate

    ropa = build_estate(tmp_path / "estate")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER],
        env=agent_env(tmp_path, "agent-a", state_url),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        while (line := holder.stdout.readline()) != "held\n":
            assert line, "the holder ended before it held the lock"
        refused = prune_once(tmp_path, agent_env(tmp_path, "agent-b", state_url), ropa)
        assert refused.returncode == 75, refused.stdout + refused.stderr
        message = " ".join(refused.stdout.split())
        assert f"another execution holds the lock: agent A: execute job (pid {holder.pid} on " in (
            message
        )
        told = status_lock(agent_env(tmp_path, "agent-b", state_url))
        assert told is not None and told.startswith(f"agent A: execute job (pid {holder.pid} on ")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    time.sleep(0.5)  # the server notices the dropped connection
    assert status_lock(agent_env(tmp_path, "agent-b", state_url)) is None
    freed = prune_once(tmp_path, agent_env(tmp_path, "agent-b", state_url), ropa)
    assert freed.returncode == 0, freed.stdout + freed.stderr
    assert "prune: ok" in freed.stdout
