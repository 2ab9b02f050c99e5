"""`sweeper validate` and `sweeper schema` as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Run = Callable[..., subprocess.CompletedProcess[str]]

DEMO = Path(__file__).parents[2] / "sweeper" / "demo" / "ropa.yaml"
PROBLEM_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): error: (?P<path>\S+): (?P<message>.+)$")

FIVE_MISTAKES = """\
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
timezone: Europe/Amsterdm
systems:
  - {id: sis, name: SIS, kind: sql, connection: {url: "mysql://sweeper:Geheim@db/sis"}}
activities:
  - id: grades
    name: Grades
    retention: {period: 2 years, clock: {column: created}, action: shred}
    locations:
      - {system: sis, table: grades, key: id, where: [{column: x, op: like, value: 1}]}
"""

INCOMPLETE = """\
controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
activities:
  - id: grades
    name: Grades
    purposes: [Education]
    legal_basis: [public_task]
    data_subjects: [pupils]
    data_categories: [grades]
    security_measures: [access control]
    retention: {period: P2Y, clock: modified, action: delete, source: policy, source_kind: policy}
"""


def write(tmp_path: Path, text: str, name: str = "ropa.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_ropa_is_valid(sweeper: Run) -> None:
    """The demo RoPA exits 0 with a one-line summary and nothing on stderr."""
    result = sweeper("validate", str(DEMO))
    assert (result.returncode, result.stderr) == (0, "")
    assert f"{DEMO}: valid: 6 activities, 3 systems, 1 events, 0 warning(s)" in result.stdout


def test_invalid_ropa_prints_every_problem_and_exits_2(sweeper: Run, tmp_path: Path) -> None:
    """Each of five mistakes is one FILE:LINE: error: PATH: MESSAGE line; the exit code is 2."""
    path = write(tmp_path, FIVE_MISTAKES)
    result = sweeper("validate", str(path))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[-1] == "5 error(s), 0 warning(s)"
    matches = [PROBLEM_LINE.match(line) for line in lines[:-1]]
    assert all(matches), lines
    assert sorted((m["file"], int(m["line"]), m["path"]) for m in matches if m) == [
        (str(path), 2, "timezone"),
        (str(path), 4, "systems[0].connection.url"),
        (str(path), 8, "activities[0].retention.action"),
        (str(path), 8, "activities[0].retention.period"),
        (str(path), 10, "activities[0].locations[0].where[0].op"),
    ]
    assert "Traceback" not in result.stderr
    assert "Geheim" not in result.stdout + result.stderr


def test_yaml_error_is_a_message_not_a_traceback(sweeper: Run, tmp_path: Path) -> None:
    """Broken YAML gives one error line with the file and line, and exit code 2."""
    path = write(tmp_path, "controller:\n  name: 'School\n  contact: {}\n")
    result = sweeper("validate", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:")
    assert "error: (top): not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_folder_names_each_file(sweeper: Run, tmp_path: Path) -> None:
    """Problems in a folder RoPA are printed with the file each one is in."""
    folder = tmp_path / "ropa"
    folder.mkdir()
    write(folder, "controller: {name: School, contact: {name: Office}}\nversion: 2\n", "c.yaml")
    write(folder, "activities:\n  - {id: a, name: A, colour: blue}\n", "a.yaml")
    write(folder, "timezone: Mars/Olympus\n", "b.yaml")
    result = sweeper("validate", str(folder))
    assert result.returncode == 2
    found = {
        (m["file"], m["path"])
        for line in result.stderr.splitlines()
        if (m := PROBLEM_LINE.match(line))
    }
    assert found == {
        (str(folder / "a.yaml"), "activities[0].colour"),
        (str(folder / "b.yaml"), "timezone"),
        (str(folder / "c.yaml"), "version"),
    }


def test_missing_path_is_an_error(sweeper: Run, tmp_path: Path) -> None:
    """A RoPA path that does not exist exits 2 with a message, not a traceback."""
    result = sweeper("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_warnings_alone_exit_0(sweeper: Run, tmp_path: Path) -> None:
    """Art. 30 warnings are printed as warnings and do not fail validation."""
    result = sweeper("validate", str(write(tmp_path, INCOMPLETE)))
    assert result.returncode == 0
    assert "warning: activities[0].locations: no locations" in result.stderr
    assert "1 warning(s)" in result.stdout


def test_strict_turns_warnings_into_exit_2(sweeper: Run, tmp_path: Path) -> None:
    """With --strict the same warning is an error and the exit code is 2."""
    path = write(tmp_path, INCOMPLETE)
    result = sweeper("validate", "--strict", str(path))
    assert result.returncode == 2
    assert f"{path}:3: error: activities[0].locations: no locations" in result.stderr


def test_json_format_prints_a_list_of_problems(sweeper: Run, tmp_path: Path) -> None:
    """--format json prints the problems as a JSON list on stdout, still exiting 2."""
    path = write(tmp_path, FIVE_MISTAKES)
    result = sweeper("validate", "--format", "json", str(path))
    assert result.returncode == 2
    problems = json.loads(result.stdout)
    assert isinstance(problems, list)
    assert len(problems) == 5
    assert {
        "file": str(path),
        "line": 2,
        "path": "timezone",
        "severity": "error",
        "message": "'Europe/Amsterdm' is not an IANA timezone such as Europe/Amsterdam",
    } in problems


def test_json_format_of_a_valid_ropa_is_an_empty_list(sweeper: Run) -> None:
    """A valid RoPA without warnings prints [] in JSON format and exits 0."""
    result = sweeper("validate", "--format", "json", str(DEMO))
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


# -- sweeper schema ------------------------------------------------------------------------


def _check(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    """Return where ``value`` breaks ``schema``: the subset of JSON Schema pydantic emits."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _check(value, target, root, where)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [_check(value, s, root, where) for s in schema[key]]
            fits = branches.count([])
            if key == "oneOf" and fits > 1:
                return [f"{where}: {fits} of the oneOf branches fit"]
            if not fits:  # report the branch of the right type, e.g. the object, not null
                typed = [b for b in branches if not b[0].startswith(f"{where}: not ")]
                return min(typed, key=len) if typed else [f"{where}: no {key} branch fits"]
    types = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if "type" in schema and not isinstance(value, types[schema["type"]]):
        return [f"{where}: not {schema['type']}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in enum")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [f"{where}.{k}: required" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if k in properties:
                errors += _check(v, properties[k], root, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}.{k}: not allowed")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: too few items")
        for i, item in enumerate(value):
            errors += _check(item, schema.get("items", {}), root, f"{where}[{i}]")
    return errors


def _schema(sweeper: Run) -> dict[str, Any]:
    result = sweeper("schema")
    assert (result.returncode, result.stderr) == (0, "")
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def _demo_as_json() -> Any:
    """The demo RoPA as a JSON document would hold it (dates as strings)."""
    return json.loads(json.dumps(yaml.safe_load(DEMO.read_text(encoding="utf-8")), default=str))


def test_schema_validates_the_demo_ropa(sweeper: Run) -> None:
    """The printed JSON Schema accepts the demo RoPA, every nested entry included."""
    schema = _schema(sweeper)
    assert _check(_demo_as_json(), schema, schema, "") == []


def test_schema_refuses_a_misspelt_field(sweeper: Run) -> None:
    """The schema forbids unknown fields deep down, as the loader does ('retension')."""
    schema = _schema(sweeper)
    data = _demo_as_json()
    data["activities"][0]["retension"] = data["activities"][0].pop("retention")
    assert _check(data, schema, schema, "") == [".activities[0].retension: not allowed"]


def test_schema_refuses_an_invalid_period(sweeper: Run) -> None:
    """The schema's period pattern refuses a period the loader refuses."""
    schema = _schema(sweeper)
    data = _demo_as_json()
    data["activities"][0]["retention"]["period"] = "P5J"
    [error] = _check(data, schema, schema, "")
    assert error.startswith(".activities[0].retention.period: 'P5J' does not match")


def test_schema_describes_the_top_level(sweeper: Run) -> None:
    """The schema is an object with the RoPA's sections, requiring only the controller."""
    schema = _schema(sweeper)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["controller"]
    assert set(schema["properties"]) == {
        "version",
        "controller",
        "timezone",
        "systems",
        "events",
        "activities",
        "discovery",
    }
