"""Loading a RoPA: every problem at once with file, line and dotted path; Art. 30 warnings."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeper.errors import Problem, RopaInvalid
from sweeper.ropa import load_ropa, ropa_digest
from sweeper.ropa.model import SystemKind

INVALID = Path(__file__).parent / "ropa_invalid"
DEMO = Path(__file__).parents[2] / "sweeper" / "demo" / "ropa.yaml"

CONTROLLER = "controller: {name: School, contact: {name: Office}, dpo: {name: FG}}\n"

# file in ropa_invalid/ -> (line, dotted path, a phrase of the message)
EXPECTED: dict[str, tuple[int, str, str]] = {
    "active_with_decommission_date.yaml": (4, "systems[0]", "status is active"),
    "activities_not_a_list.yaml": (3, "activities", "activities must be a list"),
    "clock_misspelt.yaml": (10, "activities[0].retention.clock", "'modifed' is not allowed"),
    "column_clock_on_file.yaml": (
        12,
        "activities[0].locations[0].clock",
        "a file-share location has no columns",
    ),
    "condition_in_without_list.yaml": (
        14,
        "activities[0].locations[0].where[0]",
        "operator 'in' needs a non-empty list",
    ),
    "decommissioned_without_date.yaml": (
        4,
        "systems[0]",
        "a decommissioned system needs decommissioned_on",
    ),
    "dependent_columns_mismatch.yaml": (
        14,
        "activities[0].locations[0].dependents[0]",
        "columns and references must have the same number of entries",
    ),
    "duplicate_activity_id.yaml": (6, "activities[1].id", "duplicate id 'pupils'"),
    "event_clock_without_subject_column.yaml": (
        12,
        "activities[0].locations[0].subject",
        "an event clock needs the subject column",
    ),
    "event_clock_without_subject_group.yaml": (
        15,
        "activities[0].locations[0].path_regex",
        "add a named group (?P<subject>...) to path_regex",
    ),
    "event_on_file_share.yaml": (7, "events[0].system", "events are read from SQL systems"),
    "event_on_unknown_system.yaml": (7, "events[0].system", "unknown system 'magister'"),
    "id_with_spaces.yaml": (4, "activities[0].id", "'Pupil administration' is not a valid id"),
    "inherited_clock_on_sql.yaml": (
        12,
        "activities[0].locations[1]",
        "takes its clock from retention.clock",
    ),
    "invalid_regex.yaml": (
        12,
        "activities[0].locations[0].path_regex",
        "path_regex does not compile",
    ),
    "legal_basis_as_article.yaml": (
        6,
        "activities[0].legal_basis[1]",
        "'art. 6(1)(e)' is not allowed",
    ),
    "location_kind_unclear.yaml": (
        10,
        "activities[0].locations[0]",
        "cannot tell what kind of location this is",
    ),
    "missing_controller.yaml": (1, "controller", "required field is missing"),
    "missing_period.yaml": (8, "activities[0].retention.period", "required field is missing"),
    "modified_clock_on_sql.yaml": (
        13,
        "activities[0].locations[0].clock",
        "a SQL location needs clock {column: NAME} or {event: ID}, not 'modified'",
    ),
    "password_in_connect_args.yaml": (
        9,
        "systems[0].connection.connect_args",
        "connect_args.PWD holds a secret",
    ),
    "password_in_url.yaml": (8, "systems[0].connection.url", "the URL contains a password"),
    "path_date_clock_on_sql.yaml": (
        13,
        "activities[0].locations[0]",
        "needs clock {column: NAME} or {event: ID}, not {path_date: closed}",
    ),
    "path_date_group_missing.yaml": (
        15,
        "activities[0].locations[0].path_regex",
        "group 'closed', which path_regex does not define",
    ),
    "pattern_leaves_share.yaml": (
        11,
        "activities[0].locations[0].include",
        "pattern '../archive/**' must be relative to the share root",
    ),
    "period_in_dutch.yaml": (
        9,
        "activities[0].retention.period",
        "'P5J' is not an ISO 8601 duration",
    ),
    "period_in_words.yaml": (
        9,
        "activities[0].retention.period",
        "'5 years' is not an ISO 8601 duration",
    ),
    "retention_misspelt.yaml": (8, "activities[0].retension", "unknown field"),
    "system_kind_product_name.yaml": (6, "systems[0].kind", "unknown kind 'mssql'"),
    "table_on_file_share.yaml": (
        11,
        "activities[0].locations[0].system",
        "system 'share' is a fileshare system but this is a sql location",
    ),
    "timezone_misspelt.yaml": (3, "timezone", "'Amsterdam' is not an IANA timezone"),
    "unknown_action.yaml": (11, "activities[0].retention.action", "'destroy' is not allowed"),
    "unknown_event.yaml": (
        12,
        "activities[0].retention.clock.event",
        "unknown event 'leerling_vertrokken'",
    ),
}


def write(folder: Path, name: str, *parts: str) -> Path:
    """Write the parts, each dedented on its own, as one file; return its path."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(textwrap.dedent(p).lstrip("\n") for p in parts), encoding="utf-8")
    return path


def problems_of(path: Path, *, strict: bool = False) -> list[Problem]:
    """Load the RoPA, expecting it to be refused; return the problems."""
    with pytest.raises(RopaInvalid) as info:
        load_ropa(path, strict=strict)
    return info.value.problems


def only_problem(path: Path) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# -- the table of invalid files ------------------------------------------------------------


def test_every_invalid_file_has_an_expectation() -> None:
    """Each file in ropa_invalid/ is in the table and each table entry has a file."""
    assert sorted(p.name for p in INVALID.iterdir()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_invalid_ropa_names_its_one_mistake(name: str, expected: tuple[int, str, str]) -> None:
    """Each invalid file is refused with exactly its one mistake: file, line, path, message."""
    line, path, phrase = expected
    problem = only_problem(INVALID / name)
    assert (problem.file, problem.line, problem.path, problem.severity) == (
        str(INVALID / name),
        line,
        path,
        "error",
    )
    assert phrase in problem.message


def test_invalid_ropa_exit_code_is_2() -> None:
    """RopaInvalid tells the command line to exit with 2."""
    with pytest.raises(RopaInvalid) as info:
        load_ropa(INVALID / "period_in_dutch.yaml")
    assert info.value.exit_code == 2


# -- every problem at once -----------------------------------------------------------------


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    """A file with five distinct mistakes yields five problems, one per mistake."""
    path = write(
        tmp_path,
        "ropa.yaml",
        """
        controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
        timezone: Europe/Amsterdm
        systems:
          - {id: sis, name: SIS, kind: sql, connection: {url: "mysql://sweeper:pw@db/sis"}}
        activities:
          - id: grades
            name: Grades
            retention: {period: 2 years, clock: {column: created}, action: shred}
            locations:
              - {system: sis, table: grades, key: id, where: [{column: x, op: like, value: 1}]}
        """,
    )
    problems = problems_of(path)
    assert sorted((p.line, p.path) for p in problems) == [
        (2, "timezone"),
        (4, "systems[0].connection.url"),
        (8, "activities[0].retention.action"),
        (8, "activities[0].retention.period"),
        (10, "activities[0].locations[0].where[0].op"),
    ]


def test_problems_of_several_files_are_reported_together(tmp_path: Path) -> None:
    """A folder with a mistake in each of two files reports both, each with its own file."""
    write(tmp_path, "a.yaml", CONTROLLER + "timezone: Mars/Olympus\n")
    write(tmp_path, "b.yaml", "activities:\n  - {id: x, name: X, colour: blue}\n")
    problems = problems_of(tmp_path)
    assert sorted((Path(p.file).name, p.line, p.path) for p in problems) == [
        ("a.yaml", 2, "timezone"),
        ("b.yaml", 2, "activities[0].colour"),
    ]


def test_entry_referring_to_an_invalid_entry_is_not_reported_twice(tmp_path: Path) -> None:
    """An event on a system that is itself invalid reports only the system's problem."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        """
        systems:
          - {id: sis, name: SIS, kind: sql, connection: {url: "sis.db"}}
        events:
          - {id: left, system: sis, table: enrolments, subject: student_id, date: end_date}
        """,
    )
    problem = only_problem(path)
    assert (problem.path, problem.line) == ("systems[0].connection.url", 3)
    assert "not a SQLAlchemy URL" in problem.message


# -- YAML itself ---------------------------------------------------------------------------


def test_yaml_syntax_error_gives_its_line(tmp_path: Path) -> None:
    """An unclosed flow mapping is reported as invalid YAML, naming where it starts."""
    path = write(
        tmp_path,
        "ropa.yaml",
        """
        controller:
          name: School
          contact: {name: Office
        timezone: UTC
        """,
    )
    problem = only_problem(path)
    assert (problem.file, problem.line, problem.path) == (str(path), 4, "")
    assert problem.message.startswith("not valid YAML:")
    assert "starts on line 3" in problem.message


def test_tab_indentation_is_a_yaml_error(tmp_path: Path) -> None:
    """A tab used for indentation is reported on its line."""
    path = tmp_path / "ropa.yaml"
    path.write_text("controller:\n\tname: School\n", encoding="utf-8")
    problem = only_problem(path)
    assert problem.line == 2
    assert "'\\t'" in problem.message


def test_duplicate_key_is_reported_at_the_second_key(tmp_path: Path) -> None:
    """A key given twice in one mapping is an error at the second occurrence."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        """
        activities:
          - id: camera
            name: Camera footage
            retention:
              period: P4W
              clock: modified
              period: P1Y
              action: delete
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.path) == (8, "activities[0].retention.period")
    assert "appears twice" in problem.message


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing yet\n"], ids=["empty", "blank", "comment"])
def test_empty_file_is_reported(tmp_path: Path, text: str) -> None:
    """A file with no content is an error, not an empty RoPA."""
    path = tmp_path / "ropa.yaml"
    path.write_text(text, encoding="utf-8")
    problem = only_problem(path)
    assert (problem.file, problem.line, problem.message) == (str(path), 1, "the file is empty")


def test_a_list_at_the_top_is_reported(tmp_path: Path) -> None:
    """A file holding a list instead of a mapping says it must hold a mapping."""
    path = write(tmp_path, "ropa.yaml", "- id: pupils\n  name: Pupils\n")
    assert "must hold a mapping" in only_problem(path).message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A path that does not exist is a problem naming the path."""
    problem = only_problem(tmp_path / "nope.yaml")
    assert problem.file == str(tmp_path / "nope.yaml")
    assert "no such file or folder" in problem.message


def test_country_code_no_stays_a_string(tmp_path: Path) -> None:
    """Norway's code NO is the string 'NO', not YAML 1.1's boolean false."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        """
        activities:
          - id: exchange
            name: Pupil exchange
            transfers:
              - {country: NO, safeguards: adequacy decision}
              - {country: ON, safeguards: none}
        """,
    )
    transfers = load_ropa(path).ropa.activities[0].transfers
    assert [t.country for t in transfers] == ["NO", "ON"]


def test_numbers_with_leading_zeros_stay_strings(tmp_path: Path) -> None:
    """A student number 012345 stays '012345' (YAML 1.1 reads the octal 5349), 1:20 stays
    '1:20' (not 80), and a plain 42 is still the integer 42."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        """
        activities:
          - id: pupils
            name: Pupils
            locations:
              - system: sis
                table: students
                key: id
                where:
                  - {column: student_nr, value: 012345}
                  - {column: period, value: 1:20}
                  - {column: year, value: 42}
        """,
    )
    location = load_ropa(path).ropa.activities[0].locations[0]
    values = [c.value for c in getattr(location, "where", [])]
    assert values == ["012345", "1:20", 42]
    assert isinstance(values[2], int)


def test_true_and_false_are_still_booleans(tmp_path: Path) -> None:
    """Dropping YAML 1.1's yes/no booleans keeps true and false."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        """
        activities:
          - id: camera
            name: Camera
            retention: {period: P4W, clock: modified, action: delete, auto_approve: true}
        """,
    )
    retention = load_ropa(path).ropa.activities[0].retention
    assert retention is not None
    assert retention.auto_approve is True


# -- folders -------------------------------------------------------------------------------


SYSTEMS = """
systems:
  - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
"""
ACTIVITY = """
  - id: {id}
    name: {id}
    purposes: [Education]
    legal_basis: [public_task]
    data_subjects: [pupils]
    data_categories: [grades]
    security_measures: [access control]
    retention: {{period: P2Y, clock: {{column: created}}, action: delete, {SOURCE}}}
    locations:
      - {{system: sis, table: {id}, key: id}}
"""


def activities(*ids: str) -> str:
    source = "source: School policy, source_kind: policy"
    return "activities:" + "".join(ACTIVITY.format(id=i, SOURCE=source) for i in ids)


def test_folder_ropa_merges_its_files(tmp_path: Path) -> None:
    """A folder gives the controller in one file and activities spread over others."""
    write(tmp_path, "controller.yaml", CONTROLLER + SYSTEMS)
    write(tmp_path, "activities/grades.yaml", activities("grades"))
    write(tmp_path, "activities/pupils.yml", activities("pupils", "absence"))
    loaded = load_ropa(tmp_path)
    assert sorted(a.id for a in loaded.ropa.activities) == ["absence", "grades", "pupils"]
    assert [s.id for s in loaded.ropa.systems] == ["sis"]
    assert loaded.warnings == ()
    assert loaded.where("activities", "absence") == f"{tmp_path / 'activities/pupils.yml'}:13"


def test_folder_ignores_files_that_are_not_yaml(tmp_path: Path) -> None:
    """Only .yaml and .yml files in the folder are part of the RoPA."""
    write(tmp_path, "ropa.yaml", CONTROLLER)
    write(tmp_path, "README.md", "# notes: not: [yaml")
    assert load_ropa(tmp_path).files == (str(tmp_path / "ropa.yaml"),)


def test_duplicate_id_across_files_names_both_places(tmp_path: Path) -> None:
    """The same activity id in two files is reported at the second, naming the first."""
    write(tmp_path, "controller.yaml", CONTROLLER + SYSTEMS)
    first = write(tmp_path, "a.yaml", activities("grades"))
    second = write(tmp_path, "b.yaml", activities("absence", "grades"))
    problem = only_problem(tmp_path)
    assert (problem.file, problem.line, problem.path) == (str(second), 13, "activities[1].id")
    assert f"duplicate id 'grades': also at {first}:2 (activities[0])" in problem.message


def test_controller_given_twice_names_the_other_file(tmp_path: Path) -> None:
    """Two files with a controller are an error naming both files."""
    first = write(tmp_path, "a.yaml", CONTROLLER)
    second = write(tmp_path, "b.yaml", "# board\n" + CONTROLLER)
    problem = only_problem(tmp_path)
    assert (problem.file, problem.line, problem.path) == (str(second), 2, "controller")
    assert f"already given in {first}" in problem.message


def test_different_timezones_in_two_files_are_an_error(tmp_path: Path) -> None:
    """Two files giving different timezones are an error rather than one silently winning."""
    first = write(tmp_path, "a.yaml", CONTROLLER + "timezone: Europe/Amsterdam\n")
    second = write(tmp_path, "b.yaml", "timezone: UTC\n")
    problem = only_problem(tmp_path)
    assert (problem.file, problem.line, problem.path) == (str(second), 1, "timezone")
    assert f"already given as 'Europe/Amsterdam' in {first}" in problem.message


def test_folder_without_controller_is_an_error(tmp_path: Path) -> None:
    """A folder in which no file names the controller says the controller is missing."""
    write(tmp_path, "activities.yaml", activities("grades"))
    problem = only_problem(tmp_path)
    assert (problem.file, problem.path) == (str(tmp_path), "controller")
    assert "required field is missing" in problem.message


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    """A folder without YAML files is refused."""
    assert "holds no .yaml or .yml files" in only_problem(tmp_path).message


def test_folder_and_single_file_have_the_same_digest(tmp_path: Path) -> None:
    """Splitting a RoPA over files does not change what it says, so not its digest."""
    single = write(tmp_path, "single.yaml", CONTROLLER + SYSTEMS + activities("a", "b"))
    folder = tmp_path / "folder"
    write(folder, "1-controller.yaml", CONTROLLER + SYSTEMS)
    write(folder, "2-activities.yaml", activities("a", "b"))
    assert load_ropa(folder).digest == load_ropa(single).digest


# -- specific checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sweeper:Geheim-2024@db/sis",
        "mssql+pyodbc://sweeper:Geheim-2024@SIS_DSN",
        "postgresql://sweeper:Geheim/2024@db/sis",
        "postgresql://sweeper@db/sis?password=Geheim-2024",
        "postgresql:/sweeper:Geheim-2024@db/sis",
    ],
    ids=["plain", "odbc", "slash-in-password", "query", "malformed"],
)
def test_password_in_url_is_refused_without_echoing_it(tmp_path: Path, url: str) -> None:
    """A URL holding a password is an error whose text never repeats the password."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER
        + f"systems:\n  - {{id: sis, name: SIS, kind: sql, connection: {{url: '{url}'}}}}\n",
    )
    with pytest.raises(RopaInvalid) as info:
        load_ropa(path)
    [problem] = info.value.problems
    assert problem.path == "systems[0].connection.url"
    assert "Geheim" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sweeper@db/sis",
        "postgresql://sweeper@db:5432/sis",
        "mysql+pymysql://sweeper@db/sis?charset=utf8mb4",
        "sqlite:///sis.db",
    ],
)
def test_url_without_password_is_accepted(tmp_path: Path, url: str) -> None:
    """URLs with a user, host, port or options but no password load."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER
        + f"systems:\n  - {{id: sis, name: SIS, kind: sql, connection: {{url: '{url}'}}}}\n",
    )
    assert load_ropa(path).ropa.systems[0].connection.url == url


def test_missing_field_is_named_in_the_path(tmp_path: Path) -> None:
    """A missing field is reported at its own path, even when named like a union tag."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER + "systems:\n  - {id: sis, kind: sql, connection: {url: 'sqlite:///s.db'}}\n",
    )
    problem = only_problem(path)
    assert (problem.path, problem.message) == ("systems[0].name", "required field is missing")


def test_wrong_type_inside_a_clock_has_a_single_path(tmp_path: Path) -> None:
    """An error inside {column: …} is at clock.column, without pydantic's union tag."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        """
        activities:
          - id: grades
            name: Grades
            retention: {period: P2Y, clock: {column: [created]}, action: delete}
        """,
    )
    assert only_problem(path).path == "activities[0].retention.clock.column"


def test_system_without_kind_lists_the_kinds(tmp_path: Path) -> None:
    """A system without kind says which kinds there are."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER + "systems:\n  - {id: sis, name: SIS, connection: {url: 'sqlite:///s.db'}}\n",
    )
    problem = only_problem(path)
    assert (problem.path, problem.message) == (
        "systems[0].kind",
        "kind is missing: use one of " + ", ".join(repr(k.value) for k in SystemKind),
    )


def test_unknown_event_lists_the_known_events() -> None:
    """The unknown-event message names the events the RoPA does define."""
    problem = only_problem(INVALID / "unknown_event.yaml")
    assert problem.message.endswith("(known: student_left)")


def test_system_timezone_is_checked(tmp_path: Path) -> None:
    """A system's own timezone must be an IANA name too."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER
        + "systems:\n"
        + "  - {id: s, name: S, kind: fileshare, timezone: CEST+1, connection: {root: x}}\n",
    )
    problem = only_problem(path)
    assert (problem.line, problem.path) == (3, "systems[0].timezone")
    assert "is not an IANA timezone" in problem.message


@pytest.mark.parametrize("pattern", ["/etc/**", "homes/../../etc/*"])
def test_pattern_outside_the_share_is_refused(tmp_path: Path, pattern: str) -> None:
    """Absolute patterns and patterns climbing out with '..' are refused, in exclude too."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        f"""
        activities:
          - id: x
            name: X
            locations:
              - {{system: share, exclude: ["{pattern}"]}}
        """,
    )
    problem = only_problem(path)
    assert problem.path == "activities[0].locations[0].exclude"
    assert "relative to the share root" in problem.message


# -- Art. 30 completeness: warnings, or errors with strict ---------------------------------


COMPLETE: dict[str, Any] = {
    "controller": {"name": "School", "contact": {"name": "Office"}, "dpo": {"name": "FG"}},
    "timezone": "UTC",
    "systems": [
        {
            "id": "sis",
            "name": "SIS",
            "kind": "sql",
            "owner": "IT",
            "connection": {"url": "sqlite:///sis.db"},
        }
    ],
    "activities": [
        {
            "id": "care",
            "name": "Pupil care",
            "purposes": ["Support for pupils"],
            "legal_basis": ["public_task"],
            "special_categories": ["health"],
            "art9_basis": ["substantial_public_interest"],
            "data_subjects": ["pupils"],
            "data_categories": ["care notes"],
            "transfers": [{"country": "US", "safeguards": "Data Privacy Framework"}],
            "security_measures": ["need-to-know access"],
            "retention": {
                "period": "P2Y",
                "clock": {"column": "closed_on"},
                "action": "delete",
                "source": "School policy on pupil care",
                "source_kind": "policy",
            },
            "locations": [{"system": "sis", "table": "care_notes", "key": "id"}],
        }
    ],
}


def _drop(key: str) -> Any:
    def change(ropa: dict[str, Any]) -> None:
        del ropa["activities"][0][key]

    return change


def _set(key: str, value: Any) -> Any:
    def change(ropa: dict[str, Any]) -> None:
        ropa["activities"][0][key] = value

    return change


def _no_dpo(ropa: dict[str, Any]) -> None:
    del ropa["controller"]["dpo"]


def _no_owner(ropa: dict[str, Any]) -> None:
    del ropa["systems"][0]["owner"]


def _retention_without(key: str) -> Any:
    def change(ropa: dict[str, Any]) -> None:
        del ropa["activities"][0]["retention"][key]

    return change


WARNINGS = {
    "missing purposes": (_drop("purposes"), "activities[0].purposes", "no purposes"),
    "missing legal basis": (_drop("legal_basis"), "activities[0].legal_basis", "Art. 6(1)"),
    "special categories without Art. 9 basis": (
        _drop("art9_basis"),
        "activities[0].art9_basis",
        "special categories of data (health) are processed without an Art. 9(2) exception",
    ),
    "transfer without safeguards": (
        _set("transfers", [{"country": "US"}]),
        "activities[0].transfers[0].safeguards",
        "the transfer to US names no safeguards",
    ),
    "no retention": (_drop("retention"), "activities[0].retention", "no retention rule"),
    "no locations": (_drop("locations"), "activities[0].locations", "no locations"),
    "location on unknown system": (
        _set("locations", [{"system": "crm", "table": "contacts", "key": "id"}]),
        "activities[0].locations[0].system",
        "unknown system 'crm': this location is not scanned",
    ),
    "no DPO": (_no_dpo, "controller.dpo", "no data protection officer"),
    "no data subjects": (_drop("data_subjects"), "activities[0].data_subjects", "data subjects"),
    "no security measures": (
        _drop("security_measures"),
        "activities[0].security_measures",
        "no security measures",
    ),
    "system without owner": (_no_owner, "systems[0].owner", "no owner"),
    "retention without source": (
        _retention_without("source"),
        "activities[0].retention.source",
        "the retention period names no source",
    ),
    "source without its kind": (
        _retention_without("source_kind"),
        "activities[0].retention.source_kind",
        "set source_kind to statute, guideline, archival_list, code_of_conduct or policy",
    ),
}


def write_ropa(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "ropa.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_complete_ropa_has_no_warnings(tmp_path: Path) -> None:
    """The complete RoPA the warning cases start from is itself without warnings."""
    assert load_ropa(write_ropa(tmp_path, COMPLETE)).warnings == ()


@pytest.mark.parametrize(("change", "path", "phrase"), WARNINGS.values(), ids=list(WARNINGS))
def test_incomplete_record_gives_one_warning(
    tmp_path: Path, change: Any, path: str, phrase: str
) -> None:
    """Leaving out one Art. 30 element loads, with one warning naming that element."""
    data = copy.deepcopy(COMPLETE)
    change(data)
    file = write_ropa(tmp_path, data)
    [warning] = load_ropa(file).warnings
    assert (warning.file, warning.path, warning.severity) == (str(file), path, "warning")
    assert phrase in warning.message


@pytest.mark.parametrize(("change", "path", "phrase"), WARNINGS.values(), ids=list(WARNINGS))
def test_strict_turns_the_warning_into_an_error(
    tmp_path: Path, change: Any, path: str, phrase: str
) -> None:
    """With strict=True the same warning refuses the RoPA as an error."""
    data = copy.deepcopy(COMPLETE)
    change(data)
    [problem] = problems_of(write_ropa(tmp_path, data), strict=True)
    assert (problem.path, problem.severity) == (path, "error")
    assert phrase in problem.message


def test_warning_line_is_the_line_of_its_element(tmp_path: Path) -> None:
    """A warning about a transfer points at the transfer's line, not the activity's."""
    path = write(
        tmp_path,
        "ropa.yaml",
        """
        controller:
          name: School
          contact: {name: Office}
        activities:
          - id: exchange
            name: Exchange
            transfers:
              - {country: NO, safeguards: adequacy decision}
              - {country: US}
        """,
    )
    lines = {w.path: w.line for w in load_ropa(path).warnings}
    assert lines["activities[0].transfers[1].safeguards"] == 9
    assert lines["activities[0].purposes"] == 5
    assert lines["controller.dpo"] == 1


def test_missing_dpo_warning_names_the_controller_file(tmp_path: Path) -> None:
    """In a folder, the no-DPO warning points at the file that holds the controller."""
    write(tmp_path, "activities.yaml", activities("grades"))
    controller = write(
        tmp_path, "controller.yaml", "controller: {name: S, contact: {name: O}}\n" + SYSTEMS
    )
    [warning] = load_ropa(tmp_path).warnings
    assert (warning.file, warning.line, warning.path) == (str(controller), 1, "controller.dpo")


# -- the demo RoPA and its digest ----------------------------------------------------------


def test_demo_ropa_is_valid_without_warnings() -> None:
    """The bundled demo RoPA loads with zero warnings, also with strict."""
    loaded = load_ropa(DEMO, strict=True)
    assert loaded.warnings == ()
    assert len(loaded.ropa.activities) == 6


def test_digest_ignores_comments_and_layout(tmp_path: Path) -> None:
    """The demo RoPA as JSON (no comments, other layout) has the same digest as the YAML."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    copy_path = tmp_path / "ropa.yaml"
    copy_path.write_text(json.dumps(data, default=str, indent=8), encoding="utf-8")
    assert load_ropa(copy_path).digest == load_ropa(DEMO).digest


def test_digest_changes_when_a_period_changes(tmp_path: Path) -> None:
    """Changing one retention period changes the digest."""
    text = DEMO.read_text(encoding="utf-8")
    assert text.count("period: P1Y") == 1
    changed = write(tmp_path, "ropa.yaml", text.replace("period: P1Y", "period: P2Y"))
    assert load_ropa(changed).digest != load_ropa(DEMO).digest


def test_digest_is_the_digest_of_the_model() -> None:
    """LoadedRopa.digest is ropa_digest of its model: a 64-hex sha256."""
    loaded = load_ropa(DEMO)
    assert loaded.digest == ropa_digest(loaded.ropa)
    assert len(loaded.digest) == 64
    int(loaded.digest, 16)


@pytest.mark.parametrize(("key", "expected"), [("id", ["id"]), ("[school, nr]", ["school", "nr"])])
def test_key_is_one_column_or_a_list(tmp_path: Path, key: str, expected: list[str]) -> None:
    """A SQL location's key may be written as one column or as a list of columns."""
    path = write(
        tmp_path,
        "ropa.yaml",
        CONTROLLER,
        f"""
        activities:
          - id: pupils
            name: Pupils
            locations:
              - {{system: sis, table: students, key: {key}}}
        """,
    )
    location = load_ropa(path).ropa.activities[0].locations[0]
    assert getattr(location, "key", None) == expected
