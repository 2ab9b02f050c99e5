"""Connectors: one module per kind of system, behind the contract in ``connectors.base``."""

from connectors.base import (
    Connector,
    ConnectorContext,
    NotDueSummary,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from connectors.registry import available_kinds, connector_class

__all__ = [
    "Connector",
    "ConnectorContext",
    "NotDueSummary",
    "ScanFinding",
    "ScanOutput",
    "ScanRequest",
    "ScannedItem",
    "available_kinds",
    "connector_class",
]
