"""The connector registry: one entry point per system kind, nothing registered twice."""

from __future__ import annotations

import typing

from connectors.registry import available_kinds, connector_class
from sweeper.ropa.model import Location, SystemKind


def _location_models() -> list[type]:
    union = typing.get_args(Location)[0]
    return [typing.get_args(member)[0] for member in typing.get_args(union)]


def test_every_system_kind_has_a_connector() -> None:
    """Each kind the RoPA model allows resolves to a connector class of that kind."""
    assert {k.value for k in SystemKind} <= available_kinds()
    for kind in SystemKind:
        assert connector_class(kind.value).kind == kind.value


def test_every_location_model_names_a_system_kind() -> None:
    """Every location model says which kind of system it belongs to, and each kind has one."""
    kinds = [model.kind for model in _location_models()]
    assert sorted(kinds) == sorted(k.value for k in SystemKind)
