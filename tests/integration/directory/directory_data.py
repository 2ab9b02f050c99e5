"""Test data in the real directory servers: one OU per test, accounts in it, and the RoPA
models and connectors that reach them."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import ldap3
from directory_servers import SWEEPER_PASSWORD, SambaDC, Slapd, _need
from pydantic import SecretStr, TypeAdapter

from connectors.base import ConnectorContext, ScannedItem, ScanOutput, ScanRequest
from connectors.directory import DirectoryConnector, from_ad_time
from sweeper.errors import CredentialMissing
from sweeper.ropa.model import Clock, DirectoryLocation, DirectorySystem

UTC_TZ: tzinfo = UTC
_CLOCK: TypeAdapter[Clock] = TypeAdapter(Clock)


def credential(name: str) -> SecretStr:
    if name != "directory":
        raise CredentialMissing(f"credential {name!r} is not set (test)")
    return SecretStr(SWEEPER_PASSWORD)


@dataclass
class Account:
    dn: str
    key: str  # the GUID, as the connector keys the account


@dataclass
class Directory:
    """One test's OU in a real server, and how to reach it as the sweeper."""

    flavour: str  # ad | openldap
    server: SambaDC | Slapd
    ou: str
    base_dir: Path
    connection: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> ldap3.Connection:
        return self.server.admin()

    # -- RoPA models -----------------------------------------------------------------------

    def system(self, **overrides: Any) -> DirectorySystem:
        connection = {**self.connection, **overrides}
        return DirectorySystem.model_validate(
            {"id": "dir", "name": "Directory", "kind": "directory", "connection": connection}
        )

    def location(self, **fields: Any) -> DirectoryLocation:
        return DirectoryLocation.model_validate({"system": "dir", "base_dn": self.ou, **fields})

    def connector(self, *, read_only: bool = True, **overrides: Any) -> DirectoryConnector:
        context = ConnectorContext(self.base_dir, credential, read_only=read_only)
        return DirectoryConnector(self.system(**overrides), context)

    def scan(
        self,
        clock: Clock | dict[str, str] = "created",
        cutoff: datetime | None = None,
        connector: DirectoryConnector | None = None,
        **location: Any,
    ) -> list[ScanOutput]:
        clock = _CLOCK.validate_python(clock)
        with connector or self.connector() as conn:
            loc = self.location(**location)
            conn.check()
            conn.prepare(loc, clock)
            return list(conn.scan(ScanRequest(loc, clock, UTC_TZ, cutoff)))

    def items(
        self, clock: Clock | dict[str, str] = "created", **location: Any
    ) -> dict[str, ScannedItem]:
        """Scan and return the items by the first RDN value of their DN (``Jan``)."""
        return {
            _cn(out.details["dn"] if out.details else ""): out
            for out in self.scan(clock, **location)
            if isinstance(out, ScannedItem)
        }

    # -- data ------------------------------------------------------------------------------

    def sub_ou(self, name: str, parent: str | None = None) -> str:
        """Add an OU named ``name`` under the test's OU (or ``parent``); return its DN."""
        dn = f"{'OU' if self.flavour == 'ad' else 'ou'}={name},{parent or self.ou}"
        with self.admin as conn:
            conn.add(dn, ["organizationalUnit"])
        return dn

    def user(
        self,
        name: str,
        *,
        parent: str | None = None,
        disabled: bool = False,
        last_logon: datetime | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> Account:
        """Add an account named ``name`` (its cn) under the test's OU (or ``parent``)."""
        attrs = dict(attributes or {})
        with self.admin as conn:
            if self.flavour == "ad":
                dn = f"CN={name},{parent or self.ou}"
                attrs.setdefault("sAMAccountName", f"{name[:12]}{secrets.token_hex(3)}")
                # 544: a normal account that needs no password (tests never log on with it).
                attrs["userAccountControl"] = str(544 | (2 if disabled else 0))
                conn.add(dn, ["top", "person", "organizationalPerson", "user"], attrs)
                if last_logon is not None:
                    stamp = str(from_ad_time(last_logon))
                    conn.modify(dn, {"lastLogonTimestamp": [(ldap3.MODIFY_REPLACE, [stamp])]})
                conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
                key = str(uuid.UUID(bytes_le=conn.response[0]["raw_attributes"]["objectGUID"][0]))
            else:
                dn = f"cn={name},{parent or self.ou}"
                attrs.setdefault("sn", name)
                if disabled:
                    attrs["pwdAccountLockedTime"] = "000001010000Z"
                conn.add(dn, ["inetOrgPerson"], attrs)
                conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["entryUUID"])
                key = conn.response[0]["raw_attributes"]["entryUUID"][0].decode()
        return Account(dn, key)

    def closed_ou(self) -> str:
        """Add an OU "closed" holding one account, whose contents the sweeper's account may
        not see: on AD a deny of List Contents to it in the OU's DACL (set with samba-tool
        dsacl, as an administrator would), on OpenLDAP by slapd.conf's ACL for that name."""
        closed = self.sub_ou("closed")
        self.user("Verborgen", parent=closed, attributes={"mail": "verborgen@example.nl"})
        if self.flavour == "ad":
            assert isinstance(self.server, SambaDC)
            sid = self.read(self.server.sweeper_dn, "objectSid")
            assert sid is not None
            subprocess.run(
                [
                    _need("samba-tool"),
                    "dsacl",
                    "set",
                    f"--URL={self.server.folder / 'private' / 'sam.ldb'}",
                    f"--objectdn={closed}",
                    f"--sddl=(D;CI;LC;;;{sid['objectSid']})",
                ],
                check=True,
                capture_output=True,
            )
        return closed

    def read(self, dn: str, *attributes: str) -> dict[str, list[Any]] | None:
        """Return the entry's attributes as the admin sees them, or None if it is gone."""
        with self.admin as conn:
            try:
                conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes))
            except ldap3.core.exceptions.LDAPNoSuchObjectResult:
                return None
            if not conn.response:
                return None
            return dict(conn.response[0]["attributes"])

    def find(self, key: str, *attributes: str) -> tuple[str, dict[str, Any]] | None:
        """Given an account's GUID, return its current DN and attributes, or None."""
        if self.flavour == "ad":
            raw = uuid.UUID(key).bytes_le
            query = "(objectGUID=" + "".join(f"\\{b:02x}" for b in raw) + ")"
        else:
            query = f"(entryUUID={key})"
        with self.admin as conn:
            conn.search(self.server.base, query, attributes=list(attributes))
            entries = [e for e in conn.response if e["type"] == "searchResEntry"]
            if not entries:
                return None
            return entries[0]["dn"], dict(entries[0]["attributes"])

    def add_member(self, group_dn: str, member_dn: str) -> None:
        with self.admin as conn:
            conn.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [member_dn])]})

    def group(self, name: str, members: list[str]) -> str:
        with self.admin as conn:
            if self.flavour == "ad":
                dn = f"CN={name},{self.ou}"
                conn.add(
                    dn, ["top", "group"], {"sAMAccountName": f"{name[:12]}{secrets.token_hex(3)}"}
                )
                if members:
                    conn.modify(dn, {"member": [(ldap3.MODIFY_ADD, members)]})
            else:
                dn = f"cn={name},{self.ou}"
                conn.add(dn, ["groupOfNames"], {"member": members or [dn]})
        return dn

    def remove(self) -> None:
        """Delete the test's OU with everything below it."""
        with self.admin as conn:
            conn.raise_exceptions = False
            if self.flavour == "ad":
                conn.delete(self.ou, controls=[("1.2.840.113556.1.4.805", True, None)])
                return
            conn.search(self.ou, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
            for dn in sorted((e["dn"] for e in conn.response), key=len, reverse=True):
                conn.delete(dn)


def _cn(dn: str) -> str:
    first = dn.split(",", 1)[0]
    return first.split("=", 1)[1] if "=" in first else first


def samba_directory(dc: SambaDC, base_dir: Path) -> Directory:
    name = "t-" + secrets.token_hex(4)
    ou = f"OU={name},{dc.base}"
    with dc.admin() as conn:
        conn.add(ou, ["organizationalUnit"])
    return Directory("ad", dc, ou, base_dir, {**dc.connection(), "flavour": "ad"})


def slapd_directory(server: Slapd, base_dir: Path) -> Directory:
    name = "t-" + secrets.token_hex(4)
    ou = f"ou={name},{server.base}"
    with server.admin() as conn:
        conn.add(ou, ["organizationalUnit"])
    connection = {
        "servers": [server.url],
        "tls": "none",
        "bind_dn": server.sweeper_dn,
        "credential": "directory",
        "flavour": "openldap",
        "privileged_groups": [],
        "disable": {"pwdAccountLockedTime": "000001010000Z"},
    }
    return Directory("openldap", server, ou, base_dir, connection)


def now() -> datetime:
    return datetime.now(UTC)
