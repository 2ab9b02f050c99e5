"""Discovery for the file-share connector: folders to a depth, with file counts, bytes and age;
bounded samples of their files; which locations cover which folders.

Stores
    The walk is the scan's (``connectors.fileshare``): it never follows a link and never
    leaves the root, and an unreadable folder is a finding (here ``uninspectable``) while the
    walk goes on. Every folder down to ``depth`` levels below the root (or ``base``) that
    holds files is a store: one at ``depth`` counts everything below it (``extent:
    subtree``); one above counts only its own files (``extent: files``), its sub-folders being
    stores of their own. The root's own files are the store ``.``. Each store has its files,
    bytes, the oldest and newest modification time and how many files are stale (not
    modified for ``stale_after``). Folders matching ``exclude`` and places other systems
    discover (``skip``) are not entered.

Samples
    While walking, each store keeps a few files to read, the same ones on every run of an
    unchanged tree (those whose path hashes lowest): ``files`` of a type whose content is read
    (CSV, TSV, XLSX and plain text: .txt, .log, .md, .json, .xml, .html, .sql, .vcf, .ldif,
    …), and ``names`` more of any type, judged by name and size only. A file is opened
    relative to its folder without following a link, with ``O_NOATIME`` (allowed to its owner,
    root and CAP_FOWNER); where that is refused the file is not read when
    ``keep_access_times`` is set, since a rule may use the ``accessed`` clock. At most
    ``bytes`` are read; a spreadsheet is read row by row (openpyxl, read-only), up to ``rows``
    rows of its first five sheets, and skipped when its sheets and shared strings unpack to
    more than 32 times ``bytes`` (``connectors._content``, shared with the bucket connector).

Coverage
    A location covers a folder fully when one of its include patterns ends in ``**`` below a
    folder at or above it (``exports/**``, ``**``), or, for a folder's own files, is ``*`` in
    that folder (``exports/*``), and no exclude pattern reaches into it; partly when an include
    pattern may select files in it (``**/*.pdf``); not at all when the walk would never enter
    it. A single file is covered when the location selects it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
from collections.abc import Iterator
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Final

from connectors._content import READABLE, Candidate, chosen, keep, samples
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
from connectors.fileshare import (
    _FILE_FLAGS,
    _FINDING,
    _ITEM,
    _NOATIME,
    Selection,
    _from_ns,
    _reason,
    _Refused,
    _segments,
    _to_ns,
    _Tree,
    _walk_in_workers,
    _Walker,
    _WalkPlan,
    decode_key,
    encode_key,
    glob_literal,
    translate_glob,
    translate_glob_ancestors,
)
from sweeper.errors import ConnectorError
from sweeper.ropa.model import FileLocation

if TYPE_CHECKING:
    from connectors.fileshare import FileShareConnector

_SAY_EVERY: Final = 1000
"""Files listed between two calls of ``DiscoverRequest.listed``."""


@dataclasses.dataclass
class _Store:
    where: str  # relative to the root, "." for the root's own files
    extent: str
    files: int = 0
    size: int = 0
    oldest: int | None = None
    newest: int | None = None
    stale: int = 0
    readable: int = 0  # files of a type whose content is read
    # heaps (connectors._content.keep): the files to read, and to judge by name
    read: list[Candidate] = dataclasses.field(default_factory=list)
    named: list[Candidate] = dataclasses.field(default_factory=list)


def place_of(path: str) -> tuple[str, ...]:
    """Return a folder's place: ``("fileshare", *its real path's parts)``."""
    return ("fileshare", *[p for p in os.path.realpath(path).split("/") if p])


def root_parts(connector: FileShareConnector) -> tuple[str, ...]:
    return place_of(connector.root)


def _rel_parts(where: str) -> list[str]:
    if where in ("", "."):
        return []
    return [p for p in os.fsdecode(decode_key(where)).split("/") if p]


def scope(connector: FileShareConnector, request: DiscoverRequest) -> tuple[str, ...]:
    return root_parts(connector) + tuple(_rel_parts(request.base or ""))


def locate(connector: FileShareConnector, store: DiscoveredStore) -> tuple[str, ...]:
    return root_parts(connector) + tuple(_rel_parts(store.where))


# -- discover -----------------------------------------------------------------------------------


def discover(
    connector: FileShareConnector, request: DiscoverRequest
) -> Iterator[DiscoveredStore | ScanFinding]:
    root_fd, root_real = connector._open_root()
    tree = _Tree(root_fd, "share")
    base = (request.base or "").strip("/")
    prefix = base + "/" if base else ""
    try:
        try:
            walk_fd = tree.folder(os.fsencode(base)) if base else root_fd
        except _Refused as refused:
            raise ConnectorError(
                connector.system.id, f"discovery base {base!r}: {refused.message}"
            ) from None
        own = root_parts(connector) + tuple(_rel_parts(base))
        exclude = list(request.exclude)
        for place in request.skip:
            if place[: len(own)] == own and len(place) > len(own):
                exclude.append(glob_literal("/".join(place[len(own) :])) + "/**")
        plan = _WalkPlan(
            root=os.path.join(root_real, base) if base else root_real,
            selection=Selection.compile(["**"], exclude),
            stat_clock=lambda st: st.st_mtime_ns,
            path_dates=None,
            cutoff_ns=None,
        )
        depth = max(0, request.depth)
        stale_ns = _to_ns(request.now - request.stale_after)
        tz = request.now.tzinfo
        assert tz is not None  # _to_ns refuses a naive now
        limits = (
            int(request.options.get("sample_files", 10)),
            int(request.options.get("sample_names", 50)),
        )
        stores: dict[str, _Store] = {}
        by_dir: dict[str, _Store] = {}
        workers = connector._workers()
        records = (
            _walk_in_workers(walk_fd, plan, workers, connector.system.id)
            if workers
            else _Walker(plan).run(walk_fd)
        )
        listed, unsaid = request.listed, 0
        with contextlib.closing(records):
            for record in records:
                tag = record[0]
                if tag == _ITEM:
                    unsaid += 1
                    if unsaid == _SAY_EVERY:
                        listed(unsaid)
                        unsaid = 0
                    _, path, size, _, mtime, _ = record
                    folder = path.rpartition("/")[0]
                    store = by_dir.get(folder)
                    if store is None:
                        store = by_dir[folder] = _store_of(stores, folder, depth, prefix)
                    store.files += 1
                    store.size += size
                    if store.oldest is None or mtime < store.oldest:
                        store.oldest = mtime
                    if store.newest is None or mtime > store.newest:
                        store.newest = mtime
                    if mtime < stale_ns:
                        store.stale += 1
                    dot = path.rfind(".")
                    if dot > path.rfind("/") and path[dot + 1 :].lower() in READABLE:
                        store.readable += 1
                        keep(store.read, limits[0], path, size)
                    else:
                        keep(store.named, limits[1], path, size)
                elif tag == _FINDING and record[1] == "unreadable":
                    _, _, path, message = record
                    where = "." if path == "." and not prefix else _key(prefix, path)
                    yield ScanFinding("uninspectable", where, message)
        listed(unsaid)
        candidates = connector._discovery_samples
        for where in sorted(stores):
            store = stores[where]
            candidates[where] = (
                [(_key(prefix, p), s) for p, s, _ in chosen(store.read)],
                [(_key(prefix, p), s) for p, s, _ in chosen(store.named)],
            )
            yield DiscoveredStore(
                "folder",
                where,
                store.files,
                store.size,
                None if store.oldest is None else _from_ns(store.oldest, tz),
                None if store.newest is None else _from_ns(store.newest, tz),
                store.stale,
                {
                    "extent": store.extent,
                    "depth": depth,
                    "count": "exact",
                    "readable_files": store.readable,
                },
            )
    finally:
        tree.close()


def _key(prefix: str, path: str) -> str:
    return encode_key(os.fsencode(prefix + path))


def _store_of(stores: dict[str, _Store], folder: str, depth: int, prefix: str) -> _Store:
    """Given a file's folder (relative to the walk's root), return the store it counts in."""
    parts = folder.split("/") if folder else []
    if len(parts) >= depth:
        rel, extent = "/".join(parts[:depth]), "subtree"
    else:
        rel, extent = folder, "files"
    full = (prefix + rel if rel else prefix.rstrip("/")) if prefix else rel
    where = _key("", full) if full else "."
    store = stores.get(where)
    if store is None:
        store = stores[where] = _Store(where, extent)
    return store


# -- sample -------------------------------------------------------------------------------------


def sample(connector: FileShareConnector, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
    store = request.store
    if store.kind != "folder":
        return
    found = connector._discovery_samples.get(store.where)
    if found is None:
        return  # not discovered by this connector: nothing known to read
    read, named = found
    root_fd, _ = connector._open_root()
    tree = _Tree(root_fd, "share")
    failed: list[str] = []
    try:
        for key, size in read[: request.files]:
            try:
                yield from _read(tree, key, size, request)
            except OSError as err:
                failed.append(_reason(err))
            except _Refused as refused:
                failed.append(refused.message)
        for key, size in named[: request.names] + read[request.files :]:
            name = os.fsdecode(decode_key(key)).rpartition("/")[2]
            yield Sample(key, name, size=size, skipped="judged by name and size only")
    finally:
        tree.close()
    if failed:
        yield ScanFinding(
            "uninspectable",
            store.where,
            f"{len(failed)} sampled file(s) in {store.where} could not be read ({failed[0]})",
        )


def _read(tree: _Tree, key: str, size: int, request: SampleRequest) -> Iterator[Sample]:
    raw = decode_key(key)
    folder, _, name_bytes = raw.rpartition(b"/")
    name = os.fsdecode(name_bytes)
    fd = _open_file(tree.folder(folder), name_bytes, request.keep_access_times)
    if fd is None:
        yield Sample(
            key,
            name,
            size=size,
            skipped="not read: reading would change its access time (run as its owner, "
            "as root or with CAP_FOWNER, or set keep_access_times: false)",
        )
        return
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if S_ISREG(st.st_mode):
            yield from samples(key, name, st.st_size, handle, request)


def _open_file(folder: int, name: bytes, keep_access_times: bool) -> int | None:
    """Open a file for reading without following a link, without changing its access time
    where the kernel allows; None when it does not and ``keep_access_times`` is set."""
    try:
        return os.open(name, _FILE_FLAGS | _NOATIME, dir_fd=folder)
    except PermissionError as err:
        if err.errno != errno.EPERM or not _NOATIME:
            raise
        if keep_access_times:
            return None
        return os.open(name, _FILE_FLAGS, dir_fd=folder)


# -- coverage -----------------------------------------------------------------------------------


def coverage(
    connector: FileShareConnector, location: Any, place: tuple[str, ...], store: DiscoveredStore
) -> str:
    if not isinstance(location, FileLocation):
        return NONE
    mine = root_parts(connector)
    if place[: len(mine)] != mine:
        return NONE
    rel = "/".join(place[len(mine) :])
    selection = _selection(connector, location)
    if store.kind == "file":
        return FULL if selection.covers(rel) else NONE
    if store.kind != "folder":
        return NONE
    ancestors = _ancestors(rel)
    if any(not selection.enters(a) for a in [*ancestors, rel] if a):
        return NONE
    subtree = (store.details or {}).get("extent") != "files"
    result = NONE
    for pattern in location.include:
        found = _include_covers(pattern, rel, ancestors, subtree)
        if found == FULL:
            result = FULL
            break
        if found == PARTIAL:
            result = PARTIAL
    if result == FULL and any(_reaches(p, rel, subtree) for p in location.exclude):
        result = PARTIAL
    return result


def _selection(connector: FileShareConnector, location: FileLocation) -> Selection:
    cache = connector._discovery_selections
    key = (tuple(location.include), tuple(location.exclude))
    if key not in cache:
        cache[key] = Selection.compile(location.include, location.exclude)
    return cache[key]


def _ancestors(rel: str) -> list[str]:
    """Given a folder's path, return the folders above it, the root ("") first."""
    if not rel:
        return []
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts))]


def _fullmatch(pattern_segments: list[str], path: str) -> bool:
    """Given the segments of a folder pattern, return whether it matches the folder ``path``
    (a trailing ``**`` may match no segment at all)."""
    if not pattern_segments:
        return path == ""
    if re.fullmatch(translate_glob("/".join(pattern_segments)), path) is not None:
        return True
    return pattern_segments[-1] == "**" and _fullmatch(pattern_segments[:-1], path)


def _include_covers(pattern: str, rel: str, ancestors: list[str], subtree: bool) -> str:
    """Given one include pattern and a folder (with the folders above it), return FULL if it
    selects every file the store counts, PARTIAL if it may select some, else NONE."""
    segments = _segments(pattern)
    if not segments:
        return NONE
    if segments[-1] == "**":
        head = segments[:-1]
        if any(_fullmatch(head, folder) for folder in [*ancestors, rel]):
            return FULL
    elif not subtree and segments[-1] == "*" and _fullmatch(segments[:-1], rel):
        return FULL
    if _fullmatch(segments[:-1], rel) and segments[-1] != "**":
        return PARTIAL  # some of the folder's own files
    below = translate_glob_ancestors(pattern)
    if subtree and below is not None and re.fullmatch(below, rel):
        return PARTIAL  # files further down may match
    return NONE


def _reaches(pattern: str, rel: str, subtree: bool) -> bool:
    """Given an exclude pattern, return whether it may leave out files the store counts."""
    segments = _segments(pattern)
    if not segments:
        return False
    if _fullmatch(segments[:-1], rel):
        return True
    below = translate_glob_ancestors(pattern)
    return subtree and below is not None and re.fullmatch(below, rel) is not None
