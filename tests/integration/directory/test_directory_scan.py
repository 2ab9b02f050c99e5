"""Scanning accounts: keys, subjects, fingerprints, clocks and paging, on Samba AD and OpenLDAP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import ldap3
import pytest
from directory_data import Directory, now
from directory_servers import SWEEPER_PASSWORD
from tcp_proxy import Relay

from connectors.base import NotDueSummary, ScannedItem, ScanRequest
from connectors.directory import from_ad_time
from sweeper.errors import SystemUnreachable

LONG_AGO = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_scan_keys_accounts_by_guid_with_subject(directory: Directory) -> None:
    """Each account is an item keyed by its GUID, with the subject from the subject attribute."""
    jan = directory.user("Jan", attributes={"employeeNumber": "100001"})
    items = directory.items(subject="employeeNumber")
    assert items["Jan"].key == jan.key
    assert items["Jan"].subject == "100001"


def test_scan_reports_the_listed_attributes(directory: Directory) -> None:
    """The location's report attributes appear in the item's details, with its DN."""
    directory.user("Jan", attributes={"departmentNumber": "4B", "mail": "jan@school.test"})
    details = directory.items(report=["mail", "departmentNumber"])["Jan"].details
    assert details is not None
    assert (details["mail"], details["departmentNumber"]) == ("jan@school.test", "4B")
    assert details["dn"].lower().startswith("cn=jan,")


def test_fingerprint_changes_when_the_account_changes(directory: Directory) -> None:
    """Changing any attribute of an account changes its fingerprint."""
    jan = directory.user("Jan")
    before = directory.items()["Jan"].fingerprint
    with directory.admin as conn:
        conn.modify(jan.dn, {"description": [(ldap3.MODIFY_REPLACE, ["changed"])]})
    assert directory.items()["Jan"].fingerprint != before


def test_created_clock_is_the_creation_time(directory: Directory) -> None:
    """The created clock is whenCreated / createTimestamp: the moment the account was added."""
    before = now().replace(microsecond=0) - timedelta(seconds=1)
    directory.user("Jan")
    clock = directory.items("created")["Jan"].clock
    assert clock is not None and before <= clock <= now()


def test_scan_only_finds_the_object_class(ad: Directory) -> None:
    """A default AD location finds users, not computers (which are users too) or groups."""
    ad.user("Jan")
    with ad.admin as conn:
        conn.add(
            f"CN=PC1,{ad.ou}",
            ["top", "person", "organizationalPerson", "user", "computer"],
            {"sAMAccountName": "PC1$", "userAccountControl": "4096"},
        )
    ad.group("Klas4B", [])
    assert sorted(ad.items()) == ["Jan"]


def test_scope_one_leaves_sub_ous_out(directory: Directory) -> None:
    """Scope one finds the accounts directly in the base, not those in OUs below it."""
    directory.user("Jan")
    directory.user("Piet", parent=directory.sub_ou("Klas4B"))
    assert sorted(directory.items()) == ["Jan", "Piet"]
    assert sorted(directory.items(scope="one")) == ["Jan"]


def test_last_login_adds_the_safety_margin(ad: Directory) -> None:
    """The last_login clock is lastLogonTimestamp plus 14 days: AD updates it that late."""
    ad.user("Jan", last_logon=LONG_AGO)
    assert ad.items("last_login")["Jan"].clock == LONG_AGO + timedelta(days=14)


def test_last_login_margin_is_configurable(ad: Directory) -> None:
    """A location's last_login_margin replaces the default 14 days."""
    ad.user("Jan", last_logon=LONG_AGO)
    clock = ad.items("last_login", last_login_margin="P3D")["Jan"].clock
    assert clock == LONG_AGO + timedelta(days=3)


def test_never_logged_on_counts_from_creation(ad: Directory) -> None:
    """An account that never logged on has the last_login clock of its creation."""
    ad.user("Jan")
    item = ad.items("last_login")["Jan"]
    created = ad.items("created")["Jan"].clock
    assert item.clock == created
    assert item.details is not None and item.details["last_login"] == "never logged on"


def test_last_login_on_every_dc_takes_the_latest(ad: Directory) -> None:
    """With last_login_every_dc the clock is the latest exact lastLogon, without a margin."""
    jan = ad.user("Jan", last_logon=LONG_AGO)
    exact = LONG_AGO + timedelta(days=9, hours=3)
    with ad.admin as conn:
        conn.modify(jan.dn, {"lastLogon": [(ldap3.MODIFY_REPLACE, [str(from_ad_time(exact))])]})
    with Relay(636) as second_dc:
        servers = ["ldaps://127.0.0.1:636", f"ldaps://127.0.0.1:{second_dc.port}"]
        connector = ad.connector(servers=servers)
        items = ad.scan("last_login", connector=connector, last_login_every_dc=True)
    jan_item = next(i for i in items if isinstance(i, ScannedItem))
    assert jan_item.clock == exact


def test_last_login_on_every_dc_fails_when_one_is_down(ad: Directory) -> None:
    """A listed DC that does not answer fails the scan: the last logon is not known then."""
    ad.user("Jan", last_logon=LONG_AGO)
    relay = Relay(636)
    servers = ["ldaps://127.0.0.1:636", f"ldaps://127.0.0.1:{relay.port}"]
    relay.cut()
    connector = ad.connector(servers=servers, timeout=3)
    with pytest.raises(SystemUnreachable, match=f"127.0.0.1:{relay.port}"):
        ad.scan("last_login", connector=connector, last_login_every_dc=True)


def test_attribute_clock_reads_ad_large_integers(ad: Directory) -> None:
    """{attribute: accountExpires} reads AD's 100-ns large integer time."""
    expires = datetime(2025, 7, 31, 22, 0, tzinfo=UTC)
    ad.user("Jan", attributes={"accountExpires": str(from_ad_time(expires))})
    assert ad.items({"attribute": "accountExpires"})["Jan"].clock == expires


def test_attribute_clock_never_values_have_no_clock_yet(ad: Directory) -> None:
    """accountExpires 0 and 0x7FFFFFFFFFFFFFFF mean never: no clock, and no problem."""
    ad.user("Nul", attributes={"accountExpires": "0"})
    ad.user("Max", attributes={"accountExpires": str(0x7FFFFFFFFFFFFFFF)})
    items = ad.items({"attribute": "accountExpires"})
    assert [(i.clock, i.problem) for i in items.values()] == [(None, None), (None, None)]


def test_attribute_clock_reads_generalized_time(ldap: Directory) -> None:
    """{attribute: NAME} reads a Generalized Time attribute (here OpenLDAP's lock time)."""
    ldap.user("Jan", attributes={"pwdAccountLockedTime": "20250102030405Z"})
    clock = ldap.items({"attribute": "pwdAccountLockedTime"})["Jan"].clock
    assert clock == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_cutoff_counts_accounts_not_yet_due(directory: Directory) -> None:
    """With a cutoff, accounts whose clock is after it are counted, not listed."""
    directory.user("Jan")
    directory.user("Piet")
    out = directory.scan("created", cutoff=now() - timedelta(days=1))
    assert [o for o in out if isinstance(o, ScannedItem)] == []
    summaries = [o for o in out if isinstance(o, NotDueSummary)]
    assert [s.count for s in summaries] == [2]


def test_paged_search_reads_more_than_one_page(ldap: Directory) -> None:
    """Accounts beyond one page are all read, even where the server refuses a plain search of
    more than three entries (slapd's size limit for the sweeper)."""
    for n in range(7):
        ldap.user(f"p{n}")
    plain = ldap3.Connection(
        ldap3.Server(ldap.server.url), user=ldap.server.sweeper_dn, password=SWEEPER_PASSWORD
    )
    plain.bind()
    plain.search(ldap.ou, "(objectClass=inetOrgPerson)")
    assert plain.result["description"] == "sizeLimitExceeded"
    connector = ldap.connector(page_size=2)
    items = ldap.scan(connector=connector)
    assert len([i for i in items if isinstance(i, ScannedItem)]) == 7


def test_paged_search_on_samba_sends_one_request_per_page(ad: Directory) -> None:
    """Five accounts in pages of two take three page requests of the account search."""
    for n in range(5):
        ad.user(f"p{n}")
    connector = ad.connector(page_size=2)
    location = ad.location()
    with connector:
        connector.check()
        connector.prepare(location, "created")
        before = connector.round_trips
        scanned = connector.scan(ScanRequest(location, "created", UTC))
        found = [o for o in scanned if isinstance(o, ScannedItem)]
        requests = connector.round_trips - before
    assert len(found) == 5
    assert requests == 3  # privileged groups are read from the groups, once, in prepare


def test_openldap_last_login_reads_the_lastbind_time(ldap: Directory) -> None:
    """On OpenLDAP the last_login clock is authTimestamp (slapo-lastbind) plus the margin."""
    jan = ldap.user("Jan", attributes={"userPassword": "Jan-secret-1"})
    before = now().replace(microsecond=0) - timedelta(seconds=1)
    user = ldap3.Connection(ldap3.Server(ldap.server.url), user=jan.dn, password="Jan-secret-1")
    assert user.bind()
    user.unbind()
    clock = ldap.items("last_login", last_login_margin="P0D")["Jan"].clock
    assert clock is not None and before <= clock <= now()
