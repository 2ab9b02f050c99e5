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
    "Clock",
    "ColumnClock",
    "Condition",
    "Contact",
    "Controller",
    "Dependent",
    "Discovery",
    "DiscoveryPattern",
    "DiscoveryTarget",
    "EventClock",
    "FileLocation",
    "FileShareConnection",
    "FileShareSystem",
    "Location",
    "PathDateClock",
    "RetentionRule",
    "Ropa",
    "SqlConnection",
    "SqlEvent",
    "SqlLocation",
    "SqlSystem",
    "System",
    "SystemKind",
    "SystemStatus",
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


System = Annotated[SqlSystem | FileShareSystem, Field(discriminator="kind")]


class Condition(_Strict):
    """One structured filter condition: column, operator, value. Never raw SQL."""

    column: SqlName
    op: Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"] = "="
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("is null", "is not null"):
            if self.value is not None:
                raise ValueError(f"operator {self.op!r} takes no value")
        elif self.op in ("in", "not in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator {self.op!r} needs a non-empty list as value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(
                f"operator {self.op!r} needs a single value (use 'is null' to match NULL)"
            )
        return self


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


ClockName = Literal["created", "modified", "accessed", "mtime", "ctime", "atime"]


def _clock_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        return next((k for k in ("column", "event", "path_date") if k in value), None)
    if isinstance(value, ColumnClock):
        return "column"
    if isinstance(value, EventClock):
        return "event"
    if isinstance(value, PathDateClock):
        return "path_date"
    return None


Clock = Annotated[
    Annotated[ClockName, Tag("name")]
    | Annotated[ColumnClock, Tag("column")]
    | Annotated[EventClock, Tag("event")]
    | Annotated[PathDateClock, Tag("path_date")],
    Discriminator(
        _clock_kind,
        custom_error_type="clock_kind",
        custom_error_message=(
            "a clock is created, modified, accessed, mtime, ctime, atime, "
            "{column: NAME}, {event: ID} or {path_date: GROUP}"
        ),
    ),
]


class Action(StrEnum):
    DELETE = "delete"
    ANONYMISE = "anonymise"
    QUARANTINE = "quarantine"
    REVIEW = "review"


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
            "{event: ID} or {path_date: GROUP}; a location may override it"
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
        if regex is not None:
            try:
                re.compile(regex)
            except re.error as err:
                raise ValueError(f"path_regex does not compile: {err}") from None
        return regex

    @property
    def label(self) -> str:
        """How plans, holds and the audit log name this location: ``system:patterns``."""
        return f"{self.system}:{','.join(self.include)}"

    @property
    def regex_groups(self) -> set[str]:
        return set(re.compile(self.path_regex).groupindex) if self.path_regex else set()


def _location_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "table" in value:
            return "sql"
        if {"include", "exclude", "path_regex"} & value.keys():
            return "fileshare"
        return None
    if isinstance(value, SqlLocation):
        return "sql"
    if isinstance(value, FileLocation):
        return "fileshare"
    return None


Location = Annotated[
    Annotated[SqlLocation, Tag("sql")] | Annotated[FileLocation, Tag("fileshare")],
    Discriminator(
        _location_kind,
        custom_error_type="location_kind",
        custom_error_message=(
            "cannot tell what kind of location this is: a SQL location names a 'table', "
            "a file-share location names 'include' patterns"
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

    def system(self, system_id: str) -> SqlSystem | FileShareSystem | None:
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
