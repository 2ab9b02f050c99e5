"""Discovery: OUs with their account counts and stale accounts, to a depth below a base; OUs
whose contents the sweeper may not see; bounded samples of accounts; places and coverage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from directory_data import Directory, now

from connectors.base import (
    FULL,
    NONE,
    PARTIAL,
    DiscoveredStore,
    DiscoverRequest,
    Sample,
    SampleRequest,
    ScanFinding,
)
from sweeper.errors import LocationInvalid


def discover(
    directory: Directory, **request: Any
) -> tuple[dict[str, DiscoveredStore], list[ScanFinding]]:
    """Discover below the test's OU; return the stores by DN and the findings."""
    request.setdefault("now", now())
    request.setdefault("base", directory.ou)
    stores: dict[str, DiscoveredStore] = {}
    findings: list[ScanFinding] = []
    with directory.connector() as connector:
        for out in connector.discover(DiscoverRequest(**request)):
            if isinstance(out, DiscoveredStore):
                stores[out.where] = out
            else:
                findings.append(out)
    return stores, findings


def test_discover_lists_ous_with_accounts_and_stale_ones(ad: Directory) -> None:
    """Each OU is listed with its accounts, how many have not logged on within stale_after,
    and the span of their creation times; an empty OU is listed with none."""
    pupils = ad.sub_ou("Leerlingen")
    empty = ad.sub_ou("Leeg")
    ad.user("Jan", parent=pupils, last_logon=now() - timedelta(days=400))
    ad.user("Piet", parent=pupils, last_logon=now() - timedelta(days=3), disabled=True)
    ad.user("Kees", parent=pupils)  # never logged on, created just now: not stale yet
    found, findings = discover(ad)
    assert (found[pupils].kind, found[pupils].items, found[pupils].stale) == ("ou", 3, 1)
    assert found[pupils].details is not None and found[pupils].details["disabled"] == 1
    assert found[pupils].oldest is not None and found[pupils].oldest <= now()
    assert (found[empty].items, found[empty].stale) == (0, 0)
    assert findings == []


def test_discover_reports_the_accounts_it_counts(ldap: Directory) -> None:
    """listed hears of every account counted, before any OU is given."""
    pupils = ldap.sub_ou("Leerlingen")
    for name in ("Jan", "Piet", "Kees"):
        ldap.user(name, parent=pupils)
    heard: list[tuple[int, int]] = []
    found: dict[str, DiscoveredStore] = {}
    with ldap.connector() as connector:
        request = DiscoverRequest(
            now=now(), base=ldap.ou, listed=lambda n: heard.append((n, len(found)))
        )
        for out in connector.discover(request):
            if isinstance(out, DiscoveredStore):
                found[out.where] = out
    assert found[pupils].items == 3
    assert sum(n for n, _ in heard) == sum(s.items or 0 for s in found.values()) == 3
    assert all(given == 0 for _, given in heard)


def test_discover_counts_never_used_old_accounts_as_stale(ldap: Directory) -> None:
    """An account that never logged on counts as stale once it is older than stale_after."""
    ldap.user("Jan")
    found, _ = discover(ldap, now=now() + timedelta(days=400))
    (store,) = [s for s in found.values() if s.items]
    assert (store.where, store.items, store.stale) == (ldap.ou, 1, 1)


def test_ous_below_the_depth_count_in_their_ancestor(ad: Directory) -> None:
    """With depth 1, an OU one level below the base counts the accounts of its sub-OUs
    (extent subtree); the sub-OUs are no stores of their own; the base counts its own."""
    pupils = ad.sub_ou("Leerlingen")
    klas = ad.sub_ou("4a", parent=pupils)
    ad.user("Jan", parent=pupils)
    ad.user("Piet", parent=klas)
    ad.user("Kees", parent=klas)
    ad.user("Beheer")
    found, _ = discover(ad, depth=1)
    assert set(found) == {ad.ou, pupils}
    assert found[pupils].items == 3 and found[pupils].details is not None
    assert (found[pupils].details["extent"], found[pupils].details["below"]) == ("subtree", 2)
    assert (found[ad.ou].items, found[ad.ou].details["extent"]) == (1, "one")  # type: ignore[index]


def test_excluded_ous_are_neither_listed_nor_counted(ldap: Directory) -> None:
    """An OU matching an exclude pattern (by RDN, case aside) is left out with its subtree."""
    test = ldap.sub_ou("TestKlas")
    kept = ldap.sub_ou("Leerlingen")
    ldap.user("Jan", parent=test)
    ldap.user("Piet", parent=kept)
    found, _ = discover(ldap, exclude=("ou=test*",))
    assert test not in found and found[kept].items == 1


def test_a_base_that_does_not_exist_is_an_error(ldap: Directory) -> None:
    """Discovery below a base DN that does not exist stops with an error naming it."""
    with pytest.raises(LocationInvalid, match="discovery base 'ou=nope"):
        discover(ldap, base=f"ou=nope,{ldap.ou}")


def test_an_ou_the_account_may_not_list_is_uninspectable(directory: Directory) -> None:
    """An OU whose contents the sweeper's account may not see is an 'uninspectable' finding,
    its accounts unknown rather than none; an empty OU beside it is just empty."""
    closed = directory.closed_ou()
    empty = directory.sub_ou("leeg")
    found, findings = discover(directory)
    assert [(f.kind, f.where) for f in findings] == [("uninspectable", closed)]
    assert "cannot be inspected" in findings[0].message
    assert found[closed].items is None
    assert found[empty].items == 0


def test_a_sample_reads_the_accounts_text_attributes(directory: Directory) -> None:
    """A sample holds the accounts' text attributes (mail, employeeNumber, phone), photos by
    name only, and none of the attributes every account has (cn, uid, GUIDs, times)."""
    leavers = directory.sub_ou("Vertrokken")
    for n in range(3):
        directory.user(
            f"Leerling{n}",
            parent=leavers,
            attributes={
                "mail": f"leerling{n}@example.nl",
                "employeeNumber": f"73519{n:03d}",
                "mobile": f"06-4823{n:04d}",
                "jpegPhoto": b"\xff\xd8\xff\xe0 not a real photo",
            },
        )
    found, _ = discover(directory)
    with directory.connector() as connector:
        samples = list(connector.sample(SampleRequest(store=found[leavers], rows=2)))
    (sample,) = samples
    assert isinstance(sample, Sample) and sample.fields is not None
    fields = {f.lower(): i for i, f in enumerate(sample.fields)}
    assert {"mail", "employeenumber", "mobile", "jpegphoto"} <= set(fields)
    assert not {"cn", "uid", "objectguid", "entryuuid", "whencreated", "samaccountname"} & set(
        fields
    )
    assert len(sample.rows) == 2
    mails = {f"leerling{n}@example.nl" for n in range(3)}
    assert {row[fields["mail"]] for row in sample.rows} < mails
    assert sample.rows[0][fields["jpegphoto"]] is None


def test_a_location_covers_the_ous_its_base_and_scope_reach(ad: Directory) -> None:
    """A location covers its base OU and the OUs below it; conditions make that partial; a
    one-level location does not reach sub-OUs, and covers only part of an OU counting its
    subtree; so does a base inside such an OU."""
    pupils = ad.sub_ou("Leerlingen")
    klas = ad.sub_ou("4a", parent=pupils)
    ad.user("Jan", parent=klas)
    ad.user("Els", parent=pupils)
    found, _ = discover(ad, depth=2)
    folded, _ = discover(ad, depth=0)
    with ad.connector() as connector:

        def cover(store: DiscoveredStore, **location: Any) -> str:
            return connector.coverage(ad.location(**location), connector.locate(store), store)

        assert cover(found[klas], base_dn=pupils) == FULL
        assert cover(found[klas], base_dn=pupils, filter="(department=Docenten)") == PARTIAL
        present = [{"attribute": "mail", "op": "present"}]
        assert cover(found[klas], base_dn=pupils, where=present) == PARTIAL
        assert cover(found[klas], base_dn=pupils, scope="one") == NONE
        assert cover(found[pupils], base_dn=klas) == NONE  # extent one: its own accounts
        assert cover(folded[ad.ou], base_dn=klas) == PARTIAL  # extent subtree
        assert cover(folded[ad.ou], base_dn=ad.ou, scope="one") == PARTIAL  # Jan is below


def test_the_same_directory_through_another_server_is_the_same_place(
    ad: Directory, ldap: Directory
) -> None:
    """Two systems reaching one directory (LDAPS on 636, StartTLS on 389) give an OU the
    same place; another directory with the same DN suffix gives another place, which the
    first directory's locations do not cover."""
    pupils = ad.sub_ou("Leerlingen")
    ad.user("Jan", parent=pupils)
    found, _ = discover(ad)
    store = found[pupils]
    with ad.connector() as ldaps, ad.connector(servers=["ldap://127.0.0.1:389"]) as starttls:
        assert ldaps.locate(store) == starttls.locate(store)
        assert ldaps.scope(DiscoverRequest(now=now(), base=pupils)) == ldaps.locate(store)
    other = ldap.sub_ou("Leerlingen")
    ldap.user("Jan", parent=other)
    elsewhere, _ = discover(ldap)
    with ldap.connector() as openldap, ad.connector() as samba:
        place = openldap.locate(elsewhere[other])
        assert place[:2] != samba.locate(store)[:2]
        assert samba.coverage(ad.location(base_dn=ad.server.base), place, store) == NONE


def test_an_ou_holding_only_sub_ous_is_no_store(ldap: Directory) -> None:
    """An OU without accounts of its own whose sub-OUs are stores is structure, not listed;
    an empty OU without sub-OUs is listed with no accounts."""
    school = ldap.sub_ou("School")
    pupils = ldap.sub_ou("Leerlingen", parent=school)
    ldap.user("Jan", parent=pupils)
    empty = ldap.sub_ou("Leeg")
    found, _ = discover(ldap, depth=2)
    assert school not in found and ldap.ou not in found
    assert (found[pupils].items, found[empty].items) == (1, 0)
