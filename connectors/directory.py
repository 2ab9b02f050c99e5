"""Directory services — Active Directory (and Samba AD) and OpenLDAP — through ldap3.

A location is a base DN with an object class and conditions; an item is one account. The
connector:

* binds to the first listed server that answers, over LDAPS or StartTLS with the certificate
  verified against ``ca_file`` (plain LDAP or unverified TLS only when configured, and then a
  warning on every run, in the log and as a plan finding). A bind that fails says which server
  and why (AD's ``data 52e``-style reasons spelled out), never the password;
* checks every name a location uses (attributes in its conditions, raw filter, subject, report,
  clock and anonymise lists; its object class) against the server's schema, and that its base
  DN and staging OU exist, before any account is searched;
* builds the search filter from structured conditions whose values are escaped (RFC 4515); a
  raw filter is parsed when the RoPA is loaded and ANDed with them;
* searches in pages (``page_size``, the paged-results control marked critical, so a server
  that cannot page fails instead of truncating) and streams the entries;
* keys each account by its GUID (``objectGUID`` on AD, ``entryUUID`` on OpenLDAP), which a
  move does not change, and fingerprints it by ``uSNChanged`` (AD) or ``entryCSN`` (OpenLDAP).
  ``uSNChanged`` is counted per domain controller: a plan executed through another DC than
  the one it was made on skips its accounts as changed, which is safe;
* refuses (``ScannedItem.refused = "protected"``) built-in accounts (AD: RID below 1000 or
  ``isCriticalSystemObject``; the bind account itself), members of the privileged groups,
  nested membership and primary groups included (AD: the matching rule
  1.2.840.113556.1.4.1941; OpenLDAP: the groups' members expanded), accounts with
  ``adminCount=1`` (AD, by default), accounts that match a protect filter, and any account
  whose DN is outside the location's base. ``lookup`` and ``act`` check this again.

Clocks: ``created`` (whenCreated / createTimestamp), ``modified`` (whenChanged /
modifyTimestamp), ``last_login`` (lastLogonTimestamp / authTimestamp plus the location's
``last_login_margin``, or with ``last_login_every_dc`` the latest exact ``lastLogon`` of every
listed server; an account that never logged on counts from its creation), ``{attribute: NAME}``
for any Generalized Time or AD large-integer attribute (0 and 0x7FFFFFFFFFFFFFFF mean never:
no clock yet), and ``{event: ID}`` by the subject attribute.

Actions, one LDAP operation per account (so an account is changed completely or not at all),
each after the account is read again by GUID and its protection checked: ``disable`` (AD: bit 2
of ``userAccountControl``, written as delete-old-value/add-new-value so a concurrent change
fails it; OpenLDAP: the system's ``disable`` attribute values), ``move`` to the location's
``staging_ou``, ``anonymise`` (the listed attributes cleared or set; clearing the naming
attribute renames the account to its GUID first, a second operation), and ``delete``.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import re
import ssl
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar

import structlog

from connectors.base import (
    ActRequest,
    Connector,
    ConnectorContext,
    DiscoveredStore,
    DiscoverRequest,
    LocationModel,
    NotDueSummary,
    Outcome,
    Sample,
    SampleRequest,
    ScanFinding,
    ScannedItem,
    ScanOutput,
    ScanRequest,
)
from sweeper.errors import ActionUnsupported, ConnectorError, LocationInvalid, SystemUnreachable
from sweeper.retention import Period
from sweeper.ropa.model import (
    AD_PRIVILEGED_GROUPS,
    AttributeClock,
    Clock,
    DirectoryCondition,
    DirectoryLocation,
    DirectorySystem,
    EventClock,
)

__all__ = [
    "DirectoryConnector",
    "ad_time",
    "build_filter",
    "condition_filter",
    "escape_value",
    "from_ad_time",
    "generalized_time",
]

log = structlog.get_logger("connectors.directory")

_GUIDS_PER_FILTER = 200
"""GUIDs per OR-filter when accounts are read by key (AD limits a request's size)."""

_NEVER = 0x7FFFFFFFFFFFFFFF
_AD_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_DISABLED = 0x2
_PAGED = "1.2.840.113556.1.4.319"
_POST_READ = "1.3.6.1.1.13.2"
_IN_CHAIN = "1.2.840.113556.1.4.1941"
_GENERALIZED_TIME = "1.3.6.1.4.1.1466.115.121.1.24"
_LARGE_INTEGER = "1.2.840.113556.1.4.906"
_INTEGER = "1.3.6.1.4.1.1466.115.121.1.27"

# AD well-known RIDs of the default privileged groups (their names are localised).
_WELL_KNOWN = {"domain admins": 512, "enterprise admins": 519, "administrators": 544}

# AD's bind errors: the "data NNN" code in the diagnostic message.
_AD_BIND_REASONS = {
    "525": "no such user",
    "52e": "wrong password",
    "530": "not permitted to log on at this time",
    "531": "not permitted to log on from this workstation",
    "532": "password expired",
    "533": "account disabled",
    "701": "account expired",
    "773": "the password must be changed first",
    "775": "account locked out",
}


# -- times ------------------------------------------------------------------------------------


def ad_time(value: int) -> datetime | None:
    """Given an AD large-integer time (100 ns intervals since 1601-01-01 UTC), return the
    aware UTC datetime; None for 0, 0x7FFFFFFFFFFFFFFF and anything outside years 1601-9999
    ("never")."""
    if value <= 0 or value >= _NEVER:
        return None
    try:
        return _AD_EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        return None


def from_ad_time(moment: datetime) -> int:
    """Given an aware datetime, return it as an AD large-integer time. Raise ValueError if
    it is naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an AD time needs a timezone-aware datetime")
    return (moment - _AD_EPOCH) // timedelta(microseconds=1) * 10


_GENERALIZED = re.compile(
    r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)?",
    re.ASCII,
)


def generalized_time(text: str, tz: tzinfo) -> datetime:
    """Given a Generalized Time (RFC 4517: ``20261201080013.0Z``, ``20261201080425Z``,
    ``2026120108+0100``; without a zone it is local time in ``tz``), return the aware
    datetime. Raise ValueError if it is not one."""
    match = _GENERALIZED.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a Generalized Time (YYYYMMDDHHMMSSZ)")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone is None:
        zone_info: tzinfo = tz
    elif zone == "Z":
        zone_info = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0))
        zone_info = _fixed(sign * offset)
    base = datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute or 0),
        int(second or 0),
        tzinfo=zone_info,
    )
    if fraction:
        # The fraction is of the last unit given (RFC 4517); truncated to the microsecond.
        unit = timedelta(seconds=1) if second else timedelta(minutes=1) if minute else None
        unit = unit or timedelta(hours=1)
        base += unit * int(fraction) / 10 ** len(fraction)
    return base


def _fixed(offset: timedelta) -> tzinfo:
    from datetime import timezone

    return timezone(offset)


# -- filters ----------------------------------------------------------------------------------


def escape_value(value: str | int | bool) -> str:
    """Given a condition value, return it as an RFC 4515 assertion value: ``*``, ``(``,
    ``)``, ``\\`` and NUL escaped (non-ASCII stays UTF-8); booleans as TRUE/FALSE."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    text = str(value)
    return (
        text.replace("\\", "\\5c")
        .replace("*", "\\2a")
        .replace("(", "\\28")
        .replace(")", "\\29")
        .replace("\x00", "\\00")
    )


def condition_filter(condition: DirectoryCondition) -> str:
    """Given a structured condition, return its LDAP filter with the value escaped."""
    attribute, op, value = condition.attribute, condition.op, condition.value
    if op == "present":
        return f"({attribute}=*)"
    if op == "absent":
        return f"(!({attribute}=*))"
    if op in ("in", "not in"):
        assert isinstance(value, list)
        terms = "".join(f"({attribute}={escape_value(v)})" for v in value)
        either = f"(|{terms})" if len(value) > 1 else terms
        return either if op == "in" else f"(!{either})"
    assert value is not None and not isinstance(value, list)
    if op == "!=":
        return f"(!({attribute}={escape_value(value)}))"
    return f"({attribute}{op}{escape_value(value)})"


def build_filter(location: DirectoryLocation, flavour: str) -> str:
    """Given a location and the directory's flavour, return the search filter: the object
    class (AD's default ``user`` without computers, which are users too), every condition
    and the raw filter, ANDed."""
    object_class = location.object_class or ("user" if flavour == "ad" else "inetOrgPerson")
    parts = [f"(objectClass={escape_value(object_class)})"]
    if flavour == "ad" and object_class.lower() == "user":
        parts.append("(!(objectClass=computer))")
    parts += [condition_filter(c) for c in location.where]
    if location.filter:
        parts.append(location.filter.strip())
    return "(&" + "".join(parts) + ")"


def filter_attributes(text: str) -> set[str]:
    """Given an LDAP filter, return the attribute names it tests (without options)."""
    from ldap3.operation.search import parse_filter

    names: set[str] = set()

    def walk(node: Any) -> None:
        attribute = (node.assertion or {}).get("attr") if isinstance(node.assertion, dict) else None
        if attribute:
            names.add(str(attribute).split(";", 1)[0])
        for child in node.elements:
            walk(child)

    walk(parse_filter(text, None, False, False, None, False))
    return names


def _guid_filter(guids: Sequence[uuid.UUID], flavour: str) -> str:
    if flavour == "ad":
        terms = ["(objectGUID=" + "".join(f"\\{b:02x}" for b in g.bytes_le) + ")" for g in guids]
    else:
        terms = [f"(entryUUID={g})" for g in guids]
    return terms[0] if len(terms) == 1 else "(|" + "".join(terms) + ")"


def _sid_text(raw: bytes) -> str:
    """Given a binary SID, return its S-1-… text form."""
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = [int.from_bytes(raw[8 + 4 * i : 12 + 4 * i], "little") for i in range(count)]
    return f"S-{revision}-{authority}" + "".join(f"-{s}" for s in subs)


def _sid_filter_value(sid: str) -> str:
    """Given an S-1-… SID, return it as an escaped binary filter value."""
    parts = sid.split("-")
    revision, authority, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    raw = bytes([revision, len(subs)]) + authority.to_bytes(6, "big")
    raw += b"".join(s.to_bytes(4, "little") for s in subs)
    return "".join(f"\\{b:02x}" for b in raw)


def _normal_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """Given a DN, return its RDNs as (type, value) pairs, lower-cased, for comparison."""
    from ldap3.utils.dn import parse_dn

    return tuple(
        (kind.lower(), value.lower()) for kind, value, _ in parse_dn(dn, escape=False, strip=True)
    )


def _within(dn: tuple[tuple[str, str], ...], base: tuple[tuple[str, str], ...]) -> bool:
    return len(dn) >= len(base) and dn[len(dn) - len(base) :] == base


def _first_value(dn: str) -> str | None:
    """Given a DN, return its first RDN's value lower-cased, cheaply; None where that needs a
    real parse (escapes, multi-valued RDNs)."""
    first = dn.split(",", 1)[0]
    if "\\" in first or "+" in first or "=" not in first:
        return None
    return first.split("=", 1)[1].strip().lower()


# -- resolved locations -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Schema:
    """The names the server's schema knows: attribute name (lower) -> (name, syntax OID)."""

    attributes: Mapping[str, tuple[str, str | None]]
    classes: frozenset[str]

    def attribute(self, name: str) -> tuple[str, str | None] | None:
        return self.attributes.get(name.split(";", 1)[0].lower())


@dataclass(frozen=True)
class _ClockSpec:
    """How an account's clock is read: from which attribute(s), in which format."""

    attribute: str | None  # None: an event clock (read by subject)
    large_integer: bool = False
    margin: timedelta = timedelta(0)
    fallback: str | None = None  # for last_login: the creation time when never logged on
    every_dc: bool = False


@dataclass(frozen=True)
class _Location:
    """A location resolved against the server."""

    base: str
    base_rdns: tuple[tuple[str, str], ...]
    base_suffixes: tuple[str, ...]  # ",base" lower-cased, as written and as the server spells it
    scope: str
    filter: str
    clock: _ClockSpec
    subject: str | None
    report: tuple[str, ...]
    attributes: tuple[str, ...]


@dataclass
class _Protection:
    """What makes an account protected on this system, resolved once per connection."""

    bind: tuple[tuple[str, str], ...]
    admin_count: bool = False
    # The privileged groups' members, nested groups' members included: DN -> group name.
    members: dict[tuple[tuple[str, str], ...], str] = field(default_factory=dict)
    first_values: set[str] = field(default_factory=set)  # their first RDN values: a quick test
    uids: dict[str, str] = field(default_factory=dict)  # posixGroup memberUid -> group name
    tokens: dict[int, str] = field(default_factory=dict)  # AD primaryGroupToken -> group name
    filters: list[tuple[str, str]] = field(default_factory=list)  # (filter, reason)

    def add_member(self, dn: str, group: str) -> None:
        try:
            rdns = _normal_dn(dn)
        except Exception:  # noqa: BLE001  (a malformed member value names no account)
            return
        if rdns:
            self.members.setdefault(rdns, group)
            self.first_values.add(rdns[0][1])

    def group_of(self, dn: str) -> str | None:
        """Given an account's DN, return the privileged group it is a member of, or None."""
        quick = _first_value(dn)
        if quick is not None and quick not in self.first_values:
            return None  # most accounts: no DN parse needed
        try:
            return self.members.get(_normal_dn(dn))
        except Exception:  # noqa: BLE001  (a DN that does not parse is refused elsewhere)
            return None


@dataclass(frozen=True)
class _Account:
    """One account as read, with what the act needs."""

    key: str
    dn: str
    item: ScannedItem
    control: int | None  # AD userAccountControl


class DirectoryConnector(Connector):
    """A connection to one directory (AD or OpenLDAP). See the module docstring for the rules.

    Args:
        system: the ``DirectorySystem`` from the RoPA.
        context: base folder, credentials and whether the run is a dry run (then the ldap3
            connection refuses every write).
    """

    kind: ClassVar[str] = "directory"
    system: DirectorySystem

    def __init__(self, system: DirectorySystem, context: ConnectorContext) -> None:
        super().__init__(system, context)
        self._conn: Any = None
        self._url: str | None = None
        self._secret: str | None = None
        self._root: str | None = None
        self._contexts: tuple[str, ...] = ()
        self._others: dict[str, Any] = {}
        self._domain_sid: str | None = None
        self._schema: _Schema | None = None
        self._protection: _Protection | None = None
        self._locations: dict[tuple[str, str], _Location] = {}
        self._controls: frozenset[str] = frozenset()
        self._discovery: dict[str, Any] = {}  # naming contexts, their ids, the bind token
        self.round_trips = 0
        """LDAP requests sent (binds, searches, pages, writes), for benchmarks."""

    @property
    def _ad(self) -> bool:
        return self.system.connection.flavour == "ad"

    @property
    def _key_attribute(self) -> str:
        return "objectGUID" if self._ad else "entryUUID"

    @property
    def _fingerprint_attribute(self) -> str:
        return "uSNChanged" if self._ad else "entryCSN"

    # -- connection -----------------------------------------------------------------------

    def _password(self) -> str:
        if self._secret is None:
            name = self.system.connection.credential
            self._secret = self.context.credential(name).get_secret_value()
        return self._secret

    def _tls(self) -> Any:
        from ldap3 import Tls

        settings = self.system.connection
        if settings.tls_mode == "none":
            return None
        ca_file = None
        if settings.ca_file is not None:
            path = Path(self.context.base_dir, settings.ca_file)
            if not path.is_file():
                raise SystemUnreachable(
                    self.system.id,
                    f"connection.ca_file {settings.ca_file!r} is not a readable file "
                    f"(looked at {path})",
                )
            ca_file = str(path)
        names = [settings.tls_server_name] if settings.tls_server_name else None
        if settings.verify_tls:
            return Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file, valid_names=names)
        return Tls(validate=ssl.CERT_NONE)

    def _open(self, url: str) -> Any:
        """Given a server URL, return a bound ldap3 connection to it. Raise SystemUnreachable
        saying why (without the password)."""
        from ldap3 import NONE, SIMPLE, SYNC, Connection, Server
        from ldap3.core.exceptions import LDAPException

        settings = self.system.connection
        mode = settings.tls_mode
        server = Server(
            url,
            use_ssl=mode == "ldaps",
            tls=self._tls(),
            get_info=NONE,
            connect_timeout=settings.timeout,
        )
        conn = Connection(
            server,
            user=settings.bind_dn,
            password=self._password(),
            authentication=SIMPLE,
            client_strategy=SYNC,
            auto_referrals=False,
            raise_exceptions=False,
            read_only=self.context.read_only,
            receive_timeout=math.ceil(settings.timeout),  # ldap3 packs it as an integer
            return_empty_attributes=False,
            check_names=False,
        )
        try:
            self.round_trips += 1
            conn.open()
            if mode == "starttls":
                self.round_trips += 1
                conn.start_tls()
            self.round_trips += 1
            if not conn.bind():
                reason = self._bind_reason(conn.result)
                conn.unbind()
                raise SystemUnreachable(
                    self.system.id, f"bind to {url} as {settings.bind_dn} failed: {reason}"
                )
        except (LDAPException, OSError) as err:
            raise SystemUnreachable(
                self.system.id, f"cannot connect to {url}: {self._driver_reason(err)}"
            ) from err
        return conn

    def _bind_reason(self, result: Mapping[str, Any]) -> str:
        description = str(result.get("description") or result.get("result"))
        message = str(result.get("message") or "")
        code = re.search(r"\bdata ([0-9a-f]{3})\b", message)
        if code and code.group(1) in _AD_BIND_REASONS:
            return f"{description} ({_AD_BIND_REASONS[code.group(1)]})"
        if description == "strongerAuthRequired":
            return f"{description}: the server refuses a simple bind without TLS ({message})"
        return f"{description}{': ' + message if message else ''}"

    def _driver_reason(self, err: BaseException) -> str:
        text = " ".join(f"{type(err).__name__}: {err}".split())
        if self._secret:
            text = text.replace(self._secret, "***")
        if "certificate" in text.lower() and "match" in text.lower():
            text = re.sub(r"certificate \{.*\} doesn't", "the certificate doesn't", text)
            text += (
                "; list the server by the name its certificate carries, or set "
                "connection.tls_server_name"
            )
        return text[:600]

    def _connect(self) -> Any:
        """Bind to the first listed server that answers; return the connection."""
        if self._conn is not None:
            return self._conn
        problems = []
        for url in self.system.connection.servers:
            try:
                self._conn = self._open(url)
            except SystemUnreachable as err:
                problems.append(str(err).removeprefix(f"system {self.system.id!r}: "))
                log.warning("directory server unreachable", system=self.system.id, reason=str(err))
                continue
            self._url = url
            if problems:
                log.warning("directory server in use", system=self.system.id, server=url)
            return self._conn
        raise SystemUnreachable(self.system.id, "; ".join(problems))

    def _other_servers(self) -> Iterator[tuple[str, Any]]:
        """Yield (URL, bound connection) for every listed server but the one in use; the
        connections are kept until ``close``."""
        for url in self.system.connection.servers:
            if url != self._url:
                if url not in self._others:
                    self._others[url] = self._open(url)
                yield url, self._others[url]

    def check(self) -> None:
        """Bind and read the root DSE (naming context, paging support). Raise
        SystemUnreachable with the server and the reason. Warns about an insecure connection."""
        if (insecure := self.system.connection.insecure) is not None:
            log.warning("insecure directory connection", system=self.system.id, reason=insecure)
        conn = self._connect()
        root = self._search_one(conn, "", "(objectClass=*)", "BASE", ["*", "+"], "root DSE")
        if root is None:
            raise SystemUnreachable(self.system.id, f"{self._url} has no readable root DSE")
        attrs = root["raw_attributes"]
        controls = frozenset(v.decode() for v in attrs.get("supportedControl", []))
        self._controls = controls
        if _PAGED not in controls:
            raise SystemUnreachable(
                self.system.id, f"{self._url} does not support paged searches (RFC 2696)"
            )
        self._contexts = tuple(v.decode() for v in attrs.get("namingContexts", []))
        default = attrs.get("defaultNamingContext") or attrs.get("namingContexts") or [b""]
        self._root = default[0].decode()

    def _context_of(self, rdns: tuple[tuple[str, str], ...]) -> str:
        """Given a DN, return the naming context (the directory partition) that holds it."""
        for context in sorted(self._contexts, key=len, reverse=True):
            try:
                if _within(rdns, _normal_dn(context)):
                    return context
            except Exception:  # noqa: BLE001  (a context that does not parse holds nothing)
                continue
        return self._root or ""

    def close(self) -> None:
        """Unbind."""
        for conn in [self._conn, *self._others.values()]:
            if conn is not None:
                # Closing a dead socket may fail; there is nothing to keep.
                with contextlib.suppress(Exception):
                    conn.unbind()
        self._conn, self._others = None, {}

    # -- operations -----------------------------------------------------------------------

    def _failed(self, err: BaseException, doing: str, conn: Any) -> ConnectorError:
        """Given an ldap3 error on a connection, drop the connection if it broke (the next
        request binds again, to the first server that answers); return the error to raise."""
        from ldap3.core.exceptions import LDAPCommunicationError, LDAPResponseTimeoutError

        broken = isinstance(err, LDAPCommunicationError | LDAPResponseTimeoutError)
        if broken:
            url = self._url
            if conn is self._conn:
                self._conn = None
            for other, open_conn in list(self._others.items()):
                if open_conn is conn:
                    url = other
                    del self._others[other]
            return SystemUnreachable(
                self.system.id,
                f"{url} stopped answering while {doing}: {self._driver_reason(err)}",
            )
        return ConnectorError(self.system.id, f"{doing}: {self._driver_reason(err)}")

    def _search_one(
        self, conn: Any, base: str, ldap_filter: str, scope: str, attrs: list[str], doing: str
    ) -> dict[str, Any] | None:
        entries = list(self._search(conn, base, ldap_filter, scope, attrs, doing))
        return entries[0] if entries else None

    def _search(
        self,
        conn: Any,
        base: str,
        ldap_filter: str,
        scope: str,
        attrs: Sequence[str],
        doing: str,
        *,
        missing_ok: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Stream the entries of a paged search. Raise SystemUnreachable if the server stops
        answering, LocationInvalid if the base does not exist (unless ``missing_ok``)."""
        import ldap3
        from ldap3.core.exceptions import LDAPException

        scopes = {"BASE": ldap3.BASE, "one": ldap3.LEVEL, "subtree": ldap3.SUBTREE}
        cookie: Any = None
        page = self.system.connection.page_size
        while True:
            try:
                self.round_trips += 1
                conn.search(
                    base,
                    ldap_filter,
                    scopes[scope],
                    attributes=list(attrs),
                    paged_size=page if scope != "BASE" else None,
                    paged_cookie=cookie,
                    paged_criticality=scope != "BASE",
                )
            except LDAPException as err:
                raise self._failed(err, doing, conn) from err
            result = conn.result
            if result["result"] == 32:  # noSuchObject
                if missing_ok:
                    return
                raise LocationInvalid(self.system.id, f"{doing}: {base!r} does not exist")
            if result["result"] == 4:  # a truncated result must not pass for the whole one
                raise ConnectorError(
                    self.system.id,
                    f"{doing}: the server stopped the search at its size limit "
                    f"({result.get('message') or 'sizeLimitExceeded'}): raise the limit for "
                    "the sweeper's account, or lower connection.page_size",
                )
            if result["result"] != 0:
                raise ConnectorError(
                    self.system.id,
                    f"{doing}: {result['description']}"
                    + (f" ({result['message']})" if result.get("message") else ""),
                )
            for entry in conn.response or ():
                if entry.get("type") == "searchResEntry":
                    yield entry
            control = (result.get("controls") or {}).get(_PAGED)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return

    def _write(self, what: Callable[[], bool], doing: str) -> tuple[bool, Mapping[str, Any]]:
        """Run one write; return (succeeded, result). Raise SystemUnreachable if the server
        stopped answering (the write then may or may not have happened)."""
        from ldap3.core.exceptions import LDAPException

        try:
            self.round_trips += 1
            ok = what()
        except LDAPException as err:
            raise self._failed(err, doing, self._conn) from err
        return bool(ok), self._conn.result

    # -- schema and names -----------------------------------------------------------------

    def _read_schema(self) -> _Schema:
        if self._schema is not None:
            return self._schema
        conn = self._connect()
        root = self._search_one(conn, "", "(objectClass=*)", "BASE", ["subschemaSubentry"], "")
        sub = (root or {}).get("raw_attributes", {}).get("subschemaSubentry")
        if not sub:
            raise ConnectorError(self.system.id, f"{self._url} does not publish its schema")
        entry = self._search_one(
            conn,
            sub[0].decode(),
            "(objectClass=subschema)",
            "BASE",
            ["attributeTypes", "objectClasses"],
            "reading the schema",
        )
        raw = (entry or {}).get("raw_attributes", {})
        attributes: dict[str, tuple[str, str | None]] = {}
        for definition in raw.get("attributeTypes", []):
            text = definition.decode("utf-8", "replace")
            syntax = re.search(r"SYNTAX\s+'?([0-9.]+)", text)
            for name in _names(text):
                attributes[name.lower()] = (name, syntax.group(1) if syntax else None)
        # An attribute without SYNTAX inherits it (SUP): resolve one level, as OpenLDAP does.
        for text in (d.decode("utf-8", "replace") for d in raw.get("attributeTypes", [])):
            sup = re.search(r"\bSUP\s+'?([A-Za-z0-9.-]+)", text)
            if sup and "SYNTAX" not in text:
                parent = attributes.get(sup.group(1).lower())
                for name in _names(text):
                    attributes[name.lower()] = (name, parent[1] if parent else None)
        classes = frozenset(
            n.lower()
            for d in raw.get("objectClasses", [])
            for n in _names(d.decode("utf-8", "replace"))
        )
        self._schema = _Schema(attributes, classes)
        return self._schema

    def _attribute(self, name: str, role: str, problems: list[str]) -> str:
        """Given an attribute name, return it as the schema spells it, or add a problem."""
        found = self._read_schema().attribute(name)
        if found is None:
            close = difflib.get_close_matches(
                name.lower(), list(self._read_schema().attributes), n=3, cutoff=0.75
            )
            spelled = [self._read_schema().attributes[c][0] for c in close]
            hint = f" (did you mean {', '.join(spelled)}?)" if spelled else ""
            problems.append(f"attribute {name!r} ({role}) is not in the server's schema{hint}")
            return name
        return found[0]

    def prepare(self, location: LocationModel, clock: Clock) -> None:
        """Check every name the location uses against the schema, that its base DN (and
        staging OU) exist, and resolve the protected accounts. Raise LocationInvalid."""
        self._location(location, clock)

    def _dir_location(self, location: LocationModel) -> DirectoryLocation:
        if not isinstance(location, DirectoryLocation):
            raise LocationInvalid(
                self.system.id, "a directory is searched by base_dn, not by a table or patterns"
            )
        return location

    def _location(self, location: LocationModel, clock: Clock | None) -> _Location:
        location = self._dir_location(location)
        cache = (location.model_dump_json(), repr(clock))
        if (resolved := self._locations.get(cache)) is not None:
            return resolved
        if self._root is None:
            self.check()
        problems: list[str] = []
        schema = self._read_schema()
        ldap_filter = build_filter(location, self.system.connection.flavour)
        object_class = location.object_class or ("user" if self._ad else "inetOrgPerson")
        if object_class.lower() not in schema.classes:
            problems.append(f"object class {object_class!r} is not in the server's schema")
        for name in sorted(filter_attributes(ldap_filter) - {"objectClass"}):
            self._attribute(name, "filter", problems)
        subject = (
            self._attribute(location.subject, "subject", problems) if location.subject else None
        )
        report = tuple(self._attribute(a, "report", problems) for a in location.report)
        for name in location.anonymise:
            self._attribute(name, "anonymise", problems)
        for name in self.system.connection.disable or {}:
            self._attribute(name, "connection.disable", problems)
        spec = self._clock_spec(location, clock, problems)
        if problems:
            raise LocationInvalid(
                self.system.id, f"location {location.base_dn!r}: " + "; ".join(problems)
            )
        conn = self._connect()
        spelled = self._exists(conn, location.base_dn, "base_dn")
        if location.staging_ou is not None:
            self._exists(conn, location.staging_ou, "staging_ou")
        self._protections(conn)
        wanted = [
            self._key_attribute,
            self._fingerprint_attribute,
            *([spec.attribute] if spec.attribute else []),
            *([spec.fallback] if spec.fallback else []),
            *(["lastLogonTimestamp"] if spec.every_dc else []),
            *([subject] if subject else []),
            *report,
            *self._state_attributes(),
        ]
        resolved = _Location(
            base=location.base_dn,
            base_rdns=_normal_dn(location.base_dn),
            base_suffixes=tuple({"," + location.base_dn.lower(), "," + spelled.lower()}),
            scope=location.scope,
            filter=ldap_filter,
            clock=spec,
            subject=subject,
            report=report,
            attributes=tuple(dict.fromkeys(wanted)),
        )
        self._locations[cache] = resolved
        return resolved

    def _state_attributes(self) -> list[str]:
        if self._ad:
            return [
                "userAccountControl",
                "objectSid",
                "isCriticalSystemObject",
                "adminCount",
                "primaryGroupID",
            ]
        attrs = list(self.system.connection.disable or {})
        if self._protection is not None and self._protection.uids:
            attrs.append("uid")
        return attrs

    def _exists(self, conn: Any, dn: str, what: str) -> str:
        """Return the DN as the server spells it. Raise LocationInvalid if it does not exist."""
        found = list(
            self._search(conn, dn, "(objectClass=*)", "BASE", ["1.1"], what, missing_ok=True)
        )
        if not found:
            matched = (conn.result or {}).get("dn")
            hint = f" (the nearest entry that exists is {matched!r})" if matched else ""
            raise LocationInvalid(self.system.id, f"{what} {dn!r} does not exist{hint}")
        return str(found[0]["dn"])

    def _clock_spec(
        self, location: DirectoryLocation, clock: Clock | None, problems: list[str]
    ) -> _ClockSpec:
        created = "whenCreated" if self._ad else "createTimestamp"
        if clock is None or isinstance(clock, EventClock):
            if isinstance(clock, EventClock) and location.subject is None:
                problems.append(
                    f"clock {{event: {clock.event}}} needs the location's subject attribute"
                )
            return _ClockSpec(None)
        if clock == "created":
            return _ClockSpec(created)
        if clock == "modified":
            return _ClockSpec("whenChanged" if self._ad else "modifyTimestamp")
        if clock == "last_login":
            if self._ad:
                if location.last_login_every_dc:
                    # lastLogonTimestamp too: it covers a DC that is not listed (late, but
                    # never later than the real logon).
                    return _ClockSpec("lastLogon", True, fallback=created, every_dc=True)
                margin = _as_timedelta(location.last_login_margin)
                return _ClockSpec("lastLogonTimestamp", True, margin, created)
            name = self._attribute("authTimestamp", "last_login", [])
            if self._read_schema().attribute("authTimestamp") is None:
                problems.append(
                    "the last_login clock reads authTimestamp, which this server's schema "
                    "lacks: load the lastbind overlay, or use {attribute: pwdLastSuccess}"
                )
            margin = _as_timedelta(location.last_login_margin)
            return _ClockSpec(name, False, margin, created)
        if isinstance(clock, AttributeClock):
            name = self._attribute(clock.attribute, "clock", problems)
            found = self._read_schema().attribute(clock.attribute)
            syntax = found[1] if found else None
            if found is not None and syntax not in (_GENERALIZED_TIME, _LARGE_INTEGER, _INTEGER):
                problems.append(
                    f"clock attribute {name!r} has syntax {syntax}, not a date: use a "
                    "Generalized Time or an AD large-integer time attribute"
                )
            return _ClockSpec(name, syntax in (_LARGE_INTEGER, _INTEGER))
        problems.append(
            f"a directory location's clock is created, modified, last_login, {{attribute: NAME}} "
            f"or {{event: ID}}, not {clock!r}"
        )
        return _ClockSpec(None)

    # -- protection -----------------------------------------------------------------------

    def _protections(self, conn: Any) -> _Protection:
        """Resolve, once per connection, what protects an account. Raise LocationInvalid if a
        configured privileged group or a protect filter's attribute does not exist."""
        if self._protection is not None:
            return self._protection
        settings = self.system.connection
        protection = _Protection(
            _normal_dn(settings.bind_dn), self._ad and settings.protect_admin_count
        )
        problems: list[str] = []
        explicit = "privileged_groups" in settings.model_fields_set
        for name in settings.privileged_groups:
            groups = self._find_groups(conn, name)
            if not groups and (explicit or name not in AD_PRIVILEGED_GROUPS):
                problems.append(f"privileged group {name!r} does not exist")
            for group in groups:  # a name two groups share protects the members of both
                if self._ad:
                    self._ad_group(conn, name, group, protection)
                else:
                    self._ldap_group(conn, name, group, protection, set())
        for rule in settings.protect:
            for attribute in sorted(filter_attributes(rule.filter) - {"objectClass"}):
                self._attribute(attribute, "protect filter", problems)
            protection.filters.append((rule.filter, rule.reason or f"matches {rule.filter}"))
        if problems:
            raise LocationInvalid(self.system.id, "; ".join(problems))
        self._protection = protection
        return protection

    def _find_groups(self, conn: Any, name: str) -> list[dict[str, Any]]:
        """Given a privileged group's name or DN, return the groups it names (AD: by
        well-known SID first, since the default names are localised)."""
        attrs = ["primaryGroupToken", "member", "uniqueMember", "memberUid", "objectClass"]
        root = self._root or ""
        doing = f"finding privileged group {name!r}"
        if "=" in name:
            return list(
                self._search(conn, name, "(objectClass=*)", "BASE", attrs, doing, missing_ok=True)
            )
        if self._ad and name.lower() in _WELL_KNOWN:
            rid = _WELL_KNOWN[name.lower()]
            sid = "S-1-5-32-544" if rid == 544 else f"{self._domain(conn)}-{rid}"
            by_sid = f"(objectSid={_sid_filter_value(sid)})"
            found = list(self._search(conn, root, by_sid, "subtree", attrs, doing))
            if found:
                return found
        value = escape_value(name)
        classes = (
            "(objectClass=group)"
            if self._ad
            else "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
            "(objectClass=posixGroup))"
        )
        naming = f"(|(cn={value})(sAMAccountName={value}))" if self._ad else f"(cn={value})"
        return list(self._search(conn, root, f"(&{classes}{naming})", "subtree", attrs, doing))

    def _domain(self, conn: Any) -> str:
        if self._domain_sid is None:
            entry = self._search_one(
                conn, self._root or "", "(objectClass=*)", "BASE", ["objectSid"], "domain SID"
            )
            raw = (entry or {}).get("raw_attributes", {}).get("objectSid")
            if not raw:
                raise ConnectorError(
                    self.system.id, f"{self._root!r} has no objectSid: is it an AD domain?"
                )
            self._domain_sid = _sid_text(raw[0])
        return self._domain_sid

    def _ad_group(
        self, conn: Any, name: str, group: dict[str, Any], protection: _Protection
    ) -> None:
        """Add an AD group's members, and the members of every group nested in it (found by
        the in-chain matching rule), with the groups' primary group tokens. Membership is read
        from the groups, so no account search has to evaluate the rule."""
        nested = self._search(
            conn,
            self._root or "",
            f"(&(objectClass=group)(memberOf:{_IN_CHAIN}:={escape_value(group['dn'])}))",
            "subtree",
            ["primaryGroupToken", "member"],
            f"finding the groups nested in {name!r}",
        )
        for entry in [group, *nested]:
            token = entry["raw_attributes"].get("primaryGroupToken")
            if token:
                protection.tokens.setdefault(int(token[0]), name)
            for member in entry["raw_attributes"].get("member", []):
                protection.add_member(member.decode(), name)

    def _ldap_group(
        self,
        conn: Any,
        name: str,
        group: dict[str, Any],
        protection: _Protection,
        seen: set[str],
    ) -> None:
        """Add an OpenLDAP group's members, expanding member groups (nested membership)."""
        if group["dn"].lower() in seen:
            return
        seen.add(group["dn"].lower())
        attrs = group["raw_attributes"]
        for uid in attrs.get("memberUid", []):
            protection.uids.setdefault(uid.decode().lower(), name)
        for member in [*attrs.get("member", []), *attrs.get("uniqueMember", [])]:
            dn = member.decode().split("#", 1)[0]  # uniqueMember may carry a #'uid' suffix
            protection.add_member(dn, name)
            try:
                child = self._search_one(
                    conn,
                    dn,
                    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
                    "(objectClass=posixGroup))",
                    "BASE",
                    ["member", "uniqueMember", "memberUid"],
                    f"expanding group {name!r}",
                )
            except LocationInvalid:
                continue
            if child is not None:
                self._ldap_group(conn, name, child, protection, seen)

    def _protected(self, conn: Any, base: str, scope: str, ldap_filter: str) -> dict[str, str]:
        """Given a search, return key -> reason for the accounts in it that a protect filter
        matches (one search per filter)."""
        found: dict[str, str] = {}
        for clause, reason in self._protections(conn).filters:
            for entry in self._search(
                conn,
                base,
                f"(&{ldap_filter}{clause})",
                scope,
                [self._key_attribute],
                "finding protected accounts",
                missing_ok=True,
            ):
                key = self._key(entry["raw_attributes"])
                if key is not None:
                    found.setdefault(key, reason)
        return found

    def _refusal(
        self,
        dn: str,
        attrs: Mapping[str, list[bytes]],
        resolved: _Location,
        by_filter: str | None,
    ) -> str | None:
        """Return why an account is protected, or None."""
        protection = self._protection
        assert protection is not None
        lowered = dn.lower()
        if not any(lowered.endswith(s) for s in resolved.base_suffixes):
            try:  # spelled differently (spaces, escapes)? compare RDN by RDN
                within = _within(_normal_dn(dn), resolved.base_rdns)
            except Exception:  # noqa: BLE001  (a DN that does not parse is not in the base)
                within = False
            if not within:
                return "outside the location's base DN"
        if _first_value(dn) in (None, protection.bind[0][1]) and _normal_dn(dn) == protection.bind:
            return "the account the sweeper binds as"
        if self._ad:
            sid = attrs.get("objectSid")
            if sid and len(sid[0]) >= 12 and int.from_bytes(sid[0][-4:], "little") < 1000:
                return f"a built-in account (RID {int.from_bytes(sid[0][-4:], 'little')})"
            if attrs.get("isCriticalSystemObject", [b""])[0].upper() == b"TRUE":
                return "a built-in account (isCriticalSystemObject)"
        group = protection.group_of(dn)
        if group is None and protection.uids and attrs.get("uid"):
            group = protection.uids.get(attrs["uid"][0].decode().lower())
        if group is not None:
            return f"member of privileged group {group}"
        token = attrs.get("primaryGroupID")
        if token and int(token[0]) in protection.tokens:
            return f"primary group is privileged group {protection.tokens[int(token[0])]}"
        if protection.admin_count and attrs.get("adminCount", [b""])[0] == b"1":
            return "adminCount=1: a current or former member of a protected group"
        return by_filter

    # -- reading accounts -----------------------------------------------------------------

    def _key(self, attrs: Mapping[str, list[bytes]]) -> str | None:
        raw = attrs.get(self._key_attribute)
        if not raw:
            return None
        if self._ad:
            return str(uuid.UUID(bytes_le=raw[0]))
        return str(uuid.UUID(raw[0].decode()))

    def _disabled(self, attrs: Mapping[str, list[bytes]]) -> tuple[bool, int | None]:
        if self._ad:
            raw = attrs.get("userAccountControl")
            control = int(raw[0]) if raw else 0
            return bool(control & _DISABLED), control
        wanted = self.system.connection.disable or {}
        return bool(wanted) and all(
            value.encode() in attrs.get(name, []) for name, value in wanted.items()
        ), None

    def _read_time(self, raw: bytes, large: bool, tz: tzinfo) -> datetime | None:
        if large:
            return ad_time(int(raw))
        return generalized_time(raw.decode(), tz)

    def _clock(
        self,
        spec: _ClockSpec,
        attrs: Mapping[str, list[bytes]],
        tz: tzinfo,
        elsewhere: Sequence[datetime] = (),
    ) -> tuple[datetime | None, str | None, str | None]:
        """Return (clock, problem, note) of an account."""
        if spec.attribute is None:
            return None, None, None
        raw = attrs.get(spec.attribute)
        try:
            moment = self._read_time(raw[0], spec.large_integer, tz) if raw else None
            if spec.every_dc:
                last = (
                    self._read_time(attrs["lastLogonTimestamp"][0], True, tz)
                    if attrs.get("lastLogonTimestamp")
                    else None
                )
                moments = [m for m in (moment, last, *elsewhere) if m is not None]
                moment = max(moments) if moments else None
            if moment is not None:
                return moment + spec.margin, None, None
            if spec.fallback is not None:  # never logged on: from its creation
                created = attrs.get(spec.fallback)
                if created:
                    return generalized_time(created[0].decode(), tz), None, "never logged on"
            return None, None, None  # "never" (no expiry set): the clock has not started
        except (ValueError, OverflowError) as err:
            return None, f"{spec.attribute}: {err}", None

    def _item(
        self,
        entry: Mapping[str, Any],
        resolved: _Location,
        tz: tzinfo,
        protected: Mapping[str, str],
        elsewhere: Mapping[str, list[datetime]],
    ) -> _Account | None:
        attrs = entry["raw_attributes"]
        key = self._key(attrs)
        if key is None:
            return None
        dn = entry["dn"]
        refusal = self._refusal(dn, attrs, resolved, protected.get(key))
        disabled, control = self._disabled(attrs)
        clock, problem, note = self._clock(resolved.clock, attrs, tz, elsewhere.get(key, ()))
        subject = None
        if resolved.subject is not None and attrs.get(resolved.subject):
            subject = attrs[resolved.subject][0].decode("utf-8", "replace")
        fingerprint = attrs.get(self._fingerprint_attribute, [b""])[0].decode()
        details: dict[str, Any] = {"dn": dn, "disabled": disabled}
        for name in resolved.report:
            values = [v.decode("utf-8", "replace") for v in attrs.get(name, [])]
            details[name] = values[0] if len(values) == 1 else values or None
        if note:
            details["last_login"] = note
        item = ScannedItem(
            key=key,
            subject=subject,
            clock=clock,
            fingerprint=fingerprint,
            details=details,
            problem=problem,
            refused="protected" if refusal else None,
            reason=refusal,
            disabled=disabled,
        )
        return _Account(key, dn, item, control)

    def _last_logons(self, keys: Sequence[str], resolved: _Location) -> dict[str, list[datetime]]:
        """Given account keys, return each one's lastLogon on every other listed server.
        Raise SystemUnreachable if one does not answer: without it the last logon is unknown."""
        found: dict[str, list[datetime]] = {}
        if not resolved.clock.every_dc or not keys:
            return found
        guids = [uuid.UUID(k) for k in keys]
        for _, conn in self._other_servers():
            for chunk in _chunks(guids, _GUIDS_PER_FILTER):
                for entry in self._search(
                    conn,
                    self._context_of(resolved.base_rdns),
                    _guid_filter(chunk, "ad"),
                    "subtree",
                    [self._key_attribute, "lastLogon"],
                    "reading lastLogon",
                ):
                    attrs = entry["raw_attributes"]
                    key, raw = self._key(attrs), attrs.get("lastLogon")
                    moment = ad_time(int(raw[0])) if raw else None
                    if key is not None and moment is not None:
                        found.setdefault(key, []).append(moment)
        return found

    # -- scan and lookup ------------------------------------------------------------------

    def scan(self, request: ScanRequest) -> Iterator[ScanOutput]:
        """Stream the location's accounts page by page; those whose clock is after the
        cutoff are counted in one NotDueSummary. An insecure connection is reported as a
        finding first."""
        resolved = self._location(request.location, request.clock)
        if (insecure := self.system.connection.insecure) is not None:
            yield ScanFinding("insecure_connection", self._url or "", insecure)
        conn = self._connect()
        protected = self._protected(conn, resolved.base, resolved.scope, resolved.filter)
        later, earliest = 0, None
        page: list[dict[str, Any]] = []
        entries = self._search(
            conn,
            resolved.base,
            resolved.filter,
            resolved.scope,
            resolved.attributes,
            f"searching {resolved.base!r}",
        )
        for entry in _then_none(entries):
            if entry is not None:
                page.append(entry)
                if len(page) < self.system.connection.page_size:
                    continue
            keys = [k for k in (self._key(e["raw_attributes"]) for e in page) if k]
            elsewhere = self._last_logons(keys, resolved)
            for raw in page:
                account = self._item(raw, resolved, request.tz, protected, elsewhere)
                if account is None:
                    continue
                item = account.item
                if (
                    request.cutoff is not None
                    and item.clock is not None
                    and item.clock > request.cutoff
                ):
                    later += 1
                    earliest = item.clock if earliest is None else min(earliest, item.clock)
                    continue
                yield item
            page = []
        if later:
            yield NotDueSummary(later, earliest)

    def lookup(
        self, location: LocationModel, clock: Clock, tz: tzinfo, keys: Sequence[str]
    ) -> dict[str, ScannedItem]:
        """Given account keys (GUIDs), return the accounts that still exist, read as ``scan``
        reads them, wherever they are now: one moved out of the base is protected. Accounts
        that no longer match the location's filter are absent."""
        return {a.key: a.item for a in self._accounts(location, clock, tz, keys)}

    def _accounts(
        self, location: LocationModel, clock: Clock | None, tz: tzinfo, keys: Sequence[str]
    ) -> list[_Account]:
        resolved = self._location(location, clock)
        conn = self._connect()
        guids = []
        for key in dict.fromkeys(keys):
            try:
                guids.append(uuid.UUID(key))
            except ValueError as err:
                raise LocationInvalid(self.system.id, f"item key {key!r} is not a GUID") from err
        root = self._context_of(resolved.base_rdns)
        accounts = []
        for chunk in _chunks(guids, _GUIDS_PER_FILTER):
            wanted = f"(&{_guid_filter(chunk, self.system.connection.flavour)}{resolved.filter})"
            protected = self._protected(conn, root, "subtree", wanted)
            entries = list(
                self._search(conn, root, wanted, "subtree", resolved.attributes, "reading accounts")
            )
            keys_found = [k for k in (self._key(e["raw_attributes"]) for e in entries) if k]
            elsewhere = self._last_logons(keys_found, resolved)
            for entry in entries:
                account = self._item(entry, resolved, tz, protected, elsewhere)
                if account is not None:
                    accounts.append(account)
        return accounts

    # -- acting ---------------------------------------------------------------------------

    def act(self, request: ActRequest) -> Iterator[Outcome]:
        """Disable, move, anonymise or delete accounts; one Outcome per distinct key.

        Each batch of accounts is read again by GUID first; a protected one ``failed`` (never
        touched), one that is gone ``gone``. Each account is then changed by one LDAP
        operation (anonymise with a rename: two). Outcomes of changed accounts carry their new
        fingerprint (``details["fingerprint"]``). Everything is checked before the first
        change: raise ActionUnsupported on a read-only connector or for an action that does
        not fit, LocationInvalid for a key that is not a GUID. Raise SystemUnreachable if the
        server stops answering; the accounts without an Outcome are then unchanged.
        """
        if self.context.read_only:
            raise ActionUnsupported(
                self.system.id, f"cannot {request.action}: the connector is read-only (dry run)"
            )
        location = self._dir_location(request.location)
        action = request.action
        if action not in ("disable", "move", "anonymise", "delete"):
            raise ActionUnsupported(
                self.system.id,
                f"a directory cannot {action!r} accounts: it can disable, move, anonymise or "
                "delete them",
            )
        if action == "move" and location.staging_ou is None:
            raise ActionUnsupported(self.system.id, "move needs the location's staging_ou")
        if action == "anonymise" and not location.anonymise:
            raise ActionUnsupported(self.system.id, "anonymise needs the location's attributes")
        if action == "disable" and not self._ad and not self.system.connection.disable:
            raise ActionUnsupported(self.system.id, "disable needs connection.disable (OpenLDAP)")
        for key in request.keys:
            try:
                uuid.UUID(key)
            except ValueError as err:
                raise LocationInvalid(self.system.id, f"item key {key!r} is not a GUID") from err
        return self._act(location, action, list(dict.fromkeys(request.keys)))

    def _act(self, location: DirectoryLocation, action: str, keys: list[str]) -> Iterator[Outcome]:
        for chunk in _chunks(keys, _GUIDS_PER_FILTER):
            accounts = {a.key: a for a in self._accounts(location, None, UTC, chunk)}
            for key in chunk:
                account = accounts.get(key)
                if account is None:
                    yield Outcome(key, "gone", "no such account (or it no longer matches)")
                elif account.item.refused is not None:
                    yield Outcome(key, "failed", f"protected: {account.item.reason}")
                else:
                    yield self._act_one(location, action, account)

    def _act_one(self, location: DirectoryLocation, action: str, account: _Account) -> Outcome:
        """Change one account; return its outcome, with its new fingerprint once changed."""
        from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

        conn = self._connect()
        dn, key = account.dn, account.key
        controls = self._post_read()
        facts: dict[str, Any]
        if action == "disable":
            if account.item.disabled:
                return self._done(account, dn, {"note": "already disabled"}, "already disabled")
            if self._ad:
                # Delete the old value, add the new one: Windows AD refuses the change if the
                # value changed since it was read (Samba applies it regardless).
                old = account.control or 0
                replace = [(MODIFY_DELETE, [str(old)]), (MODIFY_ADD, [str(old | _DISABLED)])]
                changes: dict[str, Any] = {"userAccountControl": replace}
            else:
                changes = {
                    name: [(MODIFY_REPLACE, [value])]
                    for name, value in (self.system.connection.disable or {}).items()
                }
            ok, result = self._write(
                lambda: conn.modify(dn, changes, controls=controls), "disabling an account"
            )
            new_dn, facts = dn, {"action": "disable"}
        elif action == "move":
            staging = location.staging_ou
            assert staging is not None
            first, _ = _split_dn(dn)
            new_dn, facts = f"{first},{staging}", {"action": "move"}
            if _normal_dn(dn)[1:] == _normal_dn(staging):
                return self._done(account, dn, {"note": "already moved"}, "already in staging OU")
            ok, result = self._write(
                lambda: conn.modify_dn(dn, first, new_superior=staging, controls=controls),
                "moving an account",
            )
        elif action == "anonymise":
            new_dn, facts = dn, {"attributes": sorted(location.anonymise)}
            rdn_type = _normal_dn(dn)[0][0]
            if rdn_type in {name.lower() for name in location.anonymise}:
                first, parent = _split_dn(dn)
                new_rdn = f"{first.split('=', 1)[0]}={key}"
                ok, result = self._write(
                    lambda: conn.modify_dn(dn, new_rdn, controls=controls),
                    "renaming an account to its GUID",
                )
                if not ok:
                    return self._not_done(key, result)
                new_dn = f"{new_rdn},{parent}" if parent else new_rdn
            changes = {
                name: [(MODIFY_REPLACE, [] if value is None else [value])]
                for name, value in location.anonymise.items()
                if name.lower() != rdn_type
            }
            ok, result = True, {}
            if changes:
                ok, result = self._write(
                    lambda: conn.modify(new_dn, changes, controls=controls),
                    "anonymising an account",
                )
        else:
            ok, result = self._write(lambda: conn.delete(dn), "deleting an account")
            return (
                Outcome(key, "done", None, {"action": "delete"})
                if ok
                else self._not_done(key, result)
            )
        if not ok:
            return self._not_done(key, result)
        return self._done(account, new_dn, facts, None, result)

    def _post_read(self) -> list[Any] | None:
        """The post-read control (RFC 4527) for the fingerprint, where the server offers it."""
        if _POST_READ not in self._controls:
            return None
        from ldap3.protocol.rfc4527 import post_read_control

        return [post_read_control([self._fingerprint_attribute])]

    def _done(
        self,
        account: _Account,
        dn: str,
        facts: dict[str, Any],
        message: str | None,
        result: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """The outcome of a changed (or already changed) account, with its fingerprint now:
        from the write's post-read control, else read again (one more request)."""
        fingerprint = account.item.fingerprint if result is None else None
        control = ((result or {}).get("controls") or {}).get(_POST_READ)
        if control is not None:
            values = control["value"]["result"].get(self._fingerprint_attribute) or [b""]
            value = values[0]
            fingerprint = value.decode() if isinstance(value, bytes) else str(value)
        if fingerprint is None:
            entry = self._search_one(
                self._connect(),
                dn,
                "(objectClass=*)",
                "BASE",
                [self._fingerprint_attribute],
                "reading the changed account",
            )
            raw = (entry or {}).get("raw_attributes", {}).get(self._fingerprint_attribute)
            fingerprint = raw[0].decode() if raw else ""
        return Outcome(account.key, "done", message, {**facts, "fingerprint": fingerprint})

    def _not_done(self, key: str, result: Mapping[str, Any]) -> Outcome:
        if result.get("result") == 32:
            return Outcome(key, "gone", "no such account")
        return Outcome(key, "failed", self._result_text(result))

    @staticmethod
    def _result_text(result: Mapping[str, Any]) -> str:
        description = str(result.get("description"))
        message = str(result.get("message") or "")
        if description == "notAllowedOnNonLeaf":
            return "the account has child objects (devices, say): remove them first"
        if description == "entryAlreadyExists":
            return "an account with that name already exists in the staging OU"
        return description + (f": {message}" if message else "")

    # -- discovery (see connectors._directorydiscovery) ---------------------------------

    def discover(self, request: DiscoverRequest) -> Iterator[DiscoveredStore | ScanFinding]:
        """Stream the OUs down to ``request.depth`` below the base with their accounts, stale
        and disabled accounts and age, and an ``uninspectable`` finding for each OU whose
        contents the bind account may not see. Raise LocationInvalid if the base is missing."""
        from connectors import _directorydiscovery

        return _directorydiscovery.discover(self, request)

    def sample(self, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
        """Read the text attributes of up to ``request.rows`` accounts of a discovered OU
        (bookkeeping attributes left out, secrets never requested)."""
        from connectors import _directorydiscovery

        return _directorydiscovery.sample(self, request)

    def scope(self, request: DiscoverRequest) -> tuple[str, ...]:
        """Return the place discovery reaches: the base DN in this directory."""
        from connectors import _directorydiscovery

        return _directorydiscovery.scope(self, request)

    def locate(self, store: DiscoveredStore) -> tuple[str, ...]:
        """Return an OU's place: ``("directory", naming context GUID, *RDNs top down)``."""
        from connectors import _directorydiscovery

        return _directorydiscovery.locate(self, store)

    def coverage(self, location: Any, place: tuple[str, ...], store: DiscoveredStore) -> str:
        """Return whether the location's base DN and scope reach the OU at ``place``, fully
        or (conditions, a filter, an object class of its own) partly."""
        from connectors import _directorydiscovery

        return _directorydiscovery.coverage(self, location, place, store)


def _names(definition: str) -> list[str]:
    """Given an RFC 4512 attribute type or object class description, return its NAMEs."""
    match = re.search(r"NAME\s+(\(\s*(?:'[^']*'\s*)+\)|'[^']*')", definition)
    return re.findall(r"'([^']*)'", match.group(1)) if match else []


def _split_dn(dn: str) -> tuple[str, str]:
    """Given a DN, return its first RDN and its parent's DN, as written (escapes kept)."""
    from ldap3.utils.dn import to_dn

    parts = [str(p) for p in to_dn(dn)]
    return parts[0], ",".join(parts[1:])


def _as_timedelta(period: Period) -> timedelta:
    """Given a margin period of days or weeks (or hours), return it as a timedelta."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return period.add_to(start) - start


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _then_none(items: Iterable[Any]) -> Iterator[Any]:
    """Yield the items, then None (so a caller can flush its last page)."""
    yield from items
    yield None
