"""Protected accounts: found, listed as protected with the reason, never acted on."""

from __future__ import annotations

from datetime import UTC

import pytest
from directory_data import Directory

from connectors.base import ActRequest
from sweeper.errors import LocationInvalid


def _protected(directory: Directory, **location: object) -> dict[str, str | None]:
    return {name: item.reason for name, item in directory.items(**location).items() if item.refused}


def test_builtin_administrator_is_protected(ad: Directory) -> None:
    """The domain's Administrator (RID 500) is protected wherever a location finds it."""
    users = f"CN=Users,{ad.server.base}"
    found = _protected(
        ad, base_dn=users, where=[{"attribute": "sAMAccountName", "value": "Administrator"}]
    )
    assert found == {"Administrator": "a built-in account (RID 500)"}


def test_the_bind_account_is_protected(ad: Directory) -> None:
    """The sweeper's own service account is never acted on."""
    users = f"CN=Users,{ad.server.base}"
    found = _protected(
        ad, base_dn=users, where=[{"attribute": "sAMAccountName", "value": "sweeper"}]
    )
    assert found == {"sweeper": "the account the sweeper binds as"}


def test_domain_admin_is_protected(ad: Directory) -> None:
    """A member of Domain Admins is protected; an ordinary account beside it is not."""
    admin = ad.user("Beheerder")
    ad.user("Jan")
    ad.add_member(f"CN=Domain Admins,CN=Users,{ad.server.base}", admin.dn)
    found = _protected(ad)
    assert found == {"Beheerder": "member of privileged group Domain Admins"}


def test_nested_membership_is_protected(ad: Directory) -> None:
    """A member of a group inside Administrators (nested) is protected too."""
    helpdesk_admin = ad.user("Helpdesk")
    group = ad.group("ICT-Beheer", [helpdesk_admin.dn])
    ad.add_member(f"CN=Administrators,CN=Builtin,{ad.server.base}", group)
    assert _protected(ad) == {"Helpdesk": "member of privileged group Administrators"}


def test_configured_privileged_group_protects_its_members(directory: Directory) -> None:
    """A group named in privileged_groups protects its members, nested ones included."""
    inner = directory.user("Inner")
    outer = directory.user("Outer")
    directory.user("Jan")
    nested = directory.group("Nested", [inner.dn])
    directory.group("Schoolleiding", [outer.dn, nested])
    directory.connection["privileged_groups"] = ["Schoolleiding"]
    assert _protected(directory) == {
        "Inner": "member of privileged group Schoolleiding",
        "Outer": "member of privileged group Schoolleiding",
    }


def test_missing_configured_group_is_an_error(directory: Directory) -> None:
    """A privileged group that does not exist fails the location: a typo must not protect no one."""
    directory.connection["privileged_groups"] = ["Schoolleidng"]
    with pytest.raises(LocationInvalid, match="privileged group 'Schoolleidng' does not exist"):
        directory.items()


def test_protect_filter_protects_break_glass_accounts(directory: Directory) -> None:
    """An account matching a protect filter is protected with the filter's reason."""
    directory.user("breakglass-1")
    directory.user("Jan")
    directory.connection["protect"] = [{"filter": "(cn=breakglass*)", "reason": "break-glass"}]
    assert _protected(directory) == {"breakglass-1": "break-glass"}


def test_protected_account_is_refused_by_act(ad: Directory) -> None:
    """Even asked directly, the connector does not touch a protected account."""
    admin = ad.user("Beheerder")
    ad.add_member(f"CN=Domain Admins,CN=Users,{ad.server.base}", admin.dn)
    with ad.connector(read_only=False) as connector:
        connector.check()
        outcomes = list(connector.act(ActRequest(ad.location(), "delete", [admin.key])))
    assert [(o.status, o.message) for o in outcomes] == [
        ("failed", "protected: member of privileged group Domain Admins")
    ]
    assert ad.read(admin.dn, "cn") is not None


def test_account_moved_out_of_the_base_is_protected(directory: Directory) -> None:
    """Looked up by key, an account now outside the location's base is protected."""
    elsewhere = directory.sub_ou("Elders")
    jan = directory.user("Jan", parent=elsewhere)
    location = directory.location(base_dn=directory.sub_ou("Leerlingen"))
    with directory.connector() as connector:
        connector.check()
        found = connector.lookup(location, "created", UTC, [jan.key])
    assert (found[jan.key].refused, found[jan.key].reason) == (
        "protected",
        "outside the location's base DN",
    )
