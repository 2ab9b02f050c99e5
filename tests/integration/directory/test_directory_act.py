"""Acting on accounts: disable, move, anonymise, delete, each checked in the real server."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest
from directory_data import Directory
from tcp_proxy import Relay

from connectors.base import ActRequest, Outcome
from connectors.directory import DirectoryConnector
from sweeper.errors import ActionUnsupported, SystemUnreachable


def act(
    directory: Directory,
    action: str,
    keys: list[str],
    connector: DirectoryConnector | None = None,
    **location: Any,
) -> list[Outcome]:
    with connector or directory.connector(read_only=False) as conn:
        conn.check()
        return list(conn.act(ActRequest(directory.location(**location), action, keys)))


def test_disable_sets_bit_2_and_keeps_the_other_flags(ad: Directory) -> None:
    """AD disable sets userAccountControl bit 2 and leaves the other bits as they were."""
    jan = ad.user("Jan")
    with ad.admin as conn:  # normal account, password never expires
        conn.modify(jan.dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["66080"])]})
    outcomes = act(ad, "disable", [jan.key])
    assert [o.status for o in outcomes] == ["done"]
    entry = ad.read(jan.dn, "userAccountControl")
    assert entry is not None and entry["userAccountControl"] == 66082


def test_disable_returns_the_new_fingerprint(directory: Directory) -> None:
    """A disabled account's outcome carries its fingerprint after the change."""
    jan = directory.user("Jan")
    before = directory.items()["Jan"].fingerprint
    (outcome,) = act(directory, "disable", [jan.key])
    after = directory.items()["Jan"].fingerprint
    assert outcome.details is not None
    assert outcome.details["fingerprint"] == after != before


def test_disable_twice_is_harmless(directory: Directory) -> None:
    """Disabling an account that is disabled already changes nothing and says so."""
    jan = directory.user("Jan", disabled=True)
    before = directory.items()["Jan"].fingerprint
    (outcome,) = act(directory, "disable", [jan.key])
    assert (outcome.status, outcome.message) == ("done", "already disabled")
    assert directory.items()["Jan"].fingerprint == before


def test_openldap_disable_locks_the_account(ldap: Directory) -> None:
    """OpenLDAP disable sets the configured attribute: the account can no longer bind."""
    jan = ldap.user("Jan", attributes={"userPassword": "Jan-secret-1"})
    act(ldap, "disable", [jan.key])
    entry = ldap.read(jan.dn, "pwdAccountLockedTime")
    assert entry is not None and entry["pwdAccountLockedTime"]
    conn = ldap3.Connection(ldap3.Server(ldap.server.url), user=jan.dn, password="Jan-secret-1")
    assert conn.bind() is False


def test_scan_sees_the_disabled_state(directory: Directory) -> None:
    """Items say whether their account is disabled."""
    directory.user("Jan")
    directory.user("Piet", disabled=True)
    items = directory.items()
    assert (items["Jan"].disabled, items["Piet"].disabled) == (False, True)


def test_move_puts_the_account_in_the_staging_ou_keeping_its_key(directory: Directory) -> None:
    """move renames the account into the staging OU; its GUID, the item key, stays."""
    pupils = directory.sub_ou("Leerlingen")
    staging = directory.sub_ou("Vertrokken")
    jan = directory.user("Jan", parent=pupils)
    outcomes = act(directory, "move", [jan.key], base_dn=pupils, staging_ou=staging)
    assert [o.status for o in outcomes] == ["done"]
    found = directory.find(jan.key)
    assert found is not None and found[0].lower() == f"cn=jan,{staging}".lower()


def test_anonymise_clears_attributes_and_renames_to_the_guid(directory: Directory) -> None:
    """anonymise clears the listed attributes; clearing cn renames the account to its GUID."""
    jan = directory.user("Jan", attributes={"mail": "jan@school.test", "description": "4B"})
    clears = {"mail": None, "description": None, "cn": None, "sn": "(removed)"}
    outcomes = act(directory, "anonymise", [jan.key], anonymise=clears)
    assert [o.status for o in outcomes] == ["done"], outcomes
    found = directory.find(jan.key, "mail", "description", "sn")
    assert found is not None
    dn, attributes = found
    assert dn.lower().startswith(f"cn={jan.key},")
    assert attributes.get("mail") in (None, []) and attributes.get("description") in (None, [])
    assert attributes["sn"] in ("(removed)", ["(removed)"])


def test_delete_removes_the_account(directory: Directory) -> None:
    """delete removes the account; deleting it again finds it gone."""
    jan = directory.user("Jan")
    piet = directory.user("Piet")
    assert [o.status for o in act(directory, "delete", [jan.key])] == ["done"]
    assert directory.find(jan.key) is None
    assert directory.find(piet.key) is not None
    assert [o.status for o in act(directory, "delete", [jan.key])] == ["gone"]


def test_dry_run_connector_refuses_to_act(directory: Directory) -> None:
    """A read-only (dry-run) connector raises before changing anything."""
    jan = directory.user("Jan")
    with pytest.raises(ActionUnsupported, match="read-only"):
        act(directory, "delete", [jan.key], connector=directory.connector(read_only=True))
    assert directory.find(jan.key) is not None


def test_quarantine_is_not_a_directory_action(directory: Directory) -> None:
    """Accounts cannot be quarantined: the connector says so before touching anything."""
    jan = directory.user("Jan")
    with pytest.raises(ActionUnsupported, match="disable, move, anonymise or"):
        act(directory, "quarantine", [jan.key])


def test_dc_that_stops_answering_leaves_nothing_half_done(ad: Directory) -> None:
    """When the DC goes away mid-batch, the accounts acted on are disabled, the rest untouched,
    and the connector raises SystemUnreachable naming the DC."""
    accounts = [ad.user(f"p{n}") for n in range(5)]
    with Relay(636) as relay:
        url = f"ldaps://127.0.0.1:{relay.port}"
        connector = ad.connector(read_only=False, servers=[url], timeout=5)
        outcomes: list[Outcome] = []
        with connector, pytest.raises(SystemUnreachable, match=f"127.0.0.1:{relay.port}"):
            connector.check()
            stream = connector.act(ActRequest(ad.location(), "disable", [a.key for a in accounts]))
            for outcome in stream:
                outcomes.append(outcome)
                if len(outcomes) == 2:
                    relay.cut()
    disabled = {
        a.key: bool((ad.read(a.dn, "userAccountControl") or {})["userAccountControl"] & 2)
        for a in accounts
    }
    done = {o.key for o in outcomes if o.status == "done"}
    assert len(done) == 2
    assert {k for k, off in disabled.items() if off} == done
