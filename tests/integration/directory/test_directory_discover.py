"""Discovery: OUs with their account counts and stale accounts, for coverage findings."""

from __future__ import annotations

from datetime import timedelta

from directory_data import Directory, now

from connectors.base import DiscoveredStore, DiscoverRequest


def test_discover_lists_ous_with_accounts_and_stale_ones(ad: Directory) -> None:
    """Each OU is listed with its accounts, how many have not logged on within stale_after,
    and the span of their creation times; an empty OU is listed with none."""
    pupils = ad.sub_ou("Leerlingen")
    empty = ad.sub_ou("Leeg")
    ad.user("Jan", parent=pupils, last_logon=now() - timedelta(days=400))
    ad.user("Piet", parent=pupils, last_logon=now() - timedelta(days=3))
    ad.user("Kees", parent=pupils)  # never logged on, created just now: not stale yet
    with ad.connector() as connector:
        found = {
            s.where: s
            for s in connector.discover(DiscoverRequest(now=now(), base=ad.ou))
            if isinstance(s, DiscoveredStore)
        }
    assert (found[pupils].kind, found[pupils].items, found[pupils].stale) == ("ou", 3, 1)
    assert found[pupils].oldest is not None and found[pupils].oldest <= now()
    assert (found[empty].items, found[empty].stale) == (0, 0)


def test_discover_counts_never_used_old_accounts_as_stale(ldap: Directory) -> None:
    """An account that never logged on counts as stale once it is older than stale_after."""
    ldap.user("Jan")
    later = now() + timedelta(days=400)
    with ldap.connector() as connector:
        (store,) = [
            s
            for s in connector.discover(DiscoverRequest(now=later, base=ldap.ou))
            if isinstance(s, DiscoveredStore) and s.items
        ]
    assert (store.where, store.items, store.stale) == (ldap.ou, 1, 1)
