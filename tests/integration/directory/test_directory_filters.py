"""Conditions reach the server escaped (RFC 4515): injection attempts find nothing unexpected."""

from __future__ import annotations

import pytest
from directory_data import Directory
from pydantic import ValidationError


@pytest.fixture
def pupils(directory: Directory) -> Directory:
    directory.user("Jan", attributes={"employeeNumber": "100001", "description": "Jan"})
    directory.user("Zoe", attributes={"employeeNumber": "100002", "description": "Zoe"})
    directory.user("Zoë", attributes={"employeeNumber": "100003", "description": "Zoë"})
    return directory


def _names(directory: Directory, attribute: str, value: object, op: str = "=") -> list[str]:
    where = [{"attribute": attribute, "op": op, "value": value}]
    return sorted(directory.items(where=where))


def test_wildcard_and_parentheses_are_literal(pupils: Directory) -> None:
    """The value *)(objectClass=* matches only that literal text, not every account."""
    assert _names(pupils, "employeeNumber", "*)(objectClass=*") == []
    assert _names(pupils, "employeeNumber", "*") == []


def test_injected_value_matches_an_account_holding_it_literally(pupils: Directory) -> None:
    """An account whose attribute holds the injection text is found, and only that one."""
    pupils.user("Odd", attributes={"employeeNumber": "*)(objectClass=*"})
    assert _names(pupils, "employeeNumber", "*)(objectClass=*") == ["Odd"]


def test_nul_byte_is_refused_before_any_search(pupils: Directory) -> None:
    """A value with a NUL byte is refused: Samba would end the value there and match 100001."""
    with pytest.raises(ValidationError, match="NUL byte"):
        pupils.location(where=[{"attribute": "employeeNumber", "value": "100001\x00"}])
    assert _names(pupils, "employeeNumber", "100001") == ["Jan"]


def test_non_ascii_values_match_exactly(pupils: Directory) -> None:
    """Zoë matches the account named Zoë, not Zoe."""
    assert _names(pupils, "description", "Zoë") == ["Zoë"]


def test_backslash_is_literal(pupils: Directory) -> None:
    """A backslash-escape in a value is not decoded: \\2a is three characters, not a star."""
    assert _names(pupils, "employeeNumber", "\\2a") == []


def test_in_list_is_escaped_per_value(pupils: Directory) -> None:
    """Each value of an 'in' list is escaped on its own."""
    found = _names(pupils, "employeeNumber", ["100002", "*)(cn=Jan"], op="in")
    assert found == ["Zoe"]


def test_not_equal_and_absent(pupils: Directory) -> None:
    """!= excludes the value; absent finds accounts without the attribute."""
    pupils.user("Nieuw")
    assert _names(pupils, "employeeNumber", "100001", op="!=") == ["Nieuw", "Zoe", "Zoë"]
    assert _names(pupils, "employeeNumber", None, op="absent") == ["Nieuw"]


def test_raw_filter_is_anded_with_the_conditions(pupils: Directory) -> None:
    """A raw filter narrows the conditions' result; it cannot widen it."""
    where = [{"attribute": "employeeNumber", "op": "in", "value": ["100001", "100002"]}]
    found = pupils.items(where=where, filter="(|(cn=Zoe)(cn=Zoë))")
    assert sorted(found) == ["Zoe"]
