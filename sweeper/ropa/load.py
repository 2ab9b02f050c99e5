"""Load a RoPA from a YAML file or a folder of YAML files, and report every problem at once.

Each problem carries the file, the line where it is known and the dotted path of the field
(``activities[3].retention.period``). Loading never stops at the first problem: parse errors,
model errors and cross-reference errors of all files are collected, then raised together as
``RopaInvalid``. Art. 30 completeness remarks (``sweeper.ropa.lint``) come back as warnings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from sweeper.errors import Problem, RopaInvalid
from sweeper.ropa.model import (
    ID_PATTERN,
    SQL_NAME_PATTERN,
    Action,
    Activity,
    AttributeClock,
    BucketLocation,
    BucketSystem,
    ColumnClock,
    Controller,
    DirectoryLocation,
    DirectorySystem,
    Discovery,
    EventClock,
    FileLocation,
    FileShareSystem,
    MetadataClock,
    PathDateClock,
    Ropa,
    RopaHeader,
    SqlEvent,
    SqlLocation,
    SqlSystem,
    System,
    SystemKind,
    TagClock,
)

_SECTIONS: dict[str, TypeAdapter[Any]] = {
    "systems": TypeAdapter(System),
    "events": TypeAdapter(SqlEvent),
    "activities": TypeAdapter(Activity),
}


class _Loader(yaml.SafeLoader):
    """A YAML 1.2-ish safe loader: only true/false are booleans (a country code NO stays NO)
    and only plain decimals are integers (a student number 012345 stays '012345', where
    YAML 1.1 reads the octal 5349; 1:20 stays '1:20', not 80)."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)

Loc = tuple[str | int, ...]
Origins = dict[tuple[str, str], tuple[str, str, int | None]]


@dataclass
class _Source:
    """One parsed file: its data and the line of every node, by path."""

    file: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Loc) -> int | None:
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())


@dataclass(frozen=True)
class LoadedRopa:
    """A valid RoPA with where it came from and the warnings found while loading it."""

    ropa: Ropa
    path: Path
    base_dir: Path
    files: tuple[str, ...]
    warnings: tuple[Problem, ...]
    origins: Origins

    @property
    def digest(self) -> str:
        return ropa_digest(self.ropa)

    def where(self, section: str, item_id: str) -> str:
        """Return 'file:line' of a system, event or activity, for messages."""
        file, _, line = self.origins.get((section, item_id), (str(self.path), "", None))
        return f"{file}:{line}" if line else file


def ropa_digest(ropa: Ropa) -> str:
    """Return the sha256 of the RoPA's canonical JSON: comments and layout do not count."""
    # What discovery looks at does not change what a plan deletes: it is left out.
    content = ropa.model_dump(mode="json", exclude={"discovery"})
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def format_loc(loc: Iterable[str | int]) -> str:
    """Given a location tuple, return it dotted: ('a', 3, 'b') -> 'a[3].b'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def load_ropa(path: str | Path, *, strict: bool = False) -> LoadedRopa:
    """Given a YAML file or a folder of them, return the validated RoPA.

    Raise RopaInvalid with every problem if any error is found, or, with ``strict``, any
    warning.
    """
    from sweeper.ropa.lint import lint

    root = Path(path)
    files = _ropa_files(root)
    problems: list[Problem] = []
    sources = [s for s in (_parse(f, problems) for f in files) if s is not None]

    fragments = [_validate(source, problems) for source in sources]
    ropa, origins = _merge([f for f in fragments if f is not None], root, problems)
    invalid = {key[1] for f in fragments if f is not None for key in f.invalid_ids}
    if ropa is not None:
        sources_by_file = {f.source.file: f.source for f in fragments if f is not None}
        problems.extend(_cross_check(ropa, origins, sources_by_file, invalid))
    if any(p.severity == "error" for p in problems) or ropa is None:
        raise RopaInvalid(problems)
    warnings = [_locate(w, sources_by_file) for w in lint(ropa, origins)]
    if strict and warnings:
        raise RopaInvalid([_as_error(w) for w in warnings])
    base_dir = root if root.is_dir() else root.parent
    return LoadedRopa(
        ropa=ropa,
        path=root,
        base_dir=base_dir.resolve(),
        files=tuple(s.file for s in sources),
        warnings=tuple(warnings),
        origins=origins,
    )


def _as_error(problem: Problem) -> Problem:
    return Problem(problem.file, problem.path, problem.message, "error", problem.line)


def _locate(problem: Problem, sources: dict[str, _Source]) -> Problem:
    """Given a problem found on the model, return it with the line of its innermost known node."""
    source = sources.get(problem.file)
    if source is None:
        return problem
    line = source.line(_parse_loc(problem.path))
    return Problem(problem.file, problem.path, problem.message, problem.severity, line)


def _ropa_files(root: Path) -> list[Path]:
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise RopaInvalid([Problem(str(root), "", "the folder holds no .yaml or .yml files")])
        return files
    if not root.exists():
        raise RopaInvalid(
            [Problem(str(root), "", "no such file or folder: give the RoPA's YAML file or folder")]
        )
    return [root]


def _parse(path: Path, problems: list[Problem]) -> _Source | None:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(Problem(file, "", f"cannot read the file: {err}"))
        return None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        reason = getattr(err, "problem", None) or str(err)
        context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and context_mark and (mark is None or context_mark.line != mark.line):
            # The parser notices a missing '}' or quote lines later; say where it began.
            reason += f" ({context}, which starts on line {context_mark.line + 1})"
        problems.append(
            Problem(file, "", f"not valid YAML: {reason}", line=mark.line + 1 if mark else None)
        )
        return None
    source = _Source(file, data)
    if node is not None:
        _index_lines(node, (), source, problems)
    return source


def _index_lines(node: yaml.Node, loc: Loc, source: _Source, problems: list[Problem]) -> None:
    """Record the line of every node below ``node``: a mapping entry's line is its key's (a
    block value starts on the next line), a sequence item's is its own."""
    source.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(
                        source.file,
                        format_loc((*loc, key)),
                        "the key appears twice in the same mapping: keep one",
                        line=key_node.start_mark.line + 1,
                    )
                )
            seen.add(key)
            source.lines[(*loc, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*loc, key), source, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            source.lines[(*loc, i)] = child.start_mark.line + 1
            _index_lines(child, (*loc, i), source, problems)


def _data_loc(data: Any, loc: Sequence[str | int]) -> Loc:
    """Drop the union tags pydantic inserts into error locations (('systems', 0, 'sql', …)).

    A tag follows a union's own position (a system, a location, a clock), at most once there,
    so a field that shares a tag's name ('name', 'column') is kept.
    """
    out: list[str | int] = []
    current = data
    tag_dropped = False
    for part in loc:
        if not tag_dropped and part in _UNION_TAGS and _at_union(out):
            tag_dropped = True
            continue
        tag_dropped = False
        out.append(part)
        if isinstance(current, dict) and isinstance(part, str):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(out)


_UNION_TAGS = frozenset(
    {
        "sql",
        "fileshare",
        "bucket",
        "directory",
        "name",
        "column",
        "event",
        "path_date",
        "tag",
        "metadata",
        "attribute",
    }
)


def _at_union(loc: Sequence[str | int]) -> bool:
    """Whether ``loc`` is a system, a location or a clock: where pydantic adds a union tag."""
    if loc and loc[-1] == "clock":
        return True
    return len(loc) >= 2 and isinstance(loc[-1], int) and loc[-2] in ("systems", "locations")


def _message(error: Any) -> str:
    kind, message, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field: check its spelling (`sweeper schema` lists the allowed fields)"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return f"unknown kind {ctx.get('tag')!r}: use one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        kinds = ctx.get("expected_tags") or ", ".join(repr(k.value) for k in SystemKind)
        return f"kind is missing: use one of {kinds}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == ID_PATTERN:
        return (
            f"{error.get('input')!r} is not a valid id: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == SQL_NAME_PATTERN:
        return (
            f"{error.get('input')!r} is not a table or column name: write it as the database "
            "spells it, without quotes or brackets, at most 128 characters"
        )
    if kind in ("literal_error", "enum"):
        return f"{error.get('input')!r} is not allowed: use one of {ctx.get('expected')}"
    return str(message).removeprefix("Value error, ")


def _problems_from(err: ValidationError, source: _Source, prefix: Loc = ()) -> list[Problem]:
    problems = []
    for error in err.errors(include_url=False):
        loc = _data_loc(source.data, (*prefix, *error["loc"]))
        is_system = len(loc) == 2 and loc[0] == "systems"
        if error["type"].startswith("union_tag") and is_system:
            loc = (*loc, "kind")
        problems.append(
            Problem(source.file, format_loc(loc), _message(error), line=source.line(loc))
        )
    return problems


@dataclass
class _Fragment:
    """The valid parts of one file, each list entry with its index in the file."""

    source: _Source
    controller: Controller | None = None
    timezone: str | None = None
    discovery: Discovery | None = None
    sections: dict[str, list[tuple[int, Any]]] = field(
        default_factory=lambda: {name: [] for name in _SECTIONS}
    )
    invalid_ids: dict[tuple[str, str], Loc] = field(default_factory=dict)


def _validate(source: _Source, problems: list[Problem]) -> _Fragment | None:
    """Validate each part of a file on its own, so one bad entry hides no other problem."""
    data = source.data
    if data is None:
        problems.append(Problem(source.file, "", "the file is empty", line=1))
        return None
    if not isinstance(data, dict):
        problems.append(
            Problem(source.file, "", "the file must hold a mapping (key: value)", line=1)
        )
        return None
    fragment = _Fragment(source)
    try:
        header = RopaHeader.model_validate({k: v for k, v in data.items() if k not in _SECTIONS})
        fragment.controller, fragment.timezone = header.controller, header.timezone
        fragment.discovery = header.discovery
    except ValidationError as err:
        problems.extend(_problems_from(err, source))
    for name, adapter in _SECTIONS.items():
        entries = data.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.append(
                Problem(
                    source.file,
                    name,
                    f"{name} must be a list (- entries)",
                    line=source.line((name,)),
                )
            )
            continue
        for i, entry in enumerate(entries):
            try:
                fragment.sections[name].append((i, adapter.validate_python(entry)))
            except ValidationError as err:
                problems.extend(_problems_from(err, source, (name, i)))
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    fragment.invalid_ids.setdefault((name, entry["id"]), (name, i))
    return fragment


def _merge(
    fragments: list[_Fragment], root: Path, problems: list[Problem]
) -> tuple[Ropa | None, Origins]:
    origins: Origins = {}
    controller: tuple[str, Controller] | None = None
    timezone: tuple[str, str] | None = None
    discovery: tuple[str, Discovery] | None = None
    sections: dict[str, list[Any]] = {name: [] for name in _SECTIONS}
    invalid = {
        key: (f.source.file, format_loc(loc), f.source.line(loc))
        for f in reversed(fragments)
        for key, loc in f.invalid_ids.items()
    }
    for fragment in fragments:
        source = fragment.source
        if fragment.controller is not None:
            if controller is not None:
                problems.append(
                    Problem(
                        source.file,
                        "controller",
                        f"the controller is already given in {controller[0]}: give it once",
                        line=source.line(("controller",)),
                    )
                )
            else:
                controller = (source.file, fragment.controller)
                origins[("controller", "")] = (
                    source.file,
                    "controller",
                    source.line(("controller",)),
                )
        if fragment.timezone is not None:
            if timezone is not None and timezone[1] != fragment.timezone:
                problems.append(
                    Problem(
                        source.file,
                        "timezone",
                        f"the timezone is already given as {timezone[1]!r} in {timezone[0]}: "
                        "give it once",
                        line=source.line(("timezone",)),
                    )
                )
            elif timezone is None:
                timezone = (source.file, fragment.timezone)
        if fragment.discovery is not None:
            if discovery is not None:
                problems.append(
                    Problem(
                        source.file,
                        "discovery",
                        f"discovery is already given in {discovery[0]}: give it once",
                        line=source.line(("discovery",)),
                    )
                )
            else:
                discovery = (source.file, fragment.discovery)
                origins[("discovery", "")] = (
                    source.file,
                    "discovery",
                    source.line(("discovery",)),
                )
        for name, entries in fragment.sections.items():
            for i, entry in entries:
                key = (name, entry.id)
                loc = (name, i)
                if key in origins or key in invalid:
                    file, path, line = origins.get(key) or invalid[key]
                    problems.append(
                        Problem(
                            source.file,
                            format_loc((*loc, "id")),
                            f"duplicate id {entry.id!r}: also at {file}:{line} ({path})",
                            line=source.line((*loc, "id")),
                        )
                    )
                    continue
                origins[key] = (source.file, format_loc(loc), source.line(loc))
                sections[name].append(entry)
    if controller is None:
        if fragments and not any("controller" in f.source.data for f in fragments):
            problems.append(
                Problem(
                    str(root),
                    "controller",
                    "required field is missing: name the controller (name, contact, dpo)",
                    line=1 if not root.is_dir() else None,
                )
            )
        return None, origins
    ropa = Ropa.model_construct(
        version=1,
        controller=controller[1],
        timezone=timezone[1] if timezone else "Europe/Amsterdam",
        systems=sections["systems"],
        events=sections["events"],
        activities=sections["activities"],
        discovery=discovery[1] if discovery else Discovery(),
    )
    return ropa, origins


def _cross_check(
    ropa: Ropa, origins: Origins, sources: dict[str, _Source], invalid: set[str]
) -> list[Problem]:
    """Errors that need more than one part of the RoPA: references and whether clocks fit.

    References to entries that failed validation themselves are not reported again.
    """
    problems: list[Problem] = []

    def add(section: str, item_id: str, sub: Loc, message: str) -> None:
        file, path, _ = origins[(section, item_id)]
        source = sources[file]
        loc = _parse_loc(path) + sub
        problems.append(Problem(file, format_loc(loc), message, line=source.line(loc)))

    systems = {s.id: s for s in ropa.systems}
    events = {e.id: e for e in ropa.events}
    for event in ropa.events:
        target = systems.get(event.system)
        if target is None and event.system not in invalid:
            add(
                "events",
                event.id,
                ("system",),
                f"unknown system {event.system!r}" + _known(systems, "systems"),
            )
        elif target is not None and not isinstance(target, SqlSystem):
            add(
                "events",
                event.id,
                ("system",),
                f"events are read from SQL systems; {event.system!r} is a {target.kind} system",
            )

    for activity in ropa.activities:
        rule = activity.retention
        rule_clock = rule.clock if rule is not None else None
        if isinstance(rule_clock, EventClock) and rule_clock.event not in events.keys() | invalid:
            add(
                "activities",
                activity.id,
                ("retention", "clock", "event"),
                f"unknown event {rule_clock.event!r}" + _known(events, "events"),
            )
        for i, location in enumerate(activity.locations):
            here: Loc = ("locations", i)
            system = systems.get(location.system)
            expected = location.kind
            if system is not None and system.kind != expected:
                add(
                    "activities",
                    activity.id,
                    (*here, "system"),
                    f"system {system.id!r} is a {system.kind} system but this is a {expected} "
                    "location",
                )
                continue
            clock = location.clock or rule_clock
            own = location.clock is not None
            for where, message in _clock_problems(location, clock, events, invalid, own):
                if where:
                    add("activities", activity.id, here + where, message)
                elif own:
                    add("activities", activity.id, (*here, "clock"), message)
                else:
                    add(
                        "activities",
                        activity.id,
                        here,
                        f"{message}; this location takes its clock from retention.clock: "
                        "give it a clock of its own",
                    )
            if rule is not None:
                for where, message in _action_problems(location, rule.action, system):
                    add("activities", activity.id, here + where, message)
    if ("discovery", "") in origins:
        for where, message in _discovery_problems(ropa.discovery, systems, invalid):
            add("discovery", "", where, message)
    return problems


_SQL_ONLY = ("databases", "schemas")
_NOT_SQL = ("base", "depth")


def _discovery_problems(
    discovery: Discovery, systems: dict[str, Any], invalid: set[str]
) -> Iterator[tuple[Loc, str]]:
    """Yield (where under discovery, message) for targets that do not fit their systems and
    patterns that clash."""
    from sweeper.detect import VALUE_DETECTORS

    seen: dict[str, int] = {}
    for i, target in enumerate(discovery.targets):
        here: Loc = ("targets", i)
        if target.system in seen:
            yield (
                (*here, "system"),
                f"system {target.system!r} is already a target (targets[{seen[target.system]}]):"
                " a system is discovered once; merge the two",
            )
            continue
        seen[target.system] = i
        system = systems.get(target.system)
        if system is None:
            if target.system not in invalid:
                yield (
                    (*here, "system"),
                    f"unknown system {target.system!r}" + _known(systems, "systems"),
                )
            continue
        if system.kind == "sql":
            for name in _NOT_SQL:
                if getattr(target, name) is not None:
                    yield (
                        (*here, name),
                        f"{name} is for file shares, buckets and directories; a SQL system is "
                        "narrowed with schemas (and widened with databases)",
                    )
            url = system.connection.url.lower()
            if target.databases and not url.startswith(("postgresql", "mysql", "mariadb")):
                yield (
                    (*here, "databases"),
                    "databases is for PostgreSQL and MariaDB/MySQL servers; this connection "
                    "reaches one database",
                )
        else:
            for name in _SQL_ONLY:
                if getattr(target, name):
                    yield (
                        (*here, name),
                        f"{name} is for SQL systems; {target.system!r} is a {system.kind} system",
                    )
        base = target.base or ""
        if system.kind == "fileshare" and (base.startswith("/") or ".." in base.split("/")):
            yield (
                (*here, "base"),
                "base must be a folder below the share's root, relative, without '..'",
            )
        if system.kind == "directory":
            yield from _directory_target_problems(target, here)
    names: dict[str, int] = {}
    for i, pattern in enumerate(discovery.patterns):
        if pattern.id in VALUE_DETECTORS:
            yield (
                ("patterns", i, "id"),
                f"{pattern.id!r} is a built-in detector with its own check; give the pattern "
                f"another id (built-in: {', '.join(sorted(VALUE_DETECTORS))})",
            )
        if pattern.id in names:
            yield (
                ("patterns", i, "id"),
                f"pattern {pattern.id!r} is already defined (patterns[{names[pattern.id]}])",
            )
        names.setdefault(pattern.id, i)


def _directory_target_problems(target: Any, here: Loc) -> Iterator[tuple[Loc, str]]:
    """Yield (where, message) for a directory target's settings that do not fit a directory:
    a base that is no DN, an exclude pattern that names no RDN, file-sample bounds."""
    from sweeper.ropa.model import _check_dn

    if target.base is not None:
        try:
            _check_dn(target.base, "base")
        except ValueError as err:
            yield (*here, "base"), str(err)
    for j, pattern in enumerate(target.exclude):
        if not all("=" in part or part.strip() == "*" for part in pattern.split(",")):
            yield (
                (*here, "exclude", j),
                f"{pattern!r} is no DN pattern: for a directory, exclude OUs by a DN with * "
                "(OU=Test*,DC=school,DC=local) or by an RDN anywhere below the base (OU=Oud*)",
            )
    for name in ("sample_bytes", "sample_files"):
        if getattr(target, name) is not None:
            yield (
                (*here, name),
                f"{name} is for files; a directory's sample is bounded by sample_rows "
                "(accounts read per OU)",
            )


def _action_problems(location: Any, action: Action, system: Any) -> Iterator[tuple[Loc, str]]:
    """Yield (where under the location, message) for an action the location cannot take."""
    if isinstance(location, BucketLocation) and action not in (Action.DISABLE, Action.MOVE):
        yield from _bucket_action_problems(location, action, system)
        return
    if isinstance(location, DirectoryLocation) or action in (Action.DISABLE, Action.MOVE):
        yield from _directory_action_problems(location, action, system)
        return
    if action is Action.ANONYMISE:
        if isinstance(location, FileLocation):
            yield (), "files cannot be anonymised: use delete, quarantine or review"
        elif not location.anonymise:
            yield (
                ("anonymise",),
                (
                    "the rule's action is anonymise: list the columns to clear "
                    "(anonymise: {column: null, other: fixed value})"
                ),
            )
    elif action is Action.QUARANTINE:
        if isinstance(location, SqlLocation):
            yield (), "SQL rows cannot be quarantined: use delete, anonymise or review"
        elif isinstance(system, FileShareSystem) and system.connection.quarantine_root is None:
            yield (
                ("system",),
                (
                    f"the rule's action is quarantine, but system {system.id!r} has no "
                    "connection.quarantine_root to move files to"
                ),
            )


def _bucket_action_problems(
    location: BucketLocation, action: Action, system: Any
) -> Iterator[tuple[Loc, str]]:
    """Yield (where under the location, message) for an action a bucket location cannot take."""
    if action is Action.ANONYMISE:
        yield (), "objects cannot be anonymised: use delete, quarantine or review"
    elif action is Action.QUARANTINE and isinstance(system, BucketSystem):
        quarantine = system.connection.quarantine
        if quarantine is None:
            yield (
                ("system",),
                (
                    f"the rule's action is quarantine, but system {system.id!r} has no "
                    "connection.quarantine (bucket and prefix) to copy objects to"
                ),
            )
        elif quarantine.bucket == location.bucket and (
            quarantine.prefix.startswith(location.prefix)
            or location.prefix.startswith(quarantine.prefix)
        ):
            yield (
                ("prefix",),
                (
                    f"the quarantine (bucket {quarantine.bucket!r}, prefix "
                    f"{quarantine.prefix!r}) overlaps this location: quarantined objects "
                    "would be scanned again; give the quarantine a prefix of its own"
                ),
            )


_BUCKET_CLOCKS = ("modified", "mtime", "created")


def _bucket_clock_problems(location: BucketLocation, clock: Any) -> Iterator[tuple[Loc, str]]:
    """Yield (where under the location, message) for a clock a bucket location cannot read."""
    groups = location.regex_groups
    if isinstance(clock, str) and clock not in _BUCKET_CLOCKS:
        yield (
            (),
            (
                f"S3 does not record {clock!r} times: use modified (LastModified), created "
                "(the oldest version's LastModified), {path_date: GROUP}, {tag: KEY}, "
                "{metadata: NAME} or {event: ID}"
            ),
        )
    elif isinstance(clock, ColumnClock):
        yield (
            (),
            (
                "a bucket location has no columns: use modified, created, {path_date: GROUP}, "
                "{tag: KEY}, {metadata: NAME} or {event: ID}"
            ),
        )
    elif isinstance(clock, PathDateClock) and clock.path_date not in groups:
        yield (
            ("key_regex",),
            (
                f"the clock reads the date from group {clock.path_date!r}, which key_regex "
                f"does not define: add (?P<{clock.path_date}>...)"
            ),
        )
    elif isinstance(clock, EventClock) and location.subject_group not in groups:
        yield (
            ("key_regex",),
            (
                "an event clock needs the subject from the key: add a named group "
                f"(?P<{location.subject_group}>...) to key_regex"
            ),
        )


def _directory_action_problems(
    location: Any, action: Action, system: Any
) -> Iterator[tuple[Loc, str]]:
    """Yield (where under the location, message) for an action that does not fit a directory
    location, or a directory action (disable, move) on another kind of location."""
    if not isinstance(location, DirectoryLocation):
        what = (
            "SQL rows"
            if isinstance(location, SqlLocation)
            else "objects"
            if isinstance(location, BucketLocation)
            else "files"
        )
        yield (), f"{what} cannot be {action.value}d: disable and move are for directory accounts"
        return
    openldap = isinstance(system, DirectorySystem) and system.connection.flavour == "openldap"
    if action is Action.QUARANTINE:
        yield (), "accounts cannot be quarantined: use disable, move, delete, anonymise or review"
    elif action is Action.ANONYMISE and not location.anonymise:
        yield (
            ("anonymise",),
            "the rule's action is anonymise: list the attributes to clear "
            "(anonymise: {displayName: null, mail: null})",
        )
    elif action is Action.MOVE and location.staging_ou is None:
        yield (("staging_ou",), "the rule's action is move: name the OU to move accounts to")
    elif action in (Action.DISABLE, Action.DELETE) and openldap and not system.connection.disable:
        yield (
            ("system",),
            f"the rule's action is {action.value}, which disables accounts first, but OpenLDAP "
            f"system {system.id!r} does not say how: set connection.disable "
            "(e.g. {pwdAccountLockedTime: 000001010000Z})",
        )


def _clock_problems(
    location: Any, clock: Any, events: dict[str, SqlEvent], invalid: set[str], own: bool
) -> Iterator[tuple[Loc, str]]:
    """Yield (where under the location, message) for a clock that does not fit its location;
    an empty ``where`` means the clock itself."""
    if clock is None:
        return
    if isinstance(location, BucketLocation):
        if isinstance(clock, EventClock) and own and clock.event not in events.keys() | invalid:
            yield ("clock", "event"), f"unknown event {clock.event!r}" + _known(events, "events")
        yield from _bucket_clock_problems(location, clock)
        return
    if isinstance(location, FileLocation) and isinstance(clock, TagClock | MetadataClock):
        yield (
            (),
            (
                "a file has no tags or metadata dates: use modified, created, accessed, "
                "{path_date: GROUP} or {event: ID}"
            ),
        )
        return
    if isinstance(clock, EventClock):
        if own and clock.event not in events and clock.event not in invalid:
            yield ("clock", "event"), f"unknown event {clock.event!r}" + _known(events, "events")
        if isinstance(location, SqlLocation) and location.subject is None:
            yield ("subject",), "an event clock needs the subject column: add subject: COLUMN"
        if isinstance(location, DirectoryLocation) and location.subject is None:
            yield (
                ("subject",),
                "an event clock needs the attribute that holds the subject: add "
                "subject: ATTRIBUTE (e.g. employeeID)",
            )
        if (
            isinstance(location, FileLocation)
            and location.subject_group not in location.regex_groups
        ):
            yield (
                ("path_regex",),
                (
                    "an event clock needs the subject from the path: add a named group "
                    f"(?P<{location.subject_group}>...) to path_regex"
                ),
            )
    elif isinstance(location, DirectoryLocation):
        if not isinstance(clock, AttributeClock) and clock not in (
            "created",
            "modified",
            "last_login",
        ):
            yield (
                (),
                "a directory location needs clock created, modified, last_login, "
                f"{{attribute: NAME}} or {{event: ID}}, not {_clock_name(clock)}",
            )
    elif isinstance(location, SqlLocation) and not isinstance(clock, ColumnClock):
        yield (
            (),
            (
                "a SQL location needs clock {column: NAME} or {event: ID}, "
                f"not {_clock_name(clock)}"
            ),
        )
    elif isinstance(location, FileLocation) and (
        isinstance(clock, AttributeClock) or clock == "last_login"
    ):
        yield (
            (),
            "a file-share location needs clock modified, created, accessed, "
            f"{{path_date: GROUP}} or {{event: ID}}, not {_clock_name(clock)}: attributes and "
            "logons belong to directory accounts",
        )
    elif isinstance(location, FileLocation) and isinstance(clock, ColumnClock):
        yield (
            (),
            (
                "a file-share location has no columns: use modified, created, accessed, "
                "{path_date: GROUP} or {event: ID}"
            ),
        )
    elif (
        isinstance(location, FileLocation)
        and isinstance(clock, PathDateClock)
        and clock.path_date not in location.regex_groups
    ):
        yield (
            ("path_regex",),
            (
                f"the clock reads the date from group {clock.path_date!r}, which path_regex "
                f"does not define: add (?P<{clock.path_date}>...)"
            ),
        )


def _parse_loc(path: str) -> Loc:
    """Given 'activities[3].locations[0].clock', return ('activities', 3, 'locations', 0,
    'clock')."""
    return tuple(
        int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)
    )


def _known(ids: dict[str, Any], what: str) -> str:
    return f" (known: {', '.join(sorted(ids))})" if ids else f" (the RoPA defines no {what})"


def _clock_name(clock: Any) -> str:
    """Given a clock, return it as the RoPA spells it: 'modified', {column: created}."""
    if isinstance(clock, str):
        return repr(clock)
    name, value = next(iter(clock.model_dump().items()))
    return f"{{{name}: {value}}}"
