"""Staged deletion of accounts (sweeper.plan.stage_delete): disable first, delete only after
the account has been disabled, by the sweeper and unchanged since, for the disabled period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.base import ScannedItem
from sweeper.plan import stage_delete
from sweeper.retention import Period

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
THIRTY_DAYS = Period(days=30)


def account(disabled: bool, fingerprint: str = "usn-7") -> ScannedItem:
    return ScannedItem("guid", "100001", NOW, fingerprint, disabled=disabled)


def test_enabled_account_is_disabled_first() -> None:
    """An account that is still enabled is disabled, deletable a disabled period later."""
    stage = stage_delete(account(False), THIRTY_DAYS, None, NOW)
    assert (stage.action, stage.deletable_on) == ("disable", NOW + timedelta(days=30))
    assert "deletable from 2026-12-29" in stage.reason


def test_account_disabled_by_someone_else_is_disabled_again() -> None:
    """A disabled account without the sweeper's record gets disable: the waiting starts now."""
    stage = stage_delete(account(True), THIRTY_DAYS, None, NOW)
    assert stage.action == "disable"


def test_account_disabled_long_enough_is_deleted() -> None:
    """Disabled by the sweeper 30 days ago and unchanged since: delete."""
    record = (NOW - timedelta(days=30), "usn-7")
    assert stage_delete(account(True), THIRTY_DAYS, record, NOW).action == "delete"


def test_account_still_waiting_is_not_acted_on() -> None:
    """Disabled by the sweeper 29 days ago: nothing yet, deletable in a day."""
    record = (NOW - timedelta(days=29), "usn-7")
    stage = stage_delete(account(True), THIRTY_DAYS, record, NOW)
    assert (stage.action, stage.deletable_on) == (None, NOW + timedelta(days=1))


def test_account_changed_since_the_sweeper_disabled_it_waits_again() -> None:
    """A record whose fingerprint differs (someone re-enabled and disabled it) does not count."""
    record = (NOW - timedelta(days=90), "usn-7")
    assert stage_delete(account(True, "usn-9"), THIRTY_DAYS, record, NOW).action == "disable"


def test_zero_disabled_period_deletes_at_the_next_run() -> None:
    """P0D: disabled now, deletable by the next plan."""
    record = (NOW - timedelta(seconds=1), "usn-7")
    assert stage_delete(account(True), Period(), record, NOW).action == "delete"
