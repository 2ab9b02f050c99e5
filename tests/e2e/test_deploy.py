"""deploy/: the systemd units pass `systemd-analyze verify`, the service's exposure is rated
2.0 or lower, the sysusers and tmpfiles files create what they say, and the example settings
file is the one `sweeper config example` generates."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_run import Run

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICES = ("sweeper.service", "sweeper-oneshot.service", "sweeper-discover.service")
UNITS = (*SERVICES, "sweeper.timer", "sweeper-discover.timer")
INSTALL = "apt-get install systemd (systemd-analyze, systemd-sysusers, systemd-tmpfiles)"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL}", pytrace=False)
    return found


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A filesystem root with systemd's own units, the sweeper's units and its executable."""
    units = tmp_path / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(DEPLOY / name, units / name)
    shutil.copytree(
        "/usr/lib/systemd/system", tmp_path / "usr" / "lib" / "systemd" / "system", symlinks=True
    )
    program = tmp_path / "opt" / "ropa-sweeper" / "bin" / "sweeper"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    (tmp_path / "bin").mkdir()
    shutil.copy("/bin/kill", tmp_path / "bin" / "kill")
    return tmp_path


def test_units_pass_systemd_analyze_verify(root: Path) -> None:
    """systemd-analyze verify reports nothing about the services and the timers."""
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", f"--root={root}", *UNITS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("unit", SERVICES)
def test_service_exposure_is_rated_ok(unit: str) -> None:
    """systemd-analyze security --offline=yes rates the service 2.0 or lower ("OK")."""
    result = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=yes", str(DEPLOY / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= 2.0 and match[2] == "OK", match[0]


@pytest.mark.parametrize("unit", SERVICES[1:])
def test_every_service_has_the_daemons_identity_and_hardening(unit: str) -> None:
    """The one-shot services run as hardened as the daemon (the shared block is identical)."""

    def block(name: str) -> str:
        text = (DEPLOY / name).read_text()
        return text[text.index("User=ropa-sweeper") :].split("[Install]")[0].rstrip()

    assert block("sweeper.service") == block(unit)


@pytest.mark.parametrize(
    ("timer", "job"), [("sweeper.timer", "execute"), ("sweeper-discover.timer", "discover")]
)
def test_each_timer_starts_the_service_that_runs_its_jobs(timer: str, job: str) -> None:
    """sweeper.timer runs execute, plan and prune; sweeper-discover.timer runs discovery."""
    text = (DEPLOY / timer).read_text()
    service = re.search(r"^Unit=(\S+)$", text, re.M)
    assert service, timer
    runs = re.findall(
        r"^ExecStart=\S*sweeper run --once (\w+)$", (DEPLOY / service[1]).read_text(), re.M
    )
    assert job in runs and ("discover" in runs) == (job == "discover"), runs


def test_every_hardening_line_a_site_may_relax_says_so() -> None:
    """ReadWritePaths, ProtectHome, PrivateUsers, MemoryDenyWriteExecute, the capabilities
    and the limits carry a 'relax:' comment right above them."""
    lines = (DEPLOY / "sweeper.service").read_text().splitlines()
    for key in (
        "ReadWritePaths=",
        "ProtectHome=",
        "PrivateUsers=",
        "MemoryDenyWriteExecute=",
        "RestrictAddressFamilies=",
        "MemoryMax=",
        "TimeoutStopSec=",
        "LoadCredential=audit-key",
        "CapabilityBoundingSet=",
    ):
        [at] = [n for n, line in enumerate(lines) if line.startswith(key)]
        above = [line for line in lines[:at] if line.startswith("#")][-3:]
        assert any("relax:" in line for line in above), key


def test_sysusers_and_tmpfiles_create_the_user_and_its_folders(tmp_path: Path) -> None:
    """In an empty root, systemd-sysusers creates the user and systemd-tmpfiles the folders
    with the owners and modes the units expect."""
    (tmp_path / "etc").mkdir()
    subprocess.run(
        [tool("systemd-sysusers"), f"--root={tmp_path}", DEPLOY / "sysusers.d-ropa-sweeper.conf"],
        check=True,
        capture_output=True,
    )
    passwd = (tmp_path / "etc" / "passwd").read_text()
    [entry] = [line for line in passwd.splitlines() if line.startswith("ropa-sweeper:")]
    uid = int(entry.split(":")[2])
    subprocess.run(
        [
            tool("systemd-tmpfiles"),
            f"--root={tmp_path}",
            "--create",
            DEPLOY / "tmpfiles.d-ropa-sweeper.conf",
        ],
        check=True,
        capture_output=True,
    )
    state = (tmp_path / "var" / "lib" / "ropa-sweeper").stat()
    assert (state.st_uid, state.st_mode & 0o777) == (uid, 0o750)
    credentials = (tmp_path / "etc" / "ropa-sweeper" / "credentials").stat()
    assert (credentials.st_uid, credentials.st_mode & 0o777) == (0, 0o700)


def test_example_settings_file_is_the_generated_one(sweeper: Run) -> None:
    """deploy/sweeper.yaml is exactly what `sweeper config example` prints."""
    result = sweeper("config", "example")
    assert result.returncode == 0, result.stderr
    assert (DEPLOY / "sweeper.yaml").read_text() == result.stdout, (
        "regenerate it: sweeper config example > deploy/sweeper.yaml"
    )


def test_example_settings_load_with_every_line_uncommented(tmp_path: Path) -> None:
    """Uncommenting every setting of the example gives valid settings equal to the defaults."""
    from sweeper.settings import Settings, load_settings

    text = (DEPLOY / "sweeper.yaml").read_text()
    uncommented = re.sub(r"^(\s*)# (\w+:)", r"\1\2", text, flags=re.MULTILINE)
    config = tmp_path / "sweeper.yaml"
    config.write_text(uncommented)
    loaded = load_settings(config)
    defaults = Settings()
    for name in Settings.model_fields:
        if name in ("state_dir", "credentials_dir"):
            continue
        assert getattr(loaded, name) == getattr(defaults, name), name
    assert loaded.state_dir == Path("/var/lib/ropa-sweeper")
