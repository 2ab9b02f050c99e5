"""Settings: where state and reports live, and the secrets that systems name.

Sources, highest priority first:

1. ``SWEEPER_…`` environment variables (``SWEEPER_STATE_URL``, ``SWEEPER_CREDENTIALS__SIS=…``);
2. the config file: ``--config FILE``, else ``$SWEEPER_CONFIG``, else
   ``/etc/ropa-sweeper/sweeper.yaml`` when it exists (YAML, same field names);
3. the defaults below.

Secrets: a system in the RoPA names a credential (``connection.credential: sis``); its value is
looked up in ``credentials`` (environment or config file), then as a file of that name in
``credentials_dir`` (default ``$CREDENTIALS_DIRECTORY``, which systemd's ``LoadCredential=``
sets). Secret values are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from sweeper.errors import CredentialMissing, Problem, SettingsInvalid
from sweeper.retention import Period
from sweeper.timetable import Timing

DEFAULT_CONFIG = Path("/etc/ropa-sweeper/sweeper.yaml")


def _default_state_dir() -> Path:
    if os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ropa-sweeper"


class ScheduleSettings(BaseModel):
    """When `sweeper daemon` runs each job (see sweeper/timetable.py for the timings)."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(
        default=None,
        description="IANA timezone of the timetable's times of day, e.g. Europe/Amsterdam "
        "(default: the RoPA's timezone); daylight-saving changes are followed",
    )
    plan: Annotated[Timing, NoDecode] = Field(
        default_factory=lambda: Timing.parse("daily at 02:00"),
        description="Dry run of the RoPA: a stored plan and its reports for review",
    )
    execute: Annotated[Timing, NoDecode] = Field(
        default_factory=lambda: Timing.parse("every hour"),
        description="Execution of approved plans not yet finished, and of auto_approve rules "
        "(from a fresh dry run of those rules' activities)",
    )
    discover: Annotated[Timing, NoDecode] = Field(
        default_factory=lambda: Timing.parse("weekly on sunday at 03:00"),
        description="Discovery of stores not in the RoPA (shadow data): every system's stores "
        "compared with the locations and sampled within the discovery bounds; changes nothing",
    )
    prune: Annotated[Timing, NoDecode] = Field(
        default_factory=lambda: Timing.parse("daily at 04:00"),
        description="Removal of the sweeper's own plans and reports older than plan_retention "
        "and of audit segments older than audit_retention",
    )
    stall_timeout: Annotated[Period, NoDecode] = Field(
        default_factory=lambda: Period(minutes=30),
        description="Under a systemd WatchdogSec=: a job that reports no progress for this "
        "long counts as hung, the watchdog pings stop and systemd restarts the daemon",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, tz: str | None) -> str | None:
        from sweeper.ropa.model import _check_timezone

        return _check_timezone(tz) if tz is not None else None


class LockSettings(BaseModel):
    """The execution lock that daemon and CLI share, so two executions never overlap."""

    model_config = ConfigDict(extra="forbid")

    on_busy: Literal["wait", "refuse"] = Field(
        default="wait",
        description="When another execution holds the lock: wait for it (up to wait_timeout), "
        "or refuse at once, saying who holds it",
    )
    wait_timeout: Annotated[Period, NoDecode] = Field(
        default_factory=lambda: Period(hours=1),
        description="How long to wait for the lock before giving up (with on_busy: wait)",
    )


class MetricsSettings(BaseModel):
    """Prometheus metrics: a textfile for node_exporter, optionally an HTTP port."""

    model_config = ConfigDict(extra="forbid")

    textfile: Path | None = Field(
        default=None,
        description="Where the metrics are written after every job, for node_exporter's "
        "textfile collector (default: state_dir/metrics/ropa_sweeper.prom)",
    )
    listen: str | None = Field(
        default=None,
        description="Serve the metrics over HTTP on this loopback address, e.g. "
        "127.0.0.1:9851 (default: not served)",
    )

    @field_validator("listen")
    @classmethod
    def _loopback(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import ipaddress

        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r}: write HOST:PORT, e.g. 127.0.0.1:9851")
        if not loopback:
            raise ValueError(
                f"{value!r}: metrics are served on loopback only (127.0.0.1 or [::1]); "
                "let a local Prometheus agent or node_exporter's textfile collector take them"
            )
        return value


class DiscoverySettings(BaseModel):
    """How far discovery of shadow data looks, and the bounds of its samples; a RoPA's
    discovery targets may ask for less, never for more."""

    model_config = ConfigDict(extra="forbid")

    depth: int = Field(
        default=2, ge=0, le=32, description="Folder or prefix levels listed as stores"
    )
    sample_rows: int = Field(
        default=100, ge=0, le=100_000, description="Rows read per table, sheet or CSV file"
    )
    sample_bytes: int = Field(
        default=256 * 1024, ge=0, le=64 * 1024 * 1024, description="Bytes read per file"
    )
    sample_files: int = Field(
        default=10, ge=0, le=1000, description="Files whose content is read, per folder"
    )
    sample_names: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="Files per folder judged by name and size only, besides those read",
    )
    exact_count_below: int = Field(
        default=100_000,
        ge=0,
        description="A SQL table whose catalog estimate is below this is counted exactly "
        "(COUNT(*)); larger ones keep the estimate",
    )
    stale_after: Annotated[Period, NoDecode] = Field(
        default_factory=lambda: Period(years=1),
        description="An item not modified (or logged on) for longer is stale",
    )
    keep_access_times: bool = Field(
        default=True,
        description="Do not read a file when that would change its access time (O_NOATIME "
        "is allowed only to its owner, root or CAP_FOWNER): such files count by name and size",
    )
    max_examples: int = Field(
        default=3, ge=0, le=20, description="Masked examples kept per detector and store"
    )
    trend_runs: int = Field(
        default=10, ge=1, le=1000, description="Earlier runs shown in the coverage trend"
    )


class Settings(BaseSettings):
    """ropa-sweeper's settings; see the module docstring for where they come from."""

    model_config = SettingsConfigDict(
        env_prefix="SWEEPER_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Where plans, reports and the state database live "
        "(default: $STATE_DIRECTORY under systemd, else ~/.local/state/ropa-sweeper)",
    )
    state_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the state store (default: SQLite in state_dir); "
        "e.g. postgresql+psycopg://sweeper@db/sweeper, password via credential 'state'",
    )
    reports_dir: Path | None = Field(
        default=None, description="Where reports are written (default: state_dir/reports)"
    )
    ropa: Path | None = Field(default=None, description="Default RoPA file or folder")
    credentials_dir: Path | None = Field(
        default_factory=lambda: (
            Path(os.environ["CREDENTIALS_DIRECTORY"])
            if os.environ.get("CREDENTIALS_DIRECTORY")
            else None
        ),
        description="Folder with one file per credential (default: $CREDENTIALS_DIRECTORY)",
    )
    credentials: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Credentials by name; prefer credential files over this",
    )
    scan_batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="Items per batch for event look-ups"
    )
    approvers_required: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Distinct approvers a plan needs; with 2 or more, whoever ran the plan "
        "cannot be one of them",
    )
    plan_max_age: Annotated[Period, NoDecode] = Field(
        default_factory=lambda: Period(days=7),
        description="A plan older than this is refused at approval and execution",
    )
    subject_pattern: str = Field(
        default=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
        description="Regex a subject id must match to be held (student or staff number)",
    )
    max_items_per_run: int | None = Field(
        default=100_000, ge=0, description="Most items one execution acts on (all locations)"
    )
    max_fraction: float | None = Field(
        default=0.95,
        ge=0,
        le=1,
        description="Default for rules without their own: most items acted on in a location, "
        "as a fraction of what its scan found",
    )
    min_population: int | None = Field(
        default=1,
        ge=0,
        description="Default for rules without their own: fewest items a location's scan must "
        "have found before anything there is acted on",
    )
    execute_batch_size: int = Field(
        default=1000, ge=1, le=10_000, description="Items per batch when acting"
    )
    audit_dir: Path | None = Field(
        default=None, description="Where the audit log's segments live (default: state_dir/audit)"
    )
    audit_key_credential: str = Field(
        default="audit-key",
        description="Name of the credential holding the audit log's HMAC key (optional: "
        "without it, records are chained with plain SHA-256)",
    )
    audit_segment_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Size in bytes at which the audit log starts a new segment",
    )
    # NoDecode: an environment value such as P7Y is text for Period, not JSON to decode.
    audit_retention: Annotated[Period, NoDecode] = Field(
        default_factory=lambda: Period(years=7),
        description="Audit segments whose last record is older than this are removed by "
        "`sweeper audit prune`",
    )
    report_language: Literal["en", "nl"] = Field(
        default="en",
        description="Language of the HTML and XLSX reports: en (English) or nl (Dutch)",
    )
    report_timezone: str = Field(
        default="Europe/Amsterdam",
        description="Timezone in which the HTML and XLSX reports show dates and times (IANA)",
    )
    report_items_per_location: int = Field(
        default=500,
        ge=0,
        le=100_000,
        description="Most items the HTML report lists per location (the CSV and XLSX list "
        "all); the page says how many are left out",
    )

    @field_validator("report_timezone")
    @classmethod
    def _known_report_timezone(cls, tz: str) -> str:
        from sweeper.ropa.model import _check_timezone

        return _check_timezone(tz)

    schedule: ScheduleSettings = Field(
        default_factory=ScheduleSettings, description="When `sweeper daemon` runs each job"
    )
    lock: LockSettings = Field(
        default_factory=LockSettings,
        description="The execution lock shared by the daemon and the CLI",
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Prometheus metrics"
    )
    plan_retention: Annotated[Period, NoDecode] = Field(
        default_factory=lambda: Period(months=6),
        description="Plans and their reports (personal data: they name subjects and paths) "
        "older than this are removed by the prune job; must be longer than plan_max_age",
    )

    discovery: DiscoverySettings = Field(
        default_factory=DiscoverySettings,
        description="Discovery of shadow data: depth and sample bounds "
        "(SWEEPER_DISCOVERY__SAMPLE_ROWS=…)",
    )
    plan_job_html: bool = Field(
        default=True,
        description="The daemon's plan job (and run --once plan) also writes the plan's HTML "
        "report (plan-ID.html, in report_language) next to its JSON and CSV, for the privacy "
        "officer; false: JSON and CSV only",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    @field_validator("plan_retention")
    @classmethod
    def _plans_outlive_their_validity(cls, retention: Period, info: ValidationInfo) -> Period:
        max_age = info.data.get("plan_max_age")
        if max_age is not None and retention.approx_days() <= max_age.approx_days():
            raise ValueError(
                f"plan_retention ({retention}) must be longer than plan_max_age "
                f"({max_age}): a plan must not be removed while it may still be executed"
            )
        return retention

    @property
    def metrics_path(self) -> Path:
        return self.metrics.textfile or self.state_dir / "metrics" / "ropa_sweeper.prom"

    @property
    def state_database_url(self) -> str:
        return self.state_url or f"sqlite:///{self.state_dir / 'state.db'}"

    @property
    def reports_path(self) -> Path:
        return self.reports_dir or self.state_dir / "reports"

    @property
    def audit_path(self) -> Path:
        return self.audit_dir or self.state_dir / "audit"

    def credential(self, name: str) -> SecretStr:
        """Given a credential's name, return its secret. Raise CredentialMissing if unknown."""
        if name in self.credentials:
            return self.credentials[name]
        if name.lower() in self.credentials:  # environment variable names lose their case
            return self.credentials[name.lower()]
        looked = [f"SWEEPER_CREDENTIALS__{name.upper()}", "credentials in the config file"]
        if self.credentials_dir is not None:
            path = self.credentials_dir / name
            looked.append(str(path))
            try:
                return SecretStr(path.read_text(encoding="utf-8").rstrip("\r\n"))
            except FileNotFoundError:
                pass
            except OSError as err:
                raise CredentialMissing(
                    f"credential {name!r}: cannot read {path}: {err.strerror}"
                ) from err
        else:
            looked.append("$CREDENTIALS_DIRECTORY (not set)")
        raise CredentialMissing(
            f"credential {name!r} is not set; looked in: {', '.join(looked)}. "
            f"Under systemd, add LoadCredential={name}:/etc/ropa-sweeper/credentials/{name}"
        )


_config_override: Path | None = None


def _config_file() -> Path | None:
    if _config_override is not None:
        return _config_override
    if os.environ.get("SWEEPER_CONFIG"):
        return Path(os.environ["SWEEPER_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Return the settings from all sources. Raise SettingsInvalid listing every problem."""
    global _config_override
    _config_override = config
    source = str(config or _config_file() or "environment")
    if config is not None and not config.is_file():
        raise SettingsInvalid([Problem(str(config), "", "no such config file")])
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        problems = []
        environ = {k.upper() for k in os.environ}
        for e in err.errors(include_url=False):
            path = ".".join(str(p) for p in e["loc"])
            env = "SWEEPER_" + "__".join(str(p) for p in e["loc"]).upper()
            message = str(e["msg"]).removeprefix("Value error, ")
            if env in environ:  # the bad value came from the environment, not the file
                problems.append(Problem(env, path, message))
            elif e["type"] == "extra_forbidden":
                fields = ", ".join(Settings.model_fields)
                message = f"unknown setting: check its spelling (the settings are: {fields})"
                problems.append(Problem(source, path, message))
            else:
                problems.append(Problem(source, path, f"{message} (or set {env})"))
        raise SettingsInvalid(problems) from None
    except Exception as err:  # the YAML source raises plain errors for unreadable files
        raise SettingsInvalid([Problem(source, "", f"cannot read the settings: {err}")]) from err
    finally:
        _config_override = None
