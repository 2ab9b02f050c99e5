"""The errors ropa-sweeper raises, in one tree.

    SweeperError                      anything the sweeper reports to a user without a traceback
    ├── RopaInvalid                   the RoPA file(s) failed validation (carries every problem)
    ├── SettingsInvalid               the settings failed validation (carries every problem)
    ├── CredentialMissing             a system names a credential the settings do not supply
    ├── PlanNotFound                  no stored plan has the given id
    └── ConnectorError                raised by connectors, always `from` the driver's error
        ├── SystemUnreachable         the system did not answer or refused the login
        ├── LocationInvalid           a table, column, path or pattern does not exist or is unsafe
        └── ActionUnsupported         the connector cannot perform an action on a location

Every message names what went wrong and, where it can, how to fix it. Messages never contain
a secret: connectors build them from the system id and the driver's error class and text,
after `sweeper.logging.redact` has removed anything that looks like a password.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is and what is wrong.

    Args:
        file: the file the problem is in, as the user named it (or a settings source).
        path: the dotted path inside the document, e.g. ``activities[3].retention.period``.
        message: what is wrong and, where possible, how to fix it.
        severity: ``error`` stops the run; ``warning`` is an Art. 30 completeness remark.
        line: 1-based line in the file, when known.
    """

    file: str
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.severity}: {self.path or '(top)'}: {self.message}"


class SweeperError(Exception):
    """Base of every error that is reported to the user as a message, not a traceback."""

    exit_code = 1


class _ProblemsError(SweeperError):
    exit_code = 2

    def __init__(self, problems: Sequence[Problem], what: str) -> None:
        self.problems = list(problems)
        errors = sum(1 for p in self.problems if p.severity == "error")
        super().__init__(f"{what}: {errors} error(s)\n" + "\n".join(map(str, self.problems)))


class RopaInvalid(_ProblemsError):
    """The RoPA failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(problems, "the RoPA is invalid")


class SettingsInvalid(_ProblemsError):
    """The settings failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(problems, "the settings are invalid")


class CredentialMissing(SweeperError):
    """A system names a credential that no settings source supplies."""

    exit_code = 2


class PlanNotFound(SweeperError):
    """No stored plan has the given id."""

    exit_code = 2


class ConnectorError(SweeperError):
    """A connector failed; raised ``from`` the driver's own error."""

    def __init__(self, system: str, message: str) -> None:
        self.system = system
        super().__init__(f"system {system!r}: {message}")


class SystemUnreachable(ConnectorError):
    """The system did not answer, or refused the connection or the login."""


class LocationInvalid(ConnectorError):
    """A location names a table, column, path or pattern that does not exist or is unsafe."""


class ActionUnsupported(ConnectorError):
    """The connector cannot perform the requested action on this location."""
