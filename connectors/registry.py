"""Find the connector for a kind of system through the ``sweeper.connectors`` entry points.

This is the only place connectors are registered: a new connector declares an entry point in
its distribution's metadata and needs no change here.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from connectors.base import Connector
from sweeper.errors import SweeperError

GROUP = "sweeper.connectors"


@functools.cache
def available_kinds() -> frozenset[str]:
    """Return the kinds of system for which a connector is installed."""
    return frozenset(ep.name for ep in entry_points(group=GROUP))


def connector_class(kind: str) -> type[Connector]:
    """Given a system kind, return its connector class. Raise SweeperError if none exists."""
    matches = entry_points(group=GROUP, name=kind)
    if not matches:
        raise SweeperError(
            f"no connector for systems of kind {kind!r} is installed "
            f"(installed: {', '.join(sorted(available_kinds())) or 'none'})"
        )
    cls = next(iter(matches)).load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise SweeperError(f"entry point {kind!r} in {GROUP} is not a Connector class")
    return cls
