"""Connectors: one module per kind of system, behind the contract in ``connectors.base``."""

from connectors.base import (
    ActRequest,
    Connector,
    ConnectorContext,
    DiscoveredStore,
    DiscoverRequest,
    NotDueSummary,
    Outcome,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from connectors.registry import available_kinds, connector_class

__all__ = [
    "ActRequest",
    "Connector",
    "ConnectorContext",
    "DiscoverRequest",
    "DiscoveredStore",
    "NotDueSummary",
    "Outcome",
    "ScanFinding",
    "ScanOutput",
    "ScanRequest",
    "ScannedItem",
    "available_kinds",
    "connector_class",
]
