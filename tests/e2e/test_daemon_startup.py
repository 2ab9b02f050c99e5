"""Bad input stops the daemon at start-up, before READY, with what to fix: missing or unreadable
credential files, an unwritable state directory, an invalid timetable."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from daemon_process import Daemon, base_env

ROPA = """
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: Europe/Amsterdam
systems:
  - id: sis
    name: SIS
    kind: sql
    owner: IT
    connection: {url: "postgresql+psycopg://sweeper@127.0.0.1:5432/sis", credential: sis-db}
activities:
  - id: pupils
    name: Pupils
    retention: {period: P5Y, clock: created, action: delete}
    locations:
      - {system: sis, table: students, key: id, clock: {column: created_at}}
"""


def start_refused(tmp_path: Path, env: dict[str, str], prefix: tuple[str, ...] = ()) -> str:
    """Start the daemon, expect exit 2 without READY; return its stderr as one line."""
    daemon = Daemon(tmp_path, env, watchdog_usec=None, prefix=prefix)
    try:
        assert daemon.wait(timeout=60) == 2
        assert not any(m.get("READY") for m in daemon.notify.messages)
        return " ".join(daemon.stderr_path.read_text().split())
    finally:
        daemon.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "ropa.yaml").write_text(ROPA)
    (tmp_path / "credentials").mkdir()
    return base_env(
        tmp_path,
        SWEEPER_ROPA=str(tmp_path / "ropa.yaml"),
        CREDENTIALS_DIRECTORY=str(tmp_path / "credentials"),
    )


def test_missing_credential_file_is_reported_before_ready(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A credential the RoPA names without its file: exit 2, naming it and LoadCredential=."""
    message = start_refused(tmp_path, env)
    assert "systems.sis" in message and "credential 'sis-db' is not set" in message
    assert str(tmp_path / "credentials" / "sis-db") in message
    assert "LoadCredential=sis-db:" in message


def test_unreadable_credential_file_is_reported_before_ready(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A credential file that cannot be read: exit 2, naming the file and why."""
    (tmp_path / "credentials" / "sis-db").mkdir()  # root reads any file; a folder it cannot
    message = start_refused(tmp_path, env)
    assert f"cannot read {tmp_path / 'credentials' / 'sis-db'}: Is a directory" in message


def test_unwritable_state_directory_is_reported_before_ready(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A read-only state directory: exit 2, naming it and how to make it writable."""
    (tmp_path / "credentials" / "sis-db").write_text("secret-password\n")
    state = tmp_path / "state"
    state.mkdir()
    unshare = shutil.which("unshare")
    assert unshare, "needs unshare (util-linux): apt-get install util-linux"
    probe = subprocess.run([unshare, "--mount", "true"], capture_output=True, check=False)
    assert probe.returncode == 0, f"unshare --mount failed: {probe.stderr!r}"
    # A read-only mount over the state dir, in a mount namespace of the daemon's own: even
    # root cannot write there.
    prefix = (
        unshare,
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        f'mount -t tmpfs -o ro none "{state}" && exec "$@"',
        "sh",
    )
    message = start_refused(tmp_path, env, prefix)
    assert f"state_dir: error: {state}: cannot write there (Read-only file system)" in message
    assert "ReadWritePaths=" in message
    assert "secret-password" not in message


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (
            "SWEEPER_SCHEDULE__PLAN",
            "dayly at 02:00",
            "SWEEPER_SCHEDULE__PLAN: error: schedule.plan: 'dayly at 02:00' is not a timing: "
            "write e.g. 'daily at 02:00'",
        ),
        (
            "SWEEPER_SCHEDULE__EXECUTE",
            "every hour at 3",
            "schedule.execute: 'every hour at 3' is not a timing",
        ),
        (
            "SWEEPER_SCHEDULE__TIMEZONE",
            "Europe/Amsterdamm",
            "schedule.timezone: 'Europe/Amsterdamm' is not an IANA timezone",
        ),
        (
            "SWEEPER_SCHEDULE__DISCOVER",
            "weekly on sundag at 03:00",
            "schedule.discover: 'weekly on sundag at 03:00' is not a timing",
        ),
    ],
)
def test_invalid_timetable_is_reported_before_ready(
    tmp_path: Path, env: dict[str, str], setting: str, value: str, expected: str
) -> None:
    """An invalid timetable: exit 2 naming the setting and the fix."""
    (tmp_path / "credentials" / "sis-db").write_text("secret-password\n")
    message = start_refused(tmp_path, {**env, setting: value})
    assert expected in message


def test_invalid_timetable_in_the_config_file_names_the_file(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A bad timing in the settings file is reported with the file and the dotted path."""
    (tmp_path / "credentials" / "sis-db").write_text("secret-password\n")
    config = tmp_path / "sweeper.yaml"
    config.write_text("schedule:\n  prune: daily at 4am\n")
    env = {k: v for k, v in env.items() if not k.startswith("SWEEPER_SCHEDULE__")}
    message = start_refused(tmp_path, {**env, "SWEEPER_CONFIG": str(config)})
    assert f"{config}: error: schedule.prune: 'daily at 4am' is not a timing" in message
