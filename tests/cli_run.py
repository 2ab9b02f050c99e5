"""Run the real console script as a user would (the ``sweeper`` fixture in conftest.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

Run = Callable[..., subprocess.CompletedProcess[str]]
