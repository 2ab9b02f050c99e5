"""The RoPA's discovery section: targets and patterns, checked against the systems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sweeper.errors import RopaInvalid
from sweeper.ropa import load_ropa

HEAD = textwrap.dedent(
    """\
    controller: {name: School, contact: {name: Office}, dpo: {name: FG}}
    systems:
      - {id: sis, name: SIS, kind: sql, owner: IT, connection: {url: "sqlite:///sis.db"}}
      - {id: pg, name: PG, kind: sql, owner: IT, connection: {url: "postgresql+psycopg://u@db/x"}}
      - {id: share, name: Share, kind: fileshare, owner: IT, connection: {root: share}}
    """
)


def _problems(tmp_path: Path, discovery: str) -> list[tuple[int | None, str, str]]:
    path = tmp_path / "ropa.yaml"
    path.write_text(HEAD + textwrap.dedent(discovery))
    with pytest.raises(RopaInvalid) as caught:
        load_ropa(path)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def test_a_valid_discovery_section_loads(tmp_path: Path) -> None:
    """Targets and patterns that fit their systems load, with their settings."""
    path = tmp_path / "ropa.yaml"
    path.write_text(
        HEAD
        + textwrap.dedent(
            """\
            discovery:
              targets:
                - {system: pg, databases: ["*"], schemas: [public]}
                - {system: share, depth: 3, base: afdelingen, exclude: ["**/tmp"], sample: false}
              patterns:
                - {id: student_number, regex: '\\bS\\d{7}\\b', names: [stamnummer], sensitivity: 5}
            """
        )
    )
    discovery = load_ropa(path).ropa.discovery
    assert discovery.target("pg") is not None and discovery.target("pg").databases == ["*"]  # type: ignore[union-attr]
    assert discovery.target("share").depth == 3  # type: ignore[union-attr]
    assert discovery.patterns[0].names == ["stamnummer"]


def test_targets_that_do_not_fit_their_systems_are_errors_with_line_and_path(
    tmp_path: Path,
) -> None:
    """Every misfit is reported at once: an unknown system, a system given twice, file-share
    options on SQL, SQL options on a share, databases on a SQLite file, a base leaving the
    share."""
    problems = _problems(
        tmp_path,
        """\
        discovery:
          targets:
            - {system: nope}
            - {system: pg, depth: 2}
            - {system: pg}
            - {system: share, schemas: [x]}
            - {system: sis, databases: [other]}
        """,
    )
    paths = {(line, path) for line, path, _ in problems}
    assert (8, "discovery.targets[0].system") in paths
    assert (9, "discovery.targets[1].depth") in paths
    assert (10, "discovery.targets[2].system") in paths
    assert (11, "discovery.targets[3].schemas") in paths
    assert (12, "discovery.targets[4].databases") in paths
    messages = " ".join(m for _, _, m in problems)
    assert "unknown system 'nope'" in messages and "already a target" in messages
    assert "one database" in messages


def test_a_pattern_must_compile_match_something_and_not_shadow_a_check(tmp_path: Path) -> None:
    """A regex that does not compile, one matching the empty text, and a pattern named like a
    built-in value detector are errors."""
    problems = _problems(
        tmp_path,
        """\
        discovery:
          patterns:
            - {id: a, regex: "("}
            - {id: b, regex: "\\\\d*"}
        """,
    )
    messages = {path: message for _, path, message in problems}
    assert "does not compile" in messages["discovery.patterns[0].regex"]
    assert "matches the empty text" in messages["discovery.patterns[1].regex"]
    problems = _problems(tmp_path, "discovery:\n  patterns:\n    - {id: email, regex: x@y}\n")
    assert [(p, "own check" in m) for _, p, m in problems] == [("discovery.patterns[0].id", True)]


def test_a_base_must_stay_inside_the_share(tmp_path: Path) -> None:
    """A base with '..' is refused."""
    problems = _problems(tmp_path, "discovery:\n  targets:\n    - {system: share, base: ../x}\n")
    assert [p for _, p, _ in problems] == ["discovery.targets[0].base"]


def test_discovery_is_given_once_in_a_folder_and_leaves_the_digest_alone(tmp_path: Path) -> None:
    """In a folder of files the section may appear once; it is not part of the digest, so a
    change to it leaves stored plans valid."""
    folder = tmp_path / "ropa"
    folder.mkdir()
    (folder / "a.yaml").write_text(HEAD)
    before = load_ropa(folder).digest
    (folder / "b.yaml").write_text("discovery:\n  targets:\n    - {system: share, depth: 4}\n")
    assert load_ropa(folder).digest == before
    (folder / "c.yaml").write_text("discovery:\n  patterns: []\n")
    with pytest.raises(RopaInvalid) as caught:
        load_ropa(folder)
    assert [p.path for p in caught.value.problems] == ["discovery"]
    assert "already given" in caught.value.problems[0].message


DIRECTORY = (
    "  - {id: ad, name: AD, kind: directory, owner: IT, connection: "
    '{servers: "ldaps://dc1.school.local", bind_dn: "CN=svc,DC=school,DC=local", '
    "credential: ad}}\n"
)


def test_a_directory_is_a_discovery_only_target_for_a_whole_ldap_tree(tmp_path: Path) -> None:
    """A directory system no activity uses is a target with a base DN, a depth and DN
    exclude patterns."""
    path = tmp_path / "ropa.yaml"
    path.write_text(
        HEAD
        + DIRECTORY
        + textwrap.dedent(
            """\
            discovery:
              targets:
                - system: ad
                  base: "DC=school,DC=local"
                  depth: 3
                  exclude: ["OU=Test*", "*,OU=Oud,DC=school,DC=local"]
                  sample_rows: 20
            """
        )
    )
    target = load_ropa(path).ropa.discovery.target("ad")
    assert target is not None
    assert (target.base, target.depth, target.sample_rows) == ("DC=school,DC=local", 3, 20)


def test_directory_target_settings_that_do_not_fit_are_errors(tmp_path: Path) -> None:
    """A base that is no DN, an exclude pattern without an RDN type and a file-sample bound
    on a directory are each reported at their path."""
    path = tmp_path / "ropa.yaml"
    path.write_text(
        HEAD
        + DIRECTORY
        + textwrap.dedent(
            """\
            discovery:
              targets:
                - {system: ad, base: "school.local", exclude: ["Test*"], sample_bytes: 10}
            """
        )
    )
    with pytest.raises(RopaInvalid) as caught:
        load_ropa(path)
    messages = {p.path: p.message for p in caught.value.problems}
    assert set(messages) == {
        "discovery.targets[0].base",
        "discovery.targets[0].exclude[0]",
        "discovery.targets[0].sample_bytes",
    }
    assert "not a distinguished name" in messages["discovery.targets[0].base"]
    assert "OU=Oud*" in messages["discovery.targets[0].exclude[0]"]
    assert "sample_rows" in messages["discovery.targets[0].sample_bytes"]
