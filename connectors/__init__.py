"""Connectors: one module per kind of system, behind the contract in ``connectors.base``."""

from connectors.base import (
    FULL,
    NONE,
    PARTIAL,
    ActRequest,
    Connector,
    ConnectorContext,
    DiscoveredStore,
    DiscoverRequest,
    NotDueSummary,
    Outcome,
    Sample,
    SampleRequest,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from connectors.registry import available_kinds, connector_class

__all__ = [
    "FULL",
    "NONE",
    "PARTIAL",
    "ActRequest",
    "Connector",
    "ConnectorContext",
    "DiscoverRequest",
    "DiscoveredStore",
    "NotDueSummary",
    "Outcome",
    "Sample",
    "SampleRequest",
    "ScanFinding",
    "ScanOutput",
    "ScanRequest",
    "ScannedItem",
    "available_kinds",
    "connector_class",
]
