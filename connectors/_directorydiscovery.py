"""Discovery for the directory connector: OUs with account counts, stale accounts and age;
bounded samples of their accounts' attributes; which locations cover which OUs.

Stores
    Every OU (and every other entry that holds accounts directly, such as AD's
    ``CN=Users``) down to ``depth`` levels below the base (the target's ``base``, else the
    directory's default naming context) is a store of kind ``ou``. One at ``depth`` counts the
    accounts of its whole subtree (``extent: subtree``); one above counts only its own
    accounts (``extent: one``), its sub-OUs being stores of their own. The base is level 0.
    An OU without accounts is listed with none, unless it holds sub-OUs: then it is
    structure. Accounts are AD users without computers, or OpenLDAP ``inetOrgPerson``
    entries, as a location's default object class selects them.
    Each store has its accounts, how many are stale (no logon, or never logged on and created,
    before ``stale_after``; a last logon counts 14 days later, as AD records it that late), how
    many are disabled, and the oldest and newest account's creation. OUs matching ``exclude``
    and places other systems discover (``skip``) are neither listed nor counted.

Uninspectable OUs
    A directory does not say that it hides something: a search simply leaves out what the
    bind account may not see. An OU in which the account sees nothing at all is therefore
    checked: on AD, its DACL (``nTSecurityDescriptor``, readable with the default Read
    Permissions right) is evaluated for the List Contents right of the bind account's SID,
    its groups (``tokenGroups``) and the well-known SIDs every logon has; on OpenLDAP, its
    ``hasSubordinates`` says whether anything is below it. An OU whose contents are hidden is
    an ``uninspectable`` finding of its own (its accounts are unknown, not none). An OU the
    account cannot see at all cannot be found; one whose accounts are partly hidden is not
    told apart from a smaller OU.

Samples
    Up to ``rows`` accounts of a store (one page of a paged search, then abandoned) are read:
    first the names of the attributes they hold, then the values of those that are text
    (strings, phone numbers, postal addresses, integers) or times. Attributes that every
    account has whether it belongs to a person or to a service (``cn``, ``sAMAccountName``,
    ``userPrincipalName``, ``uid``, GUIDs, SIDs, counters, bookkeeping times) are left out, so
    that an OU of service accounts holds no personal data by its attribute names; secrets
    (passwords and their hashes, LAPS and BitLocker recovery passwords, keys) are never
    requested; binary attributes (photos, certificates) count by name only.

Places (``locate``)
    ``("directory", ID, RDN, …)`` where ID is the GUID of the naming context's head entry
    (``objectGUID`` on AD, ``entryUUID`` on OpenLDAP; the same on every domain controller or
    replica of the directory, different for another directory with the same DN) and the RDNs
    below it follow, top down, lower-cased: ``("directory", "6f…", "ou=school",
    "ou=leerlingen")``.

Coverage
    A location covers an OU fully when its base DN is the OU or above it and its scope reaches
    the OU's accounts (``subtree``; ``one`` only for an OU's own accounts); partly when its
    conditions, raw filter or object class select only some accounts, or when its base lies
    inside an OU that counts its whole subtree.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

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
from sweeper.errors import ConnectorError, LocationInvalid, SystemUnreachable
from sweeper.ropa.model import DirectoryLocation

if TYPE_CHECKING:
    from connectors.directory import DirectoryConnector

_MARGIN: Final = timedelta(days=14)  # a last logon may be recorded this late (AD)
_MAX_TEXT: Final = 4096
_SAY_EVERY: Final = 1000  # accounts counted between two calls of DiscoverRequest.listed
_LIST_CONTENTS: Final = 0x4
# AD's mapping of the generic rights (MS-ADTS 5.1.3.3.1): read, write, execute, all.
_GENERIC: Final = {
    0x80000000: 0x20094,
    0x40000000: 0x20028,
    0x20000000: 0x20004,
    0x10000000: 0xF01FF,
}
_INHERIT_ONLY: Final = 0x08
_OBJECT_TYPE_PRESENT: Final = 0x1
# Every logon's token holds these besides the account's own groups: Everyone, Network,
# Authenticated Users, This Organization.
_WELL_KNOWN_SIDS: Final = ("S-1-1-0", "S-1-5-2", "S-1-5-11", "S-1-5-15")

_TEXT_SYNTAXES: Final = frozenset(
    {
        "1.3.6.1.4.1.1466.115.121.1.15",  # Directory String
        "1.3.6.1.4.1.1466.115.121.1.26",  # IA5 String
        "1.3.6.1.4.1.1466.115.121.1.44",  # Printable String
        "1.3.6.1.4.1.1466.115.121.1.36",  # Numeric String
        "1.3.6.1.4.1.1466.115.121.1.50",  # Telephone Number
        "1.3.6.1.4.1.1466.115.121.1.41",  # Postal Address
        "1.3.6.1.4.1.1466.115.121.1.27",  # Integer
        "1.3.6.1.4.1.1466.115.121.1.11",  # Country String
        "1.2.840.113556.1.4.905",  # AD String(Teletex)
    }
)
_TIME_SYNTAXES: Final = frozenset(
    {"1.3.6.1.4.1.1466.115.121.1.24", "1.3.6.1.4.1.1466.115.121.1.53"}
)


def _lowered(names: str) -> frozenset[str]:
    return frozenset(names.lower().split())


# Attributes every account has, a person's or a service's: their names say nothing about
# personal data, and their values are identifiers and bookkeeping.
_BOOKKEEPING: Final = _lowered(
    "objectClass objectCategory structuralObjectClass cn name distinguishedName "
    "sAMAccountName sAMAccountType userPrincipalName uid uidNumber gidNumber "
    "instanceType whenCreated whenChanged uSNCreated uSNChanged objectGUID objectSid "
    "userAccountControl badPwdCount badPasswordTime codePage countryCode lastLogoff "
    "lastLogon lastLogonTimestamp logonCount primaryGroupID accountExpires "
    "dSCorePropagationData memberOf adminCount isCriticalSystemObject "
    "servicePrincipalName msDS-SupportedEncryptionTypes homeDirectory loginShell "
    "entryUUID entryCSN entryDN creatorsName modifiersName createTimestamp "
    "modifyTimestamp subschemaSubentry hasSubordinates authTimestamp"
)
# Secrets are never requested: passwords and their hashes, LAPS and BitLocker recovery
# passwords, trust and Kerberos keys, private keys.
_SECRET: Final = re.compile(
    r"pwd|passw|secret|credential|recovery|privatekey|pkcs12|principalkey|krbkey|trustauth|"
    r"initialauth|priorvalue|currentvalue|supplemental|laps|mcs-adm|keyversion|dpapi",
    re.I,
)


# -- places ---------------------------------------------------------------------------------------


def _parts(dn: str) -> tuple[tuple[str, str], ...]:
    """Given a DN, return its RDNs, the first (lowest) first, each as (as written, normalised:
    type and value lower-cased, without spaces around them)."""
    from ldap3.utils.dn import parse_dn, to_dn

    parts = []
    for written in to_dn(dn):
        normal = "+".join(
            f"{kind.lower()}={value.lower()}"
            for kind, value, _ in parse_dn(str(written), escape=False, strip=True)
        )
        parts.append((str(written).strip(), normal))
    return tuple(parts)


def _normal(dn: str) -> tuple[str, ...]:
    return tuple(normal for _, normal in _parts(dn))


def _context(connector: DirectoryConnector, normal: tuple[str, ...]) -> tuple[str, int]:
    """Given a normalised DN, return the id of the naming context holding it and the number of
    its RDNs that are the context's."""
    cache: dict[str, Any] = connector._discovery
    contexts: list[tuple[tuple[str, ...], str]] | None = cache.get("contexts")
    if contexts is None:
        if connector._root is None:
            connector.check()
        names = list(connector._contexts) or [connector._root or ""]
        contexts = sorted(
            ((_normal(c), c) for c in names if c), key=lambda c: len(c[0]), reverse=True
        )
        cache["contexts"] = contexts
    for rdns, spelled in contexts:
        if len(normal) >= len(rdns) and normal[len(normal) - len(rdns) :] == rdns:
            return _context_id(connector, spelled), len(rdns)
    return f"{connector._url}/", 0


def _context_id(connector: DirectoryConnector, context: str) -> str:
    """Given a naming context, return the GUID of its head entry (the same on every replica),
    or the server and the context's DN where there is none."""
    ids: dict[str, str] = connector._discovery.setdefault("context_ids", {})
    if context not in ids:
        key = connector._key_attribute
        try:
            entry = connector._search_one(
                connector._connect(), context, "(objectClass=*)", "BASE", [key], "naming context"
            )
        except LocationInvalid:
            entry = None  # a suffix without an entry of its own
        raw = (entry or {}).get("raw_attributes", {})
        found = connector._key(raw) if raw.get(key) else None
        ids[context] = found or f"{connector._url}/{','.join(_normal(context))}"
    return ids[context]


def place_of(connector: DirectoryConnector, dn: str) -> tuple[str, ...]:
    """Given a DN, return its place: the directory's id and the RDNs below its naming
    context, top down."""
    return _place(connector, _normal(dn))


def _place(connector: DirectoryConnector, normal: tuple[str, ...]) -> tuple[str, ...]:
    context, length = _context(connector, normal)
    return ("directory", context, *reversed(normal[: len(normal) - length]))


def scope(connector: DirectoryConnector, request: DiscoverRequest) -> tuple[str, ...]:
    if connector._root is None:
        connector.check()
    return place_of(connector, request.base or connector._root or "")


def locate(connector: DirectoryConnector, store: DiscoveredStore) -> tuple[str, ...]:
    return place_of(connector, store.where)


# -- coverage -------------------------------------------------------------------------------------


def coverage(
    connector: DirectoryConnector, location: Any, place: tuple[str, ...], store: DiscoveredStore
) -> str:
    """Given a location of this system and an OU's place, return FULL, PARTIAL or NONE."""
    if not isinstance(location, DirectoryLocation) or store.kind not in ("ou", "place"):
        return NONE
    base = place_of(connector, location.base_dn)
    if place[:2] != base[:2]:
        return NONE  # another directory
    details = store.details or {}
    subtree = details.get("extent") != "one"
    if place[: len(base)] == base:  # the OU is the base or below it
        if location.scope == "one":
            if place != base:
                return NONE
            result = FULL if not subtree or details.get("below") == 0 else PARTIAL
        else:
            result = FULL
    elif subtree and base[: len(place)] == place:
        return PARTIAL  # the base lies inside an OU that counts its whole subtree
    else:
        return NONE
    default = "user" if connector._ad else "inetorgperson"
    narrowed = (
        bool(location.where)
        or location.filter is not None
        or (location.object_class is not None and location.object_class.lower() != default)
    )
    return PARTIAL if narrowed and result == FULL else result


# -- discover -------------------------------------------------------------------------------------


def _account_filter(connector: DirectoryConnector) -> str:
    if connector._ad:
        return "(&(objectClass=user)(!(objectClass=computer)))"
    return "(objectClass=inetOrgPerson)"


@dataclass
class _Store:
    where: str
    extent: str
    items: int | None = 0  # None: its accounts cannot be seen
    below: int = 0  # accounts in the OUs below it (extent subtree)
    stale: int = 0
    disabled: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None


@dataclass(frozen=True)
class _Node:
    """An entry below the base, and the store it counts in."""

    normal: tuple[str, ...]
    level: int
    store: tuple[str, ...]  # the store's normalised DN
    store_where: str  # the store's DN as the server spells it


@dataclass
class _Walk:
    """The stores of one discovery, built from the OUs and accounts below the base."""

    connector: DirectoryConnector
    request: DiscoverRequest
    base: tuple[tuple[str, str], ...]
    stores: dict[tuple[str, ...], _Store] = field(default_factory=dict)
    nodes: dict[str, _Node | None] = field(default_factory=dict)
    ous: dict[tuple[str, ...], str] = field(default_factory=dict)  # every OU kept -> its DN
    seen_below: set[tuple[str, ...]] = field(default_factory=set)  # entries with a visible child

    def __post_init__(self) -> None:
        self.depth = max(0, self.request.depth)
        self.patterns = [_pattern(p) for p in self.request.exclude]
        self.base_normal = tuple(n for _, n in self.base)
        ad = self.connector._ad
        self.created = "whenCreated" if ad else "createTimestamp"
        self.logon = "lastLogonTimestamp" if ad else "authTimestamp"
        self.stale_before = self.request.now - self.request.stale_after

    def node(self, dn: str) -> _Node | None:
        """Given the DN of an OU or of an account's parent, return where it counts; None if it
        is outside the base, excluded or another system's."""
        if dn in self.nodes:
            return self.nodes[dn]
        parts = _parts(dn)
        normal = tuple(n for _, n in parts)
        size = len(self.base)
        found: _Node | None = None
        if normal[len(normal) - size :] == self.base_normal and self._kept(normal):
            level = len(normal) - size
            keep = size + min(level, self.depth)
            where = ",".join(w for w, _ in parts[len(parts) - keep :])
            found = _Node(normal, level, normal[len(normal) - keep :], where)
        self.nodes[dn] = found
        return found

    def _kept(self, normal: tuple[str, ...]) -> bool:
        """Whether an entry is neither excluded (it or an ancestor below the base matches a
        pattern) nor in a place another system discovers."""
        for end in range(len(normal) - len(self.base)):
            if any(_matches(p, normal[end:]) for p in self.patterns):
                return False
        if self.request.skip:
            place = _place(self.connector, normal)
            return not any(place[: len(skip)] == skip for skip in self.request.skip)
        return True

    def store_of(self, node: _Node) -> _Store:
        store = self.stores.get(node.store)
        if store is None:
            extent = "subtree" if len(node.store) - len(self.base) >= self.depth else "one"
            store = self.stores[node.store] = _Store(node.store_where, extent)
        return store

    def ou(self, dn: str) -> None:
        node = self.node(dn)
        if node is None:
            return
        if node.level > 0:
            self.seen_below.add(node.normal[1:])
        self.ous[node.normal] = dn
        if node.level <= self.depth:
            self.store_of(node)

    def account(self, entry: dict[str, Any]) -> None:
        from connectors.directory import generalized_time

        connector = self.connector
        dn: str = entry["dn"]
        if "\\" in dn:
            parent = ",".join(w for w, _ in _parts(dn)[1:])
        else:
            parent = dn.split(",", 1)[1] if "," in dn else ""
        node = self.node(parent)
        if node is None:
            return
        self.seen_below.add(node.normal)
        store = self.store_of(node)
        attrs = entry["raw_attributes"]
        made = last = None
        if attrs.get(self.created):
            made = generalized_time(attrs[self.created][0].decode(), UTC)
        if attrs.get(self.logon):
            last = connector._read_time(attrs[self.logon][0], connector._ad, UTC)
        assert store.items is not None
        store.items += 1
        if node.normal != node.store:
            store.below += 1
        seen = (last + _MARGIN) if last else made
        if seen is not None and seen < self.stale_before:
            store.stale += 1
        if connector._disabled(attrs)[0]:
            store.disabled += 1
        if made is not None:
            store.oldest = made if store.oldest is None else min(store.oldest, made)
            store.newest = made if store.newest is None else max(store.newest, made)

    def hidden(self) -> Iterator[ScanFinding]:
        """Check each OU in which the bind account sees nothing; yield a finding for each
        whose contents are hidden from it (its store's accounts then are unknown)."""
        for normal, dn in sorted(self.ous.items(), key=lambda o: tuple(reversed(o[0]))):
            if normal in self.seen_below:
                continue
            reason = _hidden(self.connector, dn)
            if reason is None:
                continue
            store = self.stores.get(normal)
            if store is not None:
                store.items = None
            yield ScanFinding("uninspectable", store.where if store else dn, reason)

    def found(self) -> Iterator[DiscoveredStore]:
        """Yield the stores, top down; an OU that holds only sub-OUs (which are stores of their
        own) is structure, no store."""
        parents = {normal[1:] for normal in self.stores}
        for normal, store in sorted(self.stores.items(), key=lambda s: tuple(reversed(s[0]))):
            if store.items == 0 and normal in parents:
                continue
            yield DiscoveredStore(
                "ou",
                store.where,
                items=store.items,
                oldest=store.oldest,
                newest=store.newest,
                stale=store.stale if store.items is not None else None,
                details={
                    "extent": store.extent,
                    "depth": self.depth,
                    "count": "exact" if store.items is not None else None,
                    "below": store.below,
                    "disabled": store.disabled,
                },
            )


def _pattern(text: str) -> tuple[bool, str]:
    """Given an exclude pattern, return (whole DN?, the pattern normalised): a pattern with a
    comma is matched against a whole DN, one without against each RDN below the base."""
    parts = []
    for part in text.split(","):
        kind, equals, value = part.partition("=")
        parts.append(f"{kind.strip().lower()}{equals}{value.strip().lower()}")
    return len(parts) > 1, ",".join(parts)


def _matches(pattern: tuple[bool, str], normal: tuple[str, ...]) -> bool:
    whole, text = pattern
    return fnmatch.fnmatchcase(",".join(normal) if whole else normal[0], text)


def discover(
    connector: DirectoryConnector, request: DiscoverRequest
) -> Iterator[DiscoveredStore | ScanFinding]:
    if connector._root is None:
        connector.check()
    conn = connector._connect()
    base = connector._exists(conn, request.base or connector._root or "", "discovery base")
    walk = _Walk(connector, request, _parts(base))
    unsaid = 0
    for entry in connector._search(
        conn, base, "(objectClass=organizationalUnit)", "subtree", ["1.1"], "listing OUs"
    ):
        walk.ou(entry["dn"])
    state = (
        ["userAccountControl"] if connector._ad else list(connector.system.connection.disable or {})
    )
    for entry in connector._search(
        conn,
        base,
        _account_filter(connector),
        "subtree",
        [walk.created, walk.logon, *state],
        "counting accounts",
    ):
        walk.account(entry)
        unsaid += 1
        if unsaid == _SAY_EVERY:
            request.listed(unsaid)
            unsaid = 0
    request.listed(unsaid)
    yield from walk.hidden()
    yield from walk.found()


def _hidden(connector: DirectoryConnector, dn: str) -> str | None:
    """Given an OU in which the bind account sees nothing, return why its contents are hidden
    from the account, or None if it is empty (or holds only what is no account)."""
    conn = connector._connect()
    if connector._ad:
        from ldap3.protocol.microsoft import security_descriptor_control

        try:
            entry = _base_entry(
                connector,
                conn,
                dn,
                ["nTSecurityDescriptor"],
                security_descriptor_control(sdflags=0x4),
            )
            raw = ((entry or {}).get("raw_attributes") or {}).get("nTSecurityDescriptor")
            if not raw:
                return (
                    f"OU {dn} cannot be inspected: its permissions cannot be read, so whether "
                    "it holds accounts the sweeper's account may not see is unknown"
                )
            allowed = dacl_allows(raw[0], _token(connector), _LIST_CONTENTS)
        except SystemUnreachable:
            raise
        except ConnectorError as err:
            return f"OU {dn} cannot be inspected: {err}"
        except ValueError as err:
            return f"OU {dn} cannot be inspected: its security descriptor does not parse ({err})"
        if allowed:
            return None
        return (
            f"OU {dn} cannot be inspected: its permissions deny the sweeper's account "
            "List Contents, so the accounts in it cannot be seen"
        )
    try:
        entry = _base_entry(connector, conn, dn, ["hasSubordinates"], None)
        flag = ((entry or {}).get("raw_attributes") or {}).get("hasSubordinates")
        if not flag or flag[0].upper() != b"TRUE":
            return None
        if _first_page(connector, conn, dn, "(objectClass=*)", "one", ["1.1"], 1, False):
            return None  # entries that are no accounts (groups, say)
    except SystemUnreachable:
        raise
    except ConnectorError as err:
        return f"OU {dn} cannot be inspected: {err}"
    return (
        f"OU {dn} cannot be inspected: the server has entries below it that the sweeper's "
        "account may not see"
    )


def _base_entry(
    connector: DirectoryConnector, conn: Any, dn: str, attrs: list[str], controls: Any
) -> dict[str, Any] | None:
    from ldap3 import BASE
    from ldap3.core.exceptions import LDAPException

    try:
        connector.round_trips += 1
        conn.search(dn, "(objectClass=*)", BASE, attributes=attrs, controls=controls)
    except LDAPException as err:
        raise connector._failed(err, f"reading {dn!r}", conn) from err
    result = conn.result
    if result["result"] != 0:
        raise ConnectorError(
            connector.system.id,
            f"reading it: {result['description']} {result.get('message') or ''}".strip(),
        )
    entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
    return entries[0] if entries else None


def _token(connector: DirectoryConnector) -> frozenset[str]:
    """Return the SIDs of the bind account's logon token, as far as LDAP shows them: its own
    SID, its groups' (``tokenGroups``, nested and primary ones included), the well-known SIDs of
    every logon, and the groups those well-known SIDs are members of."""
    cached: frozenset[str] | None = connector._discovery.get("token")
    if cached is not None:
        return cached
    from connectors.directory import _sid_text, escape_value

    conn = connector._connect()
    entry = _base_entry(
        connector, conn, connector.system.connection.bind_dn, ["objectSid", "tokenGroups"], None
    )
    attrs = (entry or {}).get("raw_attributes") or {}
    sids = {_sid_text(v) for v in [*attrs.get("objectSid", []), *attrs.get("tokenGroups", [])]}
    sids.update(_WELL_KNOWN_SIDS)
    root = connector._root or ""
    members = "".join(
        f"(member={escape_value(f'CN={sid},CN=ForeignSecurityPrincipals,{root}')})"
        for sid in _WELL_KNOWN_SIDS
    )
    for group in connector._search(
        conn, root, f"(&(objectClass=group)(|{members}))", "subtree", ["objectSid"], "token"
    ):
        for value in group["raw_attributes"].get("objectSid", []):
            sids.add(_sid_text(value))
    token = frozenset(sids)
    connector._discovery["token"] = token
    return token


def dacl_allows(descriptor: bytes, sids: frozenset[str] | set[str], right: int) -> bool:
    """Given a self-relative security descriptor (MS-DTYP 2.4.6), the SIDs of a token and one
    access right, return whether the DACL grants the right: its ACEs in order, inherit-only
    ones skipped, the first that denies the right to one of the SIDs before one grants it
    decides. A descriptor without a DACL grants everything; an empty DACL nothing. Object ACEs
    that name an object type (a property, a child class) are left out: the right asked for is
    one on the object itself. Raise ValueError if the descriptor is cut short."""
    from connectors.directory import _sid_text

    if len(descriptor) < 20:
        raise ValueError("shorter than its header")
    control = int.from_bytes(descriptor[2:4], "little")
    offset = int.from_bytes(descriptor[16:20], "little")
    if not control & 0x4 or offset == 0:
        return True  # no DACL: everyone has every right
    if offset + 8 > len(descriptor):
        raise ValueError("the DACL lies outside the descriptor")
    count = int.from_bytes(descriptor[offset + 4 : offset + 6], "little")
    at = offset + 8
    for _ in range(count):
        if at + 8 > len(descriptor):
            raise ValueError("an ACE lies outside the descriptor")
        kind, flags = descriptor[at], descriptor[at + 1]
        size = int.from_bytes(descriptor[at + 2 : at + 4], "little")
        if size < 8 or at + size > len(descriptor):
            raise ValueError("an ACE has an impossible size")
        ace = descriptor[at : at + size]
        at += size
        if flags & _INHERIT_ONLY or kind not in (0x00, 0x01, 0x05, 0x06):
            continue
        mask = int.from_bytes(ace[4:8], "little")
        for generic, specific in _GENERIC.items():
            if mask & generic:
                mask |= specific
        if kind in (0x05, 0x06):
            object_flags = int.from_bytes(ace[8:12], "little")
            if object_flags & _OBJECT_TYPE_PRESENT:
                continue
            start = 12 + (16 if object_flags & 0x2 else 0)
        else:
            start = 8
        if not mask & right:
            continue
        if start + 8 > size or start + 8 + 4 * ace[start + 1] > size:
            raise ValueError("an ACE's SID lies outside it")
        if _sid_text(ace[start:]) not in sids:
            continue
        return kind in (0x00, 0x05)
    return False


# -- sample ---------------------------------------------------------------------------------------


def sample(connector: DirectoryConnector, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
    """Read up to ``request.rows`` accounts of an OU: the text and time attributes they hold,
    bookkeeping attributes left out, secrets never requested."""
    store = request.store
    if store.kind != "ou" or request.rows <= 0 or store.items == 0:
        return
    scope = "one" if (store.details or {}).get("extent") == "one" else "subtree"
    rows = min(request.rows, connector.system.connection.page_size)
    conn = connector._connect()
    account = _account_filter(connector)
    try:
        typed = _first_page(connector, conn, store.where, account, scope, ["*"], rows, True)
    except LocationInvalid:
        return  # gone since discovery
    names: dict[str, str] = {}
    for entry in typed:
        for name in entry["raw_attributes"]:
            spelled = name.split(";", 1)[0]
            lowered = spelled.lower()
            if lowered not in _BOOKKEEPING and not _SECRET.search(lowered):
                names.setdefault(lowered, spelled)
    if not names:  # bookkeeping only: the accounts were read, and hold nothing to detect
        yield Sample(store.where, None, [], [[] for _ in typed])
        return
    schema = connector._read_schema()
    syntaxes = {
        lowered: (schema.attribute(spelled) or (spelled, None))[1]
        for lowered, spelled in names.items()
    }
    readable = [
        names[n]
        for n in names
        if syntaxes[n] is None or syntaxes[n] in _TEXT_SYNTAXES | _TIME_SYNTAXES
    ]
    entries = (
        _first_page(connector, conn, store.where, account, scope, readable, rows, False)
        if readable
        else []
    )
    fields = sorted(names.values(), key=str.lower)
    index = {name.lower(): i for i, name in enumerate(fields)}
    table: list[list[Any]] = []
    for entry in entries:
        row: list[Any] = [None] * len(fields)
        for name, values in entry["raw_attributes"].items():
            lowered = name.split(";", 1)[0].lower()
            column = index.get(lowered)
            if column is None or not values:
                continue
            row[column] = _cell(values, syntaxes.get(lowered))
        table.append(row)
    yield Sample(store.where, None, fields, table)


def _cell(values: Sequence[bytes], syntax: str | None) -> Any:
    """Given an attribute's raw values, return them for the detectors: a time as a datetime,
    text as text (several values joined by ' ; '), or None for what is not text."""
    if syntax in _TIME_SYNTAXES:
        from connectors.directory import generalized_time

        try:
            return generalized_time(values[0].decode(), UTC)
        except (ValueError, UnicodeDecodeError):
            return None
    texts = []
    for value in values:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None  # binary after all
        if syntax is None and not text.isprintable():
            return None
        texts.append(text[:_MAX_TEXT])
    return " ; ".join(texts)[:_MAX_TEXT]


def _first_page(
    connector: DirectoryConnector,
    conn: Any,
    base: str,
    ldap_filter: str,
    scope: str,
    attrs: list[str],
    size: int,
    types_only: bool,
) -> list[dict[str, Any]]:
    """Return the first page (``size`` entries at most) of a paged search, and abandon the
    rest of it. Raise LocationInvalid if the base is gone."""
    import ldap3
    from ldap3.core.exceptions import LDAPException

    scopes = {"one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}
    try:
        connector.round_trips += 1
        conn.search(
            base,
            ldap_filter,
            scopes[scope],
            attributes=attrs,
            types_only=types_only,
            paged_size=size,
            paged_criticality=True,
        )
        result = conn.result
        entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
        control = (result.get("controls") or {}).get("1.2.840.113556.1.4.319")
        cookie = control["value"]["cookie"] if control else None
        if cookie:  # RFC 2696: a page size of 0 abandons the search
            connector.round_trips += 1
            conn.search(
                base,
                ldap_filter,
                scopes[scope],
                attributes=["1.1"],
                paged_size=0,
                paged_cookie=cookie,
            )
    except LDAPException as err:
        raise connector._failed(err, f"sampling {base!r}", conn) from err
    if result["result"] == 32:
        raise LocationInvalid(connector.system.id, f"sampling: {base!r} does not exist")
    if result["result"] not in (0, 4):
        raise ConnectorError(
            connector.system.id,
            f"sampling {base!r}: {result['description']}"
            + (f" ({result['message']})" if result.get("message") else ""),
        )
    return entries[:size]
