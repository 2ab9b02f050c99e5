"""The RoPA (GDPR Art. 30 record of processing activities) as typed models.

Every model forbids unknown fields, so a typo in a field name is an error rather than a
silently ignored setting. Secrets never live here: a system names a credential and the
settings supply it (see ``sweeper.settings``).
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from sweeper.retention import Period

__all__ = [
    "Action",
    "Activity",
    "Art6Basis",
    "Art9Basis",
    "AttributeClock",
    "BucketConnection",
    "BucketLocation",
    "BucketQuarantine",
    "BucketSystem",
    "Clock",
    "ColumnClock",
    "Condition",
    "Contact",
    "Controller",
    "Dependent",
    "DirectoryCondition",
    "DirectoryConnection",
    "DirectoryLocation",
    "DirectorySystem",
    "Discovery",
    "DiscoveryPattern",
    "DiscoveryTarget",
    "EventClock",
    "FileLocation",
    "FileShareConnection",
    "FileShareSystem",
    "Location",
    "MetadataClock",
    "PathDateClock",
    "ProtectFilter",
    "RetentionRule",
    "Ropa",
    "SourceKind",
    "SqlConnection",
    "SqlEvent",
    "SqlLocation",
    "SqlSystem",
    "System",
    "SystemKind",
    "SystemStatus",
    "TagClock",
    "Transfer",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SQL_NAME_PATTERN = r"^[^\x00-\x1f\"`\[\]]{1,128}$"

Identifier = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(
        description="A short id: letters, digits, '_', '.', '-'; at most 64 characters",
        examples=["sis", "pupil-administration"],
    ),
]
SqlName = Annotated[
    str,
    StringConstraints(pattern=SQL_NAME_PATTERN),
    Field(description="A table or column name as the database spells it (no quotes)"),
]
Scalar = str | int | float | bool | date
_HASHING = re.compile(r"^\s*(hash|sha\d*|md5|blake2\w*|hmac|crc32|digest)\b", re.IGNORECASE)


class _OneOrMany:
    """JSON Schema of a list field that also takes a single item (``key: id``), as the
    field's ``mode="before"`` validator does; without it the schema refuses ``key: id``."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        many = handler(schema)
        return {"anyOf": [many.get("items", {}), many]}


class Contact(_Strict):
    """A person or office and how to reach them."""

    name: str = Field(description="Name of the person, office or organisation")
    email: str | None = Field(default=None, examples=["privacy@school.example"])
    phone: str | None = None
    address: str | None = None


class Controller(_Strict):
    """Art. 30(1)(a): the controller, any joint controllers, the representative and the DPO."""

    name: str = Field(examples=["Stichting Openbaar Onderwijs Voorbeeld"])
    contact: Contact
    dpo: Contact | None = Field(default=None, description="Data protection officer (FG)")
    representative: Contact | None = None
    joint_controllers: list[Contact] = Field(default_factory=list)


class SystemKind(StrEnum):
    SQL = "sql"
    FILESHARE = "fileshare"
    BUCKET = "bucket"
    DIRECTORY = "directory"


class SystemStatus(StrEnum):
    ACTIVE = "active"
    LEGACY = "legacy"
    DECOMMISSIONED = "decommissioned"


class SqlConnection(_Strict):
    """How to reach a SQL database. The password comes from the named credential."""

    url: str = Field(
        description=(
            "SQLAlchemy URL without a password, e.g. postgresql+psycopg://sweeper@db/sis, "
            "mysql+pymysql://sweeper@db/sis, mssql+pyodbc://sweeper@DSN, sqlite:///sis.db "
            "(a relative SQLite path is relative to the RoPA file)"
        ),
        examples=["postgresql+psycopg://sweeper@sis-db.school.local/sis"],
    )
    credential: Identifier | None = Field(
        default=None, description="Name of the credential that holds the password"
    )
    connect_args: dict[str, str | int | bool] = Field(
        default_factory=dict, description="Extra driver arguments (no secrets)"
    )

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, url: str) -> str:
        # Split user and password as SQLAlchemy's make_url does: the password runs to the
        # last '@' and may hold '/', so 'u:pa/ss@host' has a password too.
        if re.match(r"^[\w+]+://[^:/]*:[^@]*@", url) or re.search(
            r"[?&](password|passwd|pwd)=", url, re.IGNORECASE
        ):
            raise ValueError(
                "the URL contains a password: remove it and name a credential instead "
                "(connection.credential), which the settings supply"
            )
        if not re.match(r"^[a-z][a-z0-9]*(\+[a-z0-9_]+)?://", url, re.IGNORECASE):
            # The URL is not echoed: a malformed one may still hold a password.
            raise ValueError(
                "not a SQLAlchemy URL: write DIALECT[+DRIVER]://USER@HOST/DATABASE, "
                "e.g. postgresql+psycopg://sweeper@db/sis or sqlite:///sis.db"
            )
        return url

    @field_validator("connect_args")
    @classmethod
    def _no_secret_in_connect_args(
        cls, args: dict[str, str | int | bool]
    ) -> dict[str, str | int | bool]:
        for name in args:
            if re.fullmatch(r"(ssl)?(password|passwd|pwd)|secret|token|api_?key", name.lower()):
                raise ValueError(
                    f"connect_args.{name} holds a secret: remove it and name a credential "
                    "instead (connection.credential), which the settings supply"
                )
        return args


class FileShareConnection(_Strict):
    """A local or mounted share (a CIFS or NFS mount is how Linux hosts see a file server)."""

    root: str = Field(
        description="Absolute path of the share's root, or relative to the RoPA file",
        examples=["/mnt/fileserver/leerlingen"],
    )
    quarantine_root: str | None = Field(
        default=None,
        description="Where the quarantine action moves files (keeping their relative path), "
        "outside the root; absolute or relative to the RoPA file",
        examples=["/mnt/fileserver/.quarantine/leerlingen"],
    )


AD_PRIVILEGED_GROUPS = ("Domain Admins", "Enterprise Admins", "Administrators")
LDAP_ATTRIBUTE_PATTERN = r"^(?:[A-Za-z][A-Za-z0-9-]{0,127}|[0-9]+(?:\.[0-9]+)+)$"

LdapAttribute = Annotated[
    str,
    StringConstraints(pattern=LDAP_ATTRIBUTE_PATTERN),
    Field(
        description="An LDAP attribute name as the schema spells it (or its numeric OID)",
        examples=["employeeID", "employeeNumber"],
    ),
]


def _check_dn(dn: str, what: str) -> str:
    """Given a distinguished name, return it; raise ValueError naming ``what`` if it does not
    parse (RFC 4514). ldap3 is imported only when a directory system is validated."""
    from ldap3.core.exceptions import LDAPInvalidDnError
    from ldap3.utils.dn import parse_dn

    if not dn.strip() or "\x00" in dn:
        raise ValueError(f"{what} {dn!r} is not a distinguished name such as OU=Pupils,DC=school")
    try:
        parse_dn(dn, escape=False, strip=True)
    except (LDAPInvalidDnError, ValueError, IndexError) as err:
        raise ValueError(
            f"{what} {dn!r} is not a distinguished name (RFC 4514: ATTR=VALUE,ATTR=VALUE, "
            f"e.g. OU=Pupils,DC=school,DC=local): {err}"
        ) from None
    return dn


def check_ldap_filter(text: str) -> str:
    """Given a raw LDAP filter (RFC 4515), return it; raise ValueError saying why it does not
    parse. A filter must be one parenthesised expression without NUL bytes."""
    from ldap3.core.exceptions import LDAPInvalidFilterError
    from ldap3.operation.search import parse_filter

    if "\x00" in text:
        raise ValueError("the filter holds a NUL byte: escape bytes of binary values as \\00")
    try:
        parse_filter(text, None, False, False, None, False)
    except LDAPInvalidFilterError as err:
        raise ValueError(
            f"filter {text!r} does not parse ({err}): write one parenthesised expression "
            "such as (&(objectClass=user)(department=Leerlingen)); escape * ( ) \\ as "
            "\\2a \\28 \\29 \\5c"
        ) from None
    return text


class ProtectFilter(_Strict):
    """Accounts that are never touched, whatever a rule says (break-glass, service accounts)."""

    filter: str = Field(
        description="An LDAP filter (RFC 4515) matching the accounts to protect",
        examples=["(sAMAccountName=breakglass*)", "(description=service account*)"],
    )
    reason: str | None = Field(
        default=None, description="Why they are protected, shown in plans", examples=["break-glass"]
    )

    @field_validator("filter")
    @classmethod
    def _parses(cls, text: str) -> str:
        return check_ldap_filter(text)


class DirectoryConnection(_Strict):
    """How to reach a directory (Active Directory or OpenLDAP). The password comes from the
    named credential; plain LDAP or unverified TLS only when explicitly configured."""

    servers: Annotated[list[str], _OneOrMany] = Field(
        min_length=1,
        description="ldaps:// or ldap:// URLs of the domain controllers or servers, tried in "
        "order (failover); every one is read for lastLogon when a location asks for it",
        examples=[["ldaps://dc1.school.local", "ldaps://dc2.school.local"]],
    )
    tls: Literal["ldaps", "starttls", "none"] | None = Field(
        default=None,
        description="ldaps (TLS from the start), starttls (upgrade an ldap:// connection) or "
        "none (plain LDAP: password and data cross the network readable; warned on every run). "
        "Default: ldaps for ldaps:// URLs, starttls for ldap:// URLs",
    )
    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA(s) that sign the servers' certificates (absolute or "
        "relative to the RoPA file); default: the system's CA store",
    )
    verify_tls: bool = Field(
        default=True,
        description="Verify the servers' certificates and names; false is warned on every run",
    )
    tls_server_name: str | None = Field(
        default=None,
        description="The name the certificates carry, when the servers are listed by address "
        "(the certificate is still verified against the CA)",
        examples=["dc1.school.local"],
    )
    bind_dn: str = Field(
        description="The DN the sweeper binds as (a service account with delegated rights)",
        examples=["CN=svc-sweeper,OU=Service,DC=school,DC=local"],
    )
    credential: Identifier = Field(description="Name of the credential that holds the password")
    flavour: Literal["ad", "openldap"] = Field(
        default="ad", description="ad (Active Directory, Samba AD) or openldap"
    )
    privileged_groups: list[str] = Field(
        default_factory=lambda: list(AD_PRIVILEGED_GROUPS),
        description="Groups (name or DN) whose members, nested ones included, are never "
        "touched. A configured group that does not exist is an error",
    )
    protect: list[ProtectFilter] = Field(
        default_factory=list,
        description="Filters of accounts that are never touched (break-glass, service accounts)",
    )
    protect_admin_count: bool = Field(
        default=True,
        description="AD: also protect accounts with adminCount=1 (current or former members "
        "of protected groups, as AdminSDHolder marks them)",
    )
    disable: dict[LdapAttribute, str] | None = Field(
        default=None,
        description="OpenLDAP: the attribute values that disable an account (set by the "
        "disable action; an account holding all of them counts as disabled). AD always "
        "sets bit 2 of userAccountControl",
        examples=[{"pwdAccountLockedTime": "000001010000Z"}, {"loginShell": "/usr/sbin/nologin"}],
    )
    page_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Entries per page of a paged search (AD serves at most MaxPageSize, 1000)",
    )
    timeout: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Seconds to wait for a server to connect or answer before it counts as down",
    )

    @field_validator("servers", "privileged_groups", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("protect", mode="before")
    @classmethod
    def _filters_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"filter": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("servers")
    @classmethod
    def _ldap_urls(cls, servers: list[str]) -> list[str]:
        for url in servers:
            if not re.fullmatch(r"ldaps?://[A-Za-z0-9.\-]+(?::\d{1,5})?/?", url, re.IGNORECASE):
                if "@" in url:  # not echoed: it may hold a password
                    raise ValueError(
                        "a server URL holds a user or password: write ldaps://HOST[:PORT] and "
                        "name the account in bind_dn, its password in credential"
                    )
                raise ValueError(
                    f"{url!r} is not a server URL: write ldaps://HOST[:PORT] or ldap://HOST[:PORT] "
                    "(no DN, filter or user in it)"
                )
        return servers

    @field_validator("bind_dn")
    @classmethod
    def _bind_dn(cls, dn: str) -> str:
        return _check_dn(dn, "bind_dn")

    @model_validator(mode="after")
    def _tls_fits(self) -> DirectoryConnection:
        schemes = {url.split("://", 1)[0].lower() for url in self.servers}
        if self.tls == "ldaps" and "ldap" in schemes:
            raise ValueError("tls is ldaps but a server URL is ldap://: write ldaps:// URLs")
        if self.tls in ("starttls", "none") and "ldaps" in schemes:
            raise ValueError(
                f"tls is {self.tls} but a server URL is ldaps://: write ldap:// URLs, or drop tls"
            )
        if self.tls is None and len(schemes) > 1:
            raise ValueError("the servers mix ldap:// and ldaps://: use one scheme for all")
        if self.flavour == "ad" and self.disable is not None:
            raise ValueError(
                "disable is for OpenLDAP: Active Directory accounts are disabled through "
                "bit 2 of userAccountControl"
            )
        return self

    @property
    def tls_mode(self) -> str:
        """ldaps, starttls or none: the configured mode, else the one the URLs imply."""
        if self.tls is not None:
            return self.tls
        return "ldaps" if self.servers[0].lower().startswith("ldaps://") else "starttls"

    @property
    def insecure(self) -> str | None:
        """Why the connection is not protected (warned on every run), or None."""
        if self.tls_mode == "none":
            return (
                "plain LDAP (tls: none): the password and personal data cross the network readable"
            )
        if not self.verify_tls:
            return (
                "TLS without certificate verification (verify_tls: false): anyone on the path "
                "can pose as the server and read the password"
            )
        return None


class _SystemBase(_Strict):
    id: Identifier
    name: str
    owner: str | None = Field(default=None, description="Who is responsible for the system")
    description: str | None = None
    status: SystemStatus = SystemStatus.ACTIVE
    decommissioned_on: date | None = Field(
        default=None,
        description="For a decommissioned system: the date it was switched off (required)",
    )
    legacy_grace: Period | None = Field(
        default=None,
        description="Grace after decommissioning before remaining data counts as legacy_due",
    )
    timezone: str | None = Field(
        default=None,
        description="Timezone of dates stored without one; default: the RoPA's timezone",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str | None) -> str | None:
        return _check_timezone(tz) if tz is not None else None

    @model_validator(mode="after")
    def _decommission_date(self) -> _SystemBase:
        if self.status is SystemStatus.DECOMMISSIONED and self.decommissioned_on is None:
            raise ValueError(
                "a decommissioned system needs decommissioned_on: the date it was switched off"
            )
        if self.status is SystemStatus.ACTIVE and self.decommissioned_on is not None:
            raise ValueError(
                "decommissioned_on is set but status is active: set status to decommissioned"
            )
        return self


class SqlSystem(_SystemBase):
    kind: Literal["sql"]
    connection: SqlConnection


class FileShareSystem(_SystemBase):
    kind: Literal["fileshare"]
    connection: FileShareConnection


BUCKET_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
BucketName = Annotated[
    str,
    StringConstraints(pattern=BUCKET_NAME_PATTERN),
    Field(
        description="An S3 bucket name: 3 to 63 lower-case letters, digits, '.' and '-'",
        examples=["exam-recordings"],
    ),
]


class BucketQuarantine(_Strict):
    """Where the quarantine action copies objects before deleting them."""

    bucket: BucketName = Field(description="The quarantine bucket (may be the same bucket)")
    prefix: str = Field(
        default="",
        description="Prefix put before each object's key in the quarantine bucket; must not "
        "overlap a location's prefix when the quarantine is the same bucket",
        examples=["quarantine/"],
    )


class BucketConnection(_Strict):
    """How to reach AWS S3 or an S3-compatible store. Keys never live here: name a credential
    (a file with ``aws_access_key_id = …`` and ``aws_secret_access_key = …`` lines), or a
    profile of the AWS config files; with neither, the default chain of the AWS SDK is used
    (environment, config files, the instance's or container's role)."""

    endpoint_url: str | None = Field(
        default=None,
        description="The S3 API's URL for an S3-compatible store (https://s3.school.example); "
        "absent: AWS",
        examples=["https://objects.school.example"],
    )
    region: str | None = Field(
        default=None,
        description="Region (AWS: where the buckets are; S3-compatible stores often take any)",
        examples=["eu-central-1"],
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto",
        description="path (https://host/bucket/key, what most S3-compatible stores need), "
        "virtual (https://bucket.host/key) or auto",
    )
    credential: Identifier | None = Field(
        default=None,
        description="Name of the credential holding the access key id and secret: lines "
        "aws_access_key_id = … and aws_secret_access_key = … (and aws_session_token = …)",
    )
    profile: str | None = Field(
        default=None, description="A named profile of the AWS config and credentials files"
    )
    ca_bundle: str | None = Field(
        default=None,
        description="CA certificates (PEM file) to verify the endpoint's TLS certificate with, "
        "for a store with a private CA; absolute or relative to the RoPA file",
    )
    quarantine: BucketQuarantine | None = Field(
        default=None, description="Where the quarantine action keeps objects"
    )
    bypass_governance: bool = Field(
        default=False,
        description="Delete object versions under Object Lock GOVERNANCE retention (needs "
        "s3:BypassGovernanceRetention); every bypass is audited per object. COMPLIANCE "
        "retention and legal holds are never bypassed",
    )

    @field_validator("endpoint_url")
    @classmethod
    def _plain_endpoint(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not re.match(r"^https?://[^/?#]+(/[^?#]*)?$", url, re.IGNORECASE):
            raise ValueError("not an endpoint URL: write https://HOST[:PORT] (no query string)")
        if "@" in url.split("/", 3)[2]:
            # The URL is not echoed: it may hold a key.
            raise ValueError(
                "the endpoint URL contains a user or key: remove it and name a credential "
                "instead (connection.credential), which the settings supply"
            )
        return url

    @model_validator(mode="after")
    def _one_source_of_keys(self) -> BucketConnection:
        if self.credential is not None and self.profile is not None:
            raise ValueError("give connection.credential or connection.profile, not both")
        return self


class BucketSystem(_SystemBase):
    kind: Literal["bucket"]
    connection: BucketConnection


class DirectorySystem(_SystemBase):
    kind: Literal["directory"]
    connection: DirectoryConnection


System = Annotated[
    SqlSystem | FileShareSystem | BucketSystem | DirectorySystem, Field(discriminator="kind")
]


class Condition(_Strict):
    """One structured filter condition: column, operator, value. Never raw SQL."""

    column: SqlName
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"] = "="
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        _check_value(self.op, self.value, ("is null", "is not null"), "use 'is null' to match NULL")
        return self


def _check_value(op: str, value: Any, valueless: tuple[str, ...], missing: str) -> None:
    """Raise ValueError if a condition's value does not fit its operator."""
    if op in valueless:
        if value is not None:
            raise ValueError(f"operator {op!r} takes no value")
    elif op in ("in", "not in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"operator {op!r} needs a non-empty list as value")
    elif value is None or isinstance(value, list):
        raise ValueError(f"operator {op!r} needs a single value ({missing})")


class SqlEvent(_Strict):
    """A dated fact per subject read from a SQL system.

    The event's date for a subject is the latest ``date`` among the subject's rows, and it
    has happened only when none of those rows is still open: a NULL date or a date after now
    (a student with a newer open enrolment has not left).
    """

    id: Identifier
    description: str | None = None
    system: Identifier
    table: SqlName = Field(description="Table, schema-qualified where needed (dbo.enrolments)")
    subject: SqlName = Field(description="Column holding the subject (e.g. student number)")
    date: SqlName = Field(description="Column holding the event's date (e.g. enrolment end)")
    where: list[Condition] = Field(default_factory=list)
    null_means_open: bool = Field(
        default=True, description="A row whose date is NULL is still open: no event yet"
    )


class ColumnClock(_Strict):
    """The clock starts at a date or timestamp column of the row (SQL)."""

    column: SqlName


class EventClock(_Strict):
    """The clock starts at an event of the item's subject (e.g. student left school)."""

    event: Identifier


class PathDateClock(_Strict):
    """The clock starts at a date read from the file's path by a named regex group."""

    path_date: str = Field(description="Name of the regex group in path_regex holding the date")
    format: str = Field(
        default="%Y-%m-%d", description="strptime format of the date, e.g. %Y%m%d or %Y"
    )


class TagClock(_Strict):
    """The clock starts at a date in an object tag (S3)."""

    tag: str = Field(description="The tag's key", examples=["recorded-on"])
    format: str = Field(
        default="%Y-%m-%d", description="strptime format of the date, e.g. %Y%m%d or %Y"
    )


class MetadataClock(_Strict):
    """The clock starts at a date in the object's user metadata (S3 ``x-amz-meta-NAME``)."""

    metadata: str = Field(
        description="The metadata name, without x-amz-meta-", examples=["exam-date"]
    )
    format: str = Field(
        default="%Y-%m-%d", description="strptime format of the date, e.g. %Y%m%d or %Y"
    )


class AttributeClock(_Strict):
    """The clock starts at a date attribute of the account (directory): generalized time or
    an AD large integer (pwdLastSet, accountExpires, an end-of-employment attribute)."""

    attribute: LdapAttribute


ClockName = Literal["created", "modified", "accessed", "mtime", "ctime", "atime", "last_login"]


def _clock_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        return next(
            (
                k
                for k in ("column", "event", "path_date", "tag", "metadata", "attribute")
                if k in value
            ),
            None,
        )
    if isinstance(value, ColumnClock):
        return "column"
    if isinstance(value, EventClock):
        return "event"
    if isinstance(value, PathDateClock):
        return "path_date"
    if isinstance(value, TagClock):
        return "tag"
    if isinstance(value, MetadataClock):
        return "metadata"
    if isinstance(value, AttributeClock):
        return "attribute"
    return None


Clock = Annotated[
    Annotated[ClockName, Tag("name")]
    | Annotated[ColumnClock, Tag("column")]
    | Annotated[EventClock, Tag("event")]
    | Annotated[PathDateClock, Tag("path_date")]
    | Annotated[TagClock, Tag("tag")]
    | Annotated[MetadataClock, Tag("metadata")]
    | Annotated[AttributeClock, Tag("attribute")],
    Discriminator(
        _clock_kind,
        custom_error_type="clock_kind",
        custom_error_message=(
            "a clock is created, modified, accessed, mtime, ctime, atime, last_login, "
            "{column: NAME}, {event: ID}, {path_date: GROUP}, {tag: KEY}, {metadata: NAME} "
            "or {attribute: NAME}"
        ),
    ),
]


class Action(StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
    QUARANTINE = "quarantine"
    REVIEW = "review"
    DISABLE = "disable"
    MOVE = "move"


class SourceKind(StrEnum):
    """What kind of source a retention period comes from: how binding it is."""

    STATUTE = "statute"  # a law or decree (wet, besluit, regeling): binding
    GUIDELINE = "guideline"  # sector or supervisory guidance (PO-Raad, AP, Inspectie)
    ARCHIVAL_LIST = "archival_list"  # an archival selection list (selectielijst, Archiefwet)
    CODE_OF_CONDUCT = "code_of_conduct"  # a code endorsed by the sector (NVP Sollicitatiecode)
    POLICY = "policy"  # the institution's own policy


class Limits(_Strict):
    """Blast-radius limits: a breach blocks the location; nothing there is acted on."""

    max_items: int | None = Field(default=None, ge=0, description="Most items acted on per run")
    max_fraction: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Most items acted on, as a fraction of the items the scan found",
    )
    min_population: int | None = Field(
        default=None,
        ge=0,
        description="Fewest items the scan must have found before anything is acted on "
        "(an empty scan after a broken filter must not look like 'delete all')",
    )


class RetentionRule(_Strict):
    """Art. 30(1)(f): how long the data is kept, from when, and what happens after."""

    period: Period = Field(description="ISO 8601 duration, e.g. P2Y, P6M, P4W")
    clock: Clock = Field(
        description=(
            "When the period starts: created, modified, accessed, {column: NAME}, "
            "{event: ID}, {path_date: GROUP}, {tag: KEY} or {metadata: NAME}; a location "
            "may override it"
        )
    )
    action: Action = Field(description="What to do with an item once it is due")
    grace: Period | None = Field(default=None, description="Extra time after the period")
    auto_approve: bool = Field(
        default=False,
        description="Routine, low-risk data that may be executed without a human approval",
    )
    source: str | None = Field(
        default=None,
        description="Where the period comes from: statute and article, guideline, policy",
    )
    source_kind: SourceKind | None = Field(
        default=None,
        description="What the source is: statute, guideline, archival_list, code_of_conduct "
        "or policy (a guideline or policy is not law; say so)",
    )
    note: str | None = Field(
        default=None,
        description="Where sources differ, a period is a minimum, or the choice needs "
        "explaining: say it here",
    )
    quarantine_for: Period = Field(
        default_factory=lambda: Period(days=30),
        description="How long a quarantined item can be restored before it is purged",
    )
    limits: Limits | None = Field(
        default=None, description="Blast-radius limits for this rule (the settings add more)"
    )


class Dependent(_Strict):
    """A child table whose rows belong to the parent item (deleted with it)."""

    table: SqlName
    columns: list[SqlName] = Field(
        min_length=1, description="Foreign-key columns in the child table"
    )
    references: list[SqlName] | None = Field(
        default=None, description="Parent columns they refer to; default: the parent's key"
    )
    dependents: list[Dependent] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_arity(self) -> Dependent:
        if self.references is not None and len(self.references) != len(self.columns):
            raise ValueError("columns and references must have the same number of entries")
        return self


class SqlLocation(_Strict):
    """A table whose rows (with their dependent rows) are the items."""

    kind: ClassVar[str] = "sql"
    system: Identifier
    table: SqlName = Field(examples=["dbo.students", "students"])
    key: Annotated[list[SqlName], _OneOrMany] = Field(
        min_length=1, description="Primary-key column(s)"
    )
    subject: SqlName | None = Field(default=None, description="Column holding the subject")
    clock: Clock | None = Field(default=None, description="Overrides the rule's clock")
    where: list[Condition] = Field(default_factory=list)
    dependents: list[Dependent] = Field(default_factory=list)
    fingerprint: Annotated[list[SqlName], _OneOrMany] = Field(
        default_factory=list,
        description="Extra columns whose change means the item changed (e.g. updated_at)",
    )
    anonymise: dict[SqlName, Any] = Field(
        default_factory=dict,
        description="For the anonymise action: column -> NULL (null) or a fixed value. "
        "Hashing is refused: a hash of an identifier is pseudonymous, still personal data",
        examples=[{"name": None, "birth_date": None, "city": "(removed)"}],
    )

    @property
    def label(self) -> str:
        """How plans, holds and the audit log name this location: ``system:table``."""
        return f"{self.system}:{self.table}"

    @field_validator("key", "fingerprint", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("anonymise")
    @classmethod
    def _no_hashing(cls, columns: dict[str, Any]) -> dict[str, Any]:
        for column, value in columns.items():
            if isinstance(value, (dict, list)) or (
                isinstance(value, str) and _HASHING.match(value)
            ):
                raise ValueError(
                    f"column {column!r}: hashing (or any function of the old value) is not "
                    "anonymisation: a hash of an identifier can be linked back to the person, "
                    "so it is pseudonymous data, still personal data (GDPR recital 26). "
                    "Use null or a fixed value"
                )
        return columns


class FileLocation(_Strict):
    """Files under a share's root, chosen by glob patterns."""

    kind: ClassVar[str] = "fileshare"
    system: Identifier
    include: Annotated[list[str], _OneOrMany] = Field(
        default_factory=lambda: ["**"], description="Glob patterns relative to the root"
    )
    exclude: Annotated[list[str], _OneOrMany] = Field(default_factory=list)
    path_regex: str | None = Field(
        default=None,
        description="Regex searched in the relative path; named groups give subject and date",
        examples=[r"^homes/(?P<subject>\d{6})/"],
    )
    subject_group: str = Field(default="subject", description="Regex group with the subject")
    clock: Clock | None = Field(default=None, description="Overrides the rule's clock")

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("include", "exclude")
    @classmethod
    def _relative_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if pattern.startswith("/") or ".." in pattern.split("/"):
                raise ValueError(
                    f"pattern {pattern!r} must be relative to the share root, without '..'"
                )
        return patterns

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        return _compiles("path_regex", regex)

    @property
    def label(self) -> str:
        """How plans, holds and the audit log name this location: ``system:patterns``."""
        return f"{self.system}:{','.join(self.include)}"

    @property
    def regex_groups(self) -> set[str]:
        return set(re.compile(self.path_regex).groupindex) if self.path_regex else set()


class BucketLocation(_Strict):
    """Objects in a bucket under a prefix; an item is one key with all its versions."""

    kind: ClassVar[str] = "bucket"
    system: Identifier
    bucket: BucketName
    prefix: str = Field(
        default="", description="Only keys that start with it", examples=["recordings/"]
    )
    key_regex: str | None = Field(
        default=None,
        description="Regex searched in the key (the whole key, prefix included): only keys "
        "it matches are items; named groups give the subject and a date",
        examples=[r"^recordings/(?P<date>\d{4}-\d{2}-\d{2})/(?P<subject>\d{6})/"],
    )
    subject_group: str = Field(default="subject", description="Regex group with the subject")
    clock: Clock | None = Field(default=None, description="Overrides the rule's clock")

    @field_validator("key_regex")
    @classmethod
    def _compiles(cls, regex: str | None) -> str | None:
        return _compiles("key_regex", regex)

    @property
    def label(self) -> str:
        """How plans, holds and the audit log name this location: ``system:bucket/prefix``."""
        return f"{self.system}:{self.bucket}/{self.prefix}"

    @property
    def regex_groups(self) -> set[str]:
        return set(re.compile(self.key_regex).groupindex) if self.key_regex else set()


def _compiles(name: str, regex: str | None) -> str | None:
    """Given a regex field's name and value, return the value. Raise ValueError if it does
    not compile."""
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as err:
            raise ValueError(f"{name} does not compile: {err}") from None
    return regex


class DirectoryCondition(_Strict):
    """One structured filter condition on an attribute; its value is escaped (RFC 4515)."""

    attribute: LdapAttribute
    op: Literal["=", "!=", "<=", ">=", "in", "not in", "present", "absent"] = "="
    value: str | int | bool | list[str | int | bool] | None = None

    @field_validator("value")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "\x00" in v for v in values):
            # Escaped or not, some servers (Samba) end the value at a NUL: 100001\x00 would
            # match 100001. No attribute value a rule means holds one.
            raise ValueError("the value holds a NUL byte, which no attribute value holds")
        return value

    @model_validator(mode="after")
    def _value_fits_op(self) -> DirectoryCondition:
        missing = "use 'absent' to match a missing attribute"
        _check_value(self.op, self.value, ("present", "absent"), missing)
        return self


class DirectoryLocation(_Strict):
    """Accounts under a base DN, chosen by object class and conditions."""

    kind: ClassVar[str] = "directory"
    system: Identifier
    base_dn: str = Field(
        description="Where to search; accounts outside it are never touched",
        examples=["OU=Leerlingen,DC=school,DC=local"],
    )
    scope: Literal["subtree", "one"] = Field(
        default="subtree", description="subtree (the base and everything below) or one level"
    )
    object_class: LdapAttribute | None = Field(
        default=None,
        description="Object class of the accounts; default user (AD, computers excluded) or "
        "inetOrgPerson (OpenLDAP)",
    )
    where: list[DirectoryCondition] = Field(
        default_factory=list, description="Conditions, all of which must hold (values escaped)"
    )
    filter: str | None = Field(
        default=None,
        description="A raw LDAP filter ANDed with the conditions; parsed and checked before use",
        examples=["(|(department=Leerlingen)(department=Cursisten))"],
    )
    subject: LdapAttribute | None = Field(
        default=None,
        description="Attribute holding the subject (student or staff number), for events and holds",
        examples=["employeeID", "employeeNumber"],
    )
    report: Annotated[list[LdapAttribute], _OneOrMany] = Field(
        default_factory=list,
        description="Attributes shown in the plan's item details (they are personal data)",
        examples=[["sAMAccountName", "department"]],
    )
    clock: Clock | None = Field(default=None, description="Overrides the rule's clock")
    last_login_margin: Period = Field(
        default_factory=lambda: Period(days=14),
        description="Added to lastLogonTimestamp for the last_login clock: AD updates it only "
        "every 9-14 days, so the real last logon may be that much later",
    )
    last_login_every_dc: bool = Field(
        default=False,
        description="For the last_login clock, read the exact, unreplicated lastLogon from "
        "every listed server and take the latest (no margin); a server that does not answer "
        "fails the scan",
    )
    staging_ou: str | None = Field(
        default=None,
        description="For the move action: the OU accounts are moved to",
        examples=["OU=Vertrokken,DC=school,DC=local"],
    )
    anonymise: dict[LdapAttribute, str | None] = Field(
        default_factory=dict,
        description="For the anonymise action: attribute -> null (cleared) or a fixed value. "
        "Hashing is refused. Clearing the naming attribute (cn) renames the account to its GUID",
        examples=[{"displayName": None, "mail": None, "telephoneNumber": None}],
    )
    disabled_for: Period = Field(
        default_factory=lambda: Period(days=30),
        description="For the delete action: an account is first disabled, and deleted only "
        "once it has been disabled this long (P0D: at the next execution)",
    )

    @property
    def label(self) -> str:
        """How plans, holds and the audit log name this location: ``system:base_dn``."""
        return f"{self.system}:{self.base_dn}"

    @field_validator("report", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("anonymise", mode="before")
    @classmethod
    def _list_clears(cls, value: Any) -> Any:
        return dict.fromkeys(value) if isinstance(value, list) else value

    @field_validator("anonymise")
    @classmethod
    def _no_hashing(cls, attributes: dict[str, str | None]) -> dict[str, str | None]:
        for attribute, value in attributes.items():
            if value is not None and _HASHING.match(value):
                raise ValueError(
                    f"attribute {attribute!r}: a hash is not anonymisation (it can be linked "
                    "back to the person: pseudonymous data, still personal data, GDPR "
                    "recital 26). Use null or a fixed value"
                )
        return attributes

    @field_validator("base_dn")
    @classmethod
    def _base_dn(cls, dn: str) -> str:
        return _check_dn(dn, "base_dn")

    @field_validator("staging_ou")
    @classmethod
    def _staging_ou(cls, dn: str | None) -> str | None:
        return _check_dn(dn, "staging_ou") if dn is not None else None

    @field_validator("filter")
    @classmethod
    def _filter_parses(cls, text: str | None) -> str | None:
        return check_ldap_filter(text) if text is not None else None


def _location_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "table" in value:
            return "sql"
        if {"include", "exclude", "path_regex"} & value.keys():
            return "fileshare"
        if "bucket" in value:
            return "bucket"
        if "base_dn" in value:
            return "directory"
        return None
    if isinstance(value, SqlLocation):
        return "sql"
    if isinstance(value, FileLocation):
        return "fileshare"
    if isinstance(value, BucketLocation):
        return "bucket"
    if isinstance(value, DirectoryLocation):
        return "directory"
    return None


Location = Annotated[
    Annotated[SqlLocation, Tag("sql")]
    | Annotated[FileLocation, Tag("fileshare")]
    | Annotated[BucketLocation, Tag("bucket")]
    | Annotated[DirectoryLocation, Tag("directory")],
    Discriminator(
        _location_kind,
        custom_error_type="location_kind",
        custom_error_message=(
            "cannot tell what kind of location this is: a SQL location names a 'table', "
            "a file-share location names 'include' patterns, a bucket location a 'bucket', "
            "a directory location a 'base_dn'"
        ),
    ),
]

Art6Basis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
]
Art9Basis = Literal[
    "explicit_consent",
    "employment_social_security",
    "vital_interests",
    "not_for_profit",
    "made_public",
    "legal_claims",
    "substantial_public_interest",
    "health_care",
    "public_health",
    "archiving_research_statistics",
]


class Transfer(_Strict):
    """Art. 30(1)(e): a transfer to a third country or international organisation."""

    country: str = Field(examples=["US"])
    recipient: str | None = None
    safeguards: str | None = Field(
        default=None,
        description="Adequacy decision, SCCs, BCRs, or the Art. 49 derogation documented",
        examples=["EU-US Data Privacy Framework adequacy decision"],
    )


class Activity(_Strict):
    """One processing activity: the Art. 30(1) record, its retention rule and locations."""

    id: Identifier
    name: str
    description: str | None = None
    department: str | None = None
    purposes: list[str] = Field(default_factory=list, description="Art. 30(1)(b)")
    legal_basis: list[Art6Basis] = Field(default_factory=list, description="Art. 6(1)")
    legal_basis_note: str | None = Field(
        default=None, description="The law or contract behind the basis, e.g. WPO art. 40"
    )
    special_categories: list[str] = Field(
        default_factory=list, description="Art. 9 categories processed, e.g. health"
    )
    art9_basis: list[Art9Basis] = Field(default_factory=list, description="Art. 9(2)")
    data_subjects: list[str] = Field(default_factory=list, description="Art. 30(1)(c)")
    data_categories: list[str] = Field(default_factory=list, description="Art. 30(1)(c)")
    recipients: list[str] = Field(default_factory=list, description="Art. 30(1)(d)")
    transfers: list[Transfer] = Field(default_factory=list, description="Art. 30(1)(e)")
    security_measures: list[str] = Field(default_factory=list, description="Art. 30(1)(g)")
    dpia: str | None = Field(default=None, description="Reference to the DPIA, if one was made")
    retention: RetentionRule | None = Field(default=None, description="Art. 30(1)(f)")
    locations: list[Location] = Field(default_factory=list)


class DiscoveryPattern(_Strict):
    """A kind of personal data discovery looks for besides the built-in detectors, such as the
    school's student numbers."""

    id: Identifier = Field(
        description="The detector's name in reports; a built-in name-only detector "
        "(student_number, …) gains the pattern's values",
        examples=["student_number"],
    )
    label: str | None = Field(default=None, description="What it finds, for people")
    regex: str = Field(
        description="A value matches where this regex matches inside it (Python syntax)",
        examples=[r"\bS\d{7}\b"],
    )
    names: list[str] = Field(
        default_factory=list,
        description="Field and file names that point to this data",
        examples=[["stamnummer", "studentnummer"]],
    )
    sensitivity: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Weight in the score, 1 to 10 (a BSN is 10; default: the built-in "
        "detector's, or 4)",
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            compiled = re.compile(regex)
        except re.error as err:
            raise ValueError(f"the regex does not compile: {err}") from None
        if compiled.match(""):
            raise ValueError("the regex matches the empty text, so it would match everything")
        return regex


class DiscoveryTarget(_Strict):
    """How one system is discovered: how deep, what to leave out, whether to sample. Every
    system of the RoPA is discovered with the settings' defaults unless a target says
    otherwise; a system that no activity uses is discovered too (a whole database server, a
    share root, an S3 account, an LDAP tree)."""

    system: Identifier = Field(description="The system (in systems) to discover")
    enabled: bool = Field(default=True, description="false: do not discover this system")
    base: str | None = Field(
        default=None,
        description="Where to start: a folder below a share's root, a bucket, a base DN",
        examples=["afdelingen"],
    )
    depth: int | None = Field(
        default=None,
        ge=0,
        le=32,
        description="Folder or prefix levels listed as stores of their own (default: the "
        "discovery.depth setting); deeper content counts towards its ancestor at this depth",
    )
    databases: list[SqlName] = Field(
        default_factory=list,
        description="SQL (PostgreSQL, MariaDB/MySQL): more databases on the same server to "
        "discover with the same login; ['*'] for every database the login can open. "
        "Default: the connection's database only",
        examples=[["*"]],
    )
    schemas: list[SqlName] = Field(
        default_factory=list,
        description="SQL: only these schemas (default: every schema the login can see)",
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="Glob patterns of stores not to list or enter: folders relative to the "
        "base (or the share's root), as in include patterns (tmp/**, **/.snapshot); SQL "
        "tables as schema.table with * and ? (pg_temp*.*, *.backup_*)",
    )
    sample: bool = Field(
        default=True,
        description="false: judge this system's stores by names, counts and age only; no "
        "content is read",
    )
    sample_rows: int | None = Field(
        default=None, ge=0, description="Rows read per table (at most the setting)"
    )
    sample_bytes: int | None = Field(
        default=None, ge=0, description="Bytes read per file (at most the setting)"
    )
    sample_files: int | None = Field(
        default=None, ge=0, description="Files read per folder (at most the setting)"
    )

    @property
    def id(self) -> str:
        """A system is discovered once: its target is known by the system's id."""
        return self.system

    @field_validator("exclude")
    @classmethod
    def _relative_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if pattern.startswith("/") or ".." in pattern.split("/"):
                raise ValueError(f"pattern {pattern!r} must be relative, without '..'")
        return patterns


class Discovery(_Strict):
    """What discovery of shadow data looks at, beyond the systems' locations."""

    targets: list[DiscoveryTarget] = Field(
        default_factory=list,
        description="Per system: depth, what to leave out, whether to sample; systems not "
        "named are discovered with the settings' defaults",
    )
    patterns: list[DiscoveryPattern] = Field(
        default_factory=list, description="More kinds of personal data to look for"
    )

    def target(self, system_id: str) -> DiscoveryTarget | None:
        return next((t for t in self.targets if t.system == system_id), None)


class Ropa(_Strict):
    """A whole record of processing activities."""

    version: Literal[1] = 1
    controller: Controller
    timezone: str = Field(
        default="Europe/Amsterdam",
        description="Timezone of dates stored without one (IANA name)",
    )
    systems: list[System] = Field(default_factory=list)
    events: list[SqlEvent] = Field(default_factory=list)
    activities: list[Activity] = Field(default_factory=list)
    discovery: Discovery = Field(
        default_factory=Discovery,
        description="Discovery of personal data the RoPA does not know about (shadow data); "
        "not part of the RoPA's digest, so changing it leaves stored plans valid",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str) -> str:
        return _check_timezone(tz)

    def system(
        self, system_id: str
    ) -> SqlSystem | FileShareSystem | BucketSystem | DirectorySystem | None:
        return next((s for s in self.systems if s.id == system_id), None)

    def event(self, event_id: str) -> SqlEvent | None:
        return next((e for e in self.events if e.id == event_id), None)


class RopaHeader(_Strict):
    """The parts of a RoPA file besides its lists; a RoPA kept as a folder gives the
    controller in one file and may spread systems, events and activities over many."""

    version: Literal[1] = 1
    controller: Controller | None = None
    timezone: str | None = None
    discovery: Discovery | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str | None) -> str | None:
        return _check_timezone(tz) if tz is not None else None


def _check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{tz!r} is not an IANA timezone such as Europe/Amsterdam") from None
    return tz
