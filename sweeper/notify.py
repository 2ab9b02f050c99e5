"""systemd's notification protocol (sd_notify(3)): READY=1, STATUS=…, WATCHDOG=1, STOPPING=1.

Messages are datagrams to the AF_UNIX socket named by ``$NOTIFY_SOCKET``; a name starting with
``@`` is an abstract socket. Without ``$NOTIFY_SOCKET`` (not under systemd, or not
``Type=notify``) every call does nothing. A message that cannot be sent is logged and
dropped: a notification must never stop the daemon.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import timedelta

import structlog

log = structlog.get_logger("sweeper.notify")


class Notifier:
    """Sends notifications to systemd; create it with ``Notifier.from_environment()``."""

    def __init__(self, address: str | None, watchdog: timedelta | None = None) -> None:
        self.address = address
        self.watchdog = watchdog
        self._lock = threading.Lock()  # the watchdog thread sends too
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls) -> Notifier:
        """Return a notifier for ``$NOTIFY_SOCKET``, with the watchdog interval of
        ``$WATCHDOG_USEC`` when ``$WATCHDOG_PID`` is unset or this process."""
        address = os.environ.get("NOTIFY_SOCKET") or None
        watchdog = None
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = timedelta(microseconds=int(usec))
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str) -> None:
        """Send one message, e.g. ``send(READY="1", STATUS="idle")``."""
        if self.address is None:
            return
        message = "\n".join(f"{k}={v.replace(chr(10), ' ')}" for k, v in fields.items())
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message.encode("utf-8"), target)
        except OSError as err:
            log.warning("cannot notify systemd", socket=self.address, error=str(err))

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        self.send(STATUS=status)

    def ping(self) -> None:
        self.send(WATCHDOG="1")

    def stopping(self, status: str) -> None:
        self.send(STOPPING="1", STATUS=status)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
