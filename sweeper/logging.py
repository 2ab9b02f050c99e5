"""Operational logging through structlog, configured once, at the entry point.

On a terminal: human-readable lines. Otherwise (systemd's journal, a pipe): one JSON object per
line. A processor masks secrets before anything is rendered. The audit stream is separate.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# A secret's name, as a whole word of a snake_case or camelCase key: ``db_password``,
# ``aws_secret_access_key``, ``sessionToken``; not ``bypassed_governance`` or ``passage``.
_SECRET_WORDS = re.compile(
    r"(?:^|_)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|private_?key|credential_value)"
    r"s?(?:_|$)"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^/:@\s]*):[^@\s/]*@", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def is_secret_key(name: str) -> bool:
    """Given a field name, return whether its value must be masked as a secret."""
    words = _CAMEL.sub("_", name).lower().replace("-", "_").replace(" ", "_")
    return _SECRET_WORDS.search(words) is not None


def redact(text: str) -> str:
    """Given text, return it with any password inside a URL replaced by ***."""
    return _URL_PASSWORD.sub(r"\g<scheme>:***@", text)


def _mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if is_secret_key(key):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


def configure(verbosity: int = 0, json_output: bool | None = None) -> None:
    """Configure structlog for a CLI run or the daemon. Call once, from the entry point."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _mask,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
