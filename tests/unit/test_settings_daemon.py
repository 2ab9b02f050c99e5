"""The daemon's settings: timetable, lock, metrics and plan retention, each refused with its
dotted path and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sweeper import settings as settings_module
from sweeper.errors import SettingsInvalid
from sweeper.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SWEEPER_ variables and no system config file."""
    for name in list(os.environ):
        if name.upper().startswith("SWEEPER_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "DEFAULT_CONFIG", tmp_path / "no-such-config.yaml")


def problems(tmp_path: Path, text: str) -> list[str]:
    config = tmp_path / "sweeper.yaml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsInvalid) as err:
        load_settings(config)
    return [str(p) for p in err.value.problems]


def test_timetable_from_the_config_file_is_typed(tmp_path: Path) -> None:
    """Timings in the config file become Timing values, not text."""
    config = tmp_path / "sweeper.yaml"
    config.write_text("schedule: {plan: 'weekly on sunday at 01:30', timezone: UTC}\n")
    settings = load_settings(config)
    assert settings.schedule.plan.weekday == 6 and str(settings.schedule.plan.at) == "01:30:00"
    assert settings.schedule.execute.interval is not None  # the default, every hour


def test_every_timetable_problem_is_listed(tmp_path: Path) -> None:
    """Two bad timings and an unknown job are all reported, each with its dotted path."""
    found = problems(tmp_path, "schedule: {plan: 'at two', prune: 'daily at 4', backup: daily}\n")
    assert any("schedule.plan: 'at two' is not a timing" in p for p in found)
    assert any("schedule.prune: 'daily at 4' is not a timing" in p for p in found)
    assert any("schedule.backup" in p for p in found)


def test_plan_retention_must_outlive_plan_max_age(tmp_path: Path) -> None:
    """A plan_retention no longer than plan_max_age is refused: plans must not vanish early."""
    [problem] = problems(tmp_path, "plan_max_age: P30D\nplan_retention: P2W\n")
    assert "plan_retention: plan_retention (P2W) must be longer than plan_max_age (P30D)" in problem


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("0.0.0.0:9851", "metrics are served on loopback only"),
        ("192.0.2.1:9851", "metrics are served on loopback only"),
        ("127.0.0.1", "write HOST:PORT"),
        ("127.0.0.1:99999", "write HOST:PORT"),
    ],
)
def test_metrics_listen_is_loopback_only(tmp_path: Path, listen: str, message: str) -> None:
    """metrics.listen must be a loopback HOST:PORT."""
    [problem] = problems(tmp_path, f"metrics: {{listen: '{listen}'}}\n")
    assert "metrics.listen" in problem and message in problem


def test_loopback_addresses_are_accepted(tmp_path: Path) -> None:
    """127.0.0.1, [::1] and localhost are loopback addresses."""
    for listen in ("127.0.0.1:9851", "[::1]:9851", "localhost:9851"):
        config = tmp_path / "sweeper.yaml"
        config.write_text(f"metrics: {{listen: '{listen}'}}\n")
        assert load_settings(config).metrics.listen == listen


def test_lock_on_busy_takes_wait_or_refuse(tmp_path: Path) -> None:
    """lock.on_busy other than wait or refuse is refused, naming both."""
    [problem] = problems(tmp_path, "lock: {on_busy: queue}\n")
    assert "lock.on_busy" in problem and "'wait' or 'refuse'" in problem
