"""The execution lock on a SQLite state store: a second taker is refused or gives up after its
wait, told who holds the lock; a holder that is gone is not reported."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sweeper.lock import LockBusy, current_holder, execution_lock
from sweeper.settings import load_settings
from sweeper.store import Store


def settings_for(tmp_path: Path, **lock: str):  # type: ignore[no-untyped-def]
    return load_settings(None, state_dir=tmp_path / "state", lock=lock or None)


def test_second_taker_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """With on_busy refuse, taking a held lock raises LockBusy naming command, pid and host."""
    settings = settings_for(tmp_path, on_busy="refuse")
    store = Store.open(settings.state_database_url)
    busy = rf"sweeper execute P1 \(pid {os.getpid()} on "
    with (
        execution_lock(settings, store, "sweeper execute P1"),
        pytest.raises(LockBusy, match=busy),
        execution_lock(settings, store, "sweeper execute P2"),
    ):
        pass
    store.close()


def test_waiting_taker_gives_up_after_wait_timeout(tmp_path: Path) -> None:
    """With on_busy wait, a taker waits lock.wait_timeout and then says it gave up."""
    settings = settings_for(tmp_path, on_busy="wait", wait_timeout="PT1S")
    store = Store.open(settings.state_database_url)
    seen = []
    with (
        execution_lock(settings, store, "the first"),
        pytest.raises(LockBusy, match="gave up after waiting PT1S for the lock held by the first"),
        execution_lock(settings, store, "the second", waiting=seen.append),
    ):
        pass
    assert seen and all(str(h).startswith("the first (pid ") for h in seen)
    store.close()


def test_lock_is_free_again_after_the_holder_leaves(tmp_path: Path) -> None:
    """Once the with block ends, the lock is free and current_holder says so."""
    settings = settings_for(tmp_path, on_busy="refuse")
    store = Store.open(settings.state_database_url)
    with execution_lock(settings, store, "the first"):
        assert str(current_holder(settings, store)).startswith("the first")
    with execution_lock(settings, store, "the second"):
        pass
    assert current_holder(settings, store) is None
    store.close()


def test_a_holder_that_is_gone_is_not_reported(tmp_path: Path) -> None:
    """A description left by a process that died (kill -9) is not taken for a holder."""
    settings = settings_for(tmp_path)
    store = Store.open(settings.state_database_url)
    (tmp_path / "state" / "execution.lock").write_text(
        json.dumps(
            {
                "pid": 2**22 + 12345,
                "host": os.uname().nodename,
                "command": "x",
                "since": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    assert current_holder(settings, store) is None
    store.close()
