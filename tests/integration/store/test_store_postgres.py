"""The state store on PostgreSQL: a dry run stores its plan there, and it reads back whole."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture
def state_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the state store, dropped afterwards."""
    name = f"sweeper_state_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is not answering ({err}); start it: {START}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def sweeper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.mark.postgres
def test_plan_is_stored_in_postgresql(state_url: str, tmp_path: Path) -> None:
    """`sweeper --state-url postgresql+psycopg://… plan` stores the plan in PostgreSQL."""
    from sweeper.demo import build_estate

    ropa = build_estate(tmp_path / "estate")
    common = ["--state-url", state_url, "--state-dir", str(tmp_path / "state")]
    result = sweeper(*common, "plan", "--ropa", str(ropa), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [report] = (tmp_path / "state" / "reports").glob("plan-*.json")
    plan = json.loads(report.read_text())["plan"]
    with psycopg.connect(state_url.replace("+psycopg", "")) as conn:
        stored = conn.execute(
            "SELECT state, content_hash, item_count FROM plans WHERE id = %s", (plan["id"],)
        ).fetchone()
        items = conn.execute(
            "SELECT count(*) FROM plan_items WHERE plan_id = %s", (plan["id"],)
        ).fetchone()
    assert stored == ("ready", plan["content_hash"], plan["item_count"])
    assert items == (plan["item_count"],)
    rendered = sweeper(*common, "report", plan["id"], "--format", "json", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    again = json.loads(rendered.stdout)
    assert again["items"] == json.loads(report.read_text())["items"]
