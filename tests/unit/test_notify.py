"""sd_notify: messages reach the socket systemd names, path or abstract; no socket, no-op."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import pytest

from sweeper.notify import Notifier


def listener(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_messages_reach_a_socket_path(tmp_path: Path) -> None:
    """READY=1 with STATUS= arrives as one datagram on a path socket."""
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        Notifier(path).ready("idle")
        assert sock.recv(4096) == b"READY=1\nSTATUS=idle"


def test_messages_reach_an_abstract_socket() -> None:
    """A NOTIFY_SOCKET starting with @ is an abstract socket."""
    name = f"sweeper-test-{secrets.token_hex(6)}"
    with listener("\0" + name) as sock:
        Notifier("@" + name).ping()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_status_is_one_line(tmp_path: Path) -> None:
    """A newline inside a status cannot start a second field."""
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        Notifier(path).status("plan failed:\nREADY=1")
        assert sock.recv(4096) == b"STATUS=plan failed: READY=1"


def test_without_a_socket_nothing_is_sent() -> None:
    """Outside systemd the notifier is disabled and sending does nothing."""
    notifier = Notifier(None)
    notifier.ready("idle")
    assert not notifier.enabled


def test_unreachable_socket_does_not_raise(tmp_path: Path) -> None:
    """A socket that is gone is logged, never raised: a notification must not stop the daemon."""
    Notifier(str(tmp_path / "gone")).ready("idle")


def test_watchdog_interval_is_read_for_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """WATCHDOG_USEC applies when WATCHDOG_PID is this process, and not for another one."""
    monkeypatch.setenv("NOTIFY_SOCKET", "@x")
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert Notifier.from_environment().watchdog is not None
    assert Notifier.from_environment().watchdog.total_seconds() == 2.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert Notifier.from_environment().watchdog is None
