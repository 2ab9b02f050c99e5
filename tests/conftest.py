"""Fixtures for every test folder: the real console script, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import Run


@pytest.fixture
def sweeper(tmp_path: Path) -> Run:
    """Return a function that runs ``sweeper ARGS`` with its own state dir, without a TTY."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SWEEPER_") and k != "CREDENTIALS_DIRECTORY"
    }
    env["SWEEPER_STATE_DIR"] = str(tmp_path / "state")
    env["COLUMNS"] = "200"

    def run(
        *args: str,
        extra_env: dict[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sweeper", *args],
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            cwd=cwd or tmp_path,
            timeout=timeout,
            check=False,
        )

    return run
