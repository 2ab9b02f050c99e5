"""The file-share connector: files under a local or mounted directory tree.

A CIFS or NFS mount is how most Linux hosts see a Windows file server, so "local or mounted"
covers the common school file server. The system's ``connection.root`` is the share root; a
relative root is resolved against the RoPA file's folder.

How a scan walks
    Depth first, one directory at a time, with ``os.scandir`` on directory file descriptors:
    every directory is opened relative to its parent with ``O_NOFOLLOW``, so the walk never
    follows a symbolic link and never leaves the root, even when a directory is swapped for a
    link while the scan runs. Symbolic links are never items and never followed. A link whose
    target resolves outside the root is reported as a ``symlink_outside`` finding; a link that
    stays inside the root is passed over silently (what it points to is scanned, or excluded,
    under its own path). A directory that cannot be opened or listed is reported as an
    ``unreadable`` finding and the walk goes on; entries that cannot be examined are counted
    in one ``unreadable`` finding per directory. A finding's ``where`` is the key of the link
    or directory (``.`` for the root). Only regular files are items: sockets, FIFOs
    and device nodes are passed over. Directories are opened with ``O_NOATIME`` where the
    kernel allows it (as their owner or as root), and files are only ``lstat``-ed, never
    opened, so a scan changes no time stamp in the tree. Items come in the order of the
    walk, each directory in the order the file system lists it: the same order on every
    scan of an unchanged tree.

Patterns
    ``include`` and ``exclude`` are glob patterns matched against the whole path relative to
    the root, with ``/`` between segments: ``*`` matches any run of characters within one
    segment, ``?`` one character, ``[abc]``, ``[a-z]`` and ``[!abc]`` one character of (or
    not of) a class, and a segment that is exactly ``**`` matches any number of whole
    segments, zero included (``**/*.pdf``, ``homes/**/cache/*``, ``exports/**``). Anywhere
    else ``**`` is the same as ``*``. ``*`` and ``?`` also match a leading dot: hidden files
    are files like any other. There is no escape character; write ``[*]`` for a literal star.
    A pattern ending in ``/`` means everything below that directory (``tmp/`` is ``tmp/**``).
    Matching is case-sensitive, also on a case-insensitive CIFS mount. A file is selected when
    an include pattern matches it and no exclude pattern does. A directory that an exclude
    pattern matches (``**/tmp``, or ``homes/*/cache`` by way of ``homes/*/cache/**``) is not
    entered at all, and neither is a directory below which no include pattern can match.

Clocks
    ``modified``/``mtime`` read ``st_mtime``, ``accessed``/``atime`` read ``st_atime``,
    ``ctime`` reads ``st_ctime``. ``created`` reads the birth time where the platform's ``stat``
    gives one (``st_birthtime`` on macOS and the BSDs); elsewhere, Linux included, it falls
    back to ``st_ctime``, which on Linux is the inode *change* time: it moves on every rename,
    chmod, chown or write, so it is a "created" that can only be later than the real one (a
    file looks younger, never older, than it is, so nothing is deleted early). Note also that
    many mounts use ``relatime`` or ``noatime``, which make ``accessed`` coarse or frozen.
    ``{path_date: GROUP}`` parses the named group of ``path_regex`` with the clock's strptime
    format, at midnight in the request's timezone unless the format reads a time and zone. An
    item whose path has no such date keeps ``clock=None`` and a ``problem``. ``{event: ID}``
    leaves ``clock=None``: the lifecycle reads the event by the item's subject, which comes
    from the ``subject_group`` of ``path_regex``.

Keys
    An item's key is its path relative to the root with ``/`` separators. File names are
    bytes on POSIX and may be anything but ``/`` and NUL: spaces, newlines, Unicode in NFC or
    NFD (kept as found, never normalised: they are different files), or bytes that are not
    UTF-8 at all. A key must be text that SQLite, JSON and CSV can store, so a path that is
    valid UTF-8 is its own key and any other path is ``!b64:`` and its URL-safe base64 bytes
    (as is a valid path that happens to begin with ``!b64:``, so that keys decode without
    ambiguity). ``encode_key`` and ``decode_key`` convert; ``display_key`` makes a key
    readable in a report, with backslash escapes for control characters and stray bytes.

Items
    ``size`` is ``st_size``; the fingerprint is ``"{st_size}:{st_mtime_ns}:{st_ino}"``, which
    changes when the content is written or the file is replaced. A file with more than one
    hard link says so in ``details`` (``{"hard_links": 2}``): deleting one name of it does
    not delete its data.

Looking up
    ``lookup`` re-reads items by key just before acting. Each path is resolved from the root
    one component at a time: every folder is opened relative to its parent with
    ``O_NOFOLLOW | O_DIRECTORY`` and the file itself is only ``lstat``-ed by name relative
    to its folder, so a folder swapped for a link after the plan was made (to outside the
    share or within it) ends the lookup: the key is absent. So is a key whose file is gone or
    is no longer a regular file, a key the location's patterns no longer cover, and a key
    that no scan makes (``..``, empty segments, a ``!b64:`` key for a path that is valid
    UTF-8). An item found is built as the scan builds it: same key, subject, clock (None for
    an event clock) and fingerprint. The most recently used folders stay open for the rest
    of the batch, so keys in walk order open each folder once.

Acting
    ``act`` resolves paths as ``lookup`` does, on both sides: in the share and in the
    quarantine, no symbolic link is ever followed, and a key whose folder is a link is
    ``failed`` and left alone. A connector in a dry run (``read_only``) refuses every action.

    ``delete`` unlinks the file by name from its folder (never a folder, never what a link
    points to); a file with other hard links says so, as its data stays. ``quarantine`` moves
    the file to ``quarantine_root/<its relative path>``, making the missing folders there
    with mode 0700, and keeps the file's bytes, mtime, atime and mode (and owner, as root).
    ``restore`` moves it back to its path in the share, and ``purge`` unlinks it from the
    quarantine. ``delete`` and ``quarantine`` act only on files the location's patterns
    cover; ``restore`` and ``purge`` act on whatever the quarantine holds under the key, so a
    changed RoPA never strands a file there.

    Moves never replace anything: one ``renameat2(RENAME_NOREPLACE)``; where a file system
    lacks it (NFS), a hard link then an unlink; where hard links fail too, a check then a
    rename (replacing is possible only in the moment between the two). Across file systems
    the file is copied under a partial name in the destination folder, fsync-ed, given its
    name (never replacing), the folder fsync-ed, and only then is the source unlinked; a
    source that changes meanwhile is left in place and the copy removed. Something already at
    the destination makes the item ``failed`` (``quarantine``: "already in the quarantine",
    ``restore``: "a file exists at the original path"), unless it is the very file or an
    exact copy (same size, mtime and bytes), which is what a crash in the middle of a move
    leaves behind: then the source is removed and the move is complete. A quarantined file
    keeps exactly its key's path, with no suffix, so ``restore`` and ``purge`` find it by the
    key alone; a second file with the same path cannot be quarantined until the first is
    restored or purged. The quarantine root must exist (a missing one is an unmounted disk
    more often than a new setup, and is not made) and must lie outside the share root, and
    the share root outside it.

    Folders: ``delete`` and ``purge`` remove the folders that they leave empty (the file's
    folder and its parents, up to but never including the root; ``rmdir`` removes only an
    empty folder), because a folder's name is often personal data too (``homes/jan de
    vries``). ``quarantine`` leaves the share's folders in place, so that ``restore`` puts
    the file back into its folder with the folder's owner, permissions and ACLs; ``purge``
    removes them once they are empty. ``restore`` removes the quarantine folders it empties
    and remakes a share folder that disappeared meanwhile with mode 0700 (the outcome says
    so). Folders made for a move that failed are removed again.

    Outcomes: ``gone`` when the file (or a folder on its path) no longer exists; ``failed``
    with the reason when it is not a regular file, a folder on its path is a link, the
    destination is taken, or the system refuses (permission denied, busy, …); the next key
    goes on. Unlinks and same-file-system renames are not fsync-ed: a power cut may undo
    one, and the next scan then finds the file again, but nothing is ever lost. Not carried
    across file systems: extended attributes and ACLs.

Performance
    A scan with a cutoff counts files that are not yet due (``NotDueSummary``) instead of
    yielding them, comparing raw nanosecond time stamps: no datetime, no key and no regex is
    made for such a file unless a pattern needs its path. The walk runs in forked worker
    processes that stream compact tuples through pipes, leaving the caller's core to
    whatever consumes the items (a plan of 100,000 due files). With several workers each
    lists every directory but examines only the files of the directories that hash to it;
    their records are merged back into the order of a single walk, so every setting yields
    the same items in the same order. The connector option ``walk_workers`` sets the number
    of workers (0: walk in the calling process); the default is one less than the number of
    CPUs, at most 4, and 0 where ``fork`` is missing or the caller runs threads.
    Why that default, measured on a 2-CPU VM (warm cache, 200,000 files, half past due;
    ``find -type f -mtime +365`` 0.5 s): the scan alone takes 1.1 s in-process, 0.86 s
    with one worker and 0.75 s with two; behind a consumer spending 10 us per item it takes
    2.2 s, 1.35 s and 1.6 s: a second worker competes with the consumer for its CPU.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import dataclasses
import errno
import functools
import gc
import hashlib
import heapq
import marshal
import operator
import os
import re
import signal
import struct
import sys
import threading
import unicodedata
import weakref
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from stat import S_IMODE, S_ISDIR, S_ISLNK, S_ISREG
from typing import Any, ClassVar, Final

from connectors._dates import check_format as _check_format
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
from sweeper.errors import (
    ActionUnsupported,
    ConnectorError,
    LocationInvalid,
    SystemUnreachable,
)
from sweeper.ropa.model import (
    Clock,
    ColumnClock,
    EventClock,
    FileLocation,
    FileShareSystem,
    PathDateClock,
)

__all__ = [
    "KEY_PREFIX",
    "FileShareConnector",
    "Selection",
    "decode_key",
    "display_key",
    "encode_key",
    "glob_literal",
    "translate_glob",
    "translate_glob_ancestors",
]

KEY_PREFIX: Final = "!b64:"

# ---------------------------------------------------------------------------------------------
# Keys


def encode_key(raw: bytes) -> str:
    """Given a path relative to the root as bytes, return its key.

    The key is the path's text when the bytes are valid UTF-8 and do not begin with
    ``KEY_PREFIX``; otherwise it is ``KEY_PREFIX`` and the URL-safe base64 of the bytes.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not text.startswith(KEY_PREFIX):
            return text
    return KEY_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii")


def decode_key(key: str) -> bytes:
    """Given a key made by ``encode_key``, return the path's bytes. Raise ValueError if the
    key is not one ``encode_key`` can make.
    """
    if not key.startswith(KEY_PREFIX):
        return key.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
    try:
        return base64.b64decode(key[len(KEY_PREFIX) :], altchars=b"-_", validate=True)
    except binascii.Error as err:
        raise ValueError(f"{key!r} is not a valid file key: {err}") from err


_SHORT_ESCAPES: Final = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.lru_cache(maxsize=1024)
def _escape_char(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, from surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    # Control, format (bidi overrides that reorder a report's text), private-use, unassigned,
    # line and paragraph separators. \xNN is kept for ASCII, so that \x80 to \xff always
    # stand for a byte, never for a character.
    category = unicodedata.category(char)
    if category[0] == "C" or category in ("Zl", "Zp"):
        if code < 0x80:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char


def _escaped(text: str) -> str:
    """Given text (bytes that are not UTF-8 as surrogateescape), return it printable."""
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return "".join(map(_escape_char, text))


def display_key(key: str) -> str:
    """Given a key, return the path as a person can read it in a report.

    Printable characters are shown as they are; a backslash, control and invisible format
    characters and bytes that are not UTF-8 are written as backslash escapes (``\\n``,
    ``\\x1b``, ``\\xff``, ``\\u202e``). A key that does not decode is shown escaped as is.
    """
    try:
        text = decode_key(key).decode("utf-8", "surrogateescape")
    except ValueError:
        text = key
    return _escaped(text)


# ---------------------------------------------------------------------------------------------
# Glob patterns

_STAR: Final = ""  # a token that no character translates to


def _class_end(segment: str, start: int) -> int:
    """Given the index after a ``[``, return the index of the ``]`` closing it, or -1."""
    j = start
    if j < len(segment) and segment[j] == "!":
        j += 1
    if j < len(segment) and segment[j] == "]":  # a leading ']' is a member, not the end
        j += 1
    end = segment.find("]", j)
    return end


def _class_regex(body: str) -> str:
    """Given the text between ``[`` and ``]``, return a regex for one character of the class.

    The result never matches ``/``: a class selects within one path segment.
    """
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    members: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low <= high:  # an empty range such as z-a matches nothing, as in fnmatch
                members.append(f"{re.escape(low)}-{re.escape(high)}")
            i += 3
        else:
            members.append(re.escape(body[i]))
            i += 1
    if negate:
        return "[^/" + "".join(members) + "]"
    if not members:
        return "(?!)"
    return "(?!/)[" + "".join(members) + "]"


def _segment_regex(segment: str) -> str:
    """Given one segment of a glob pattern (no ``/``), return a regex matching within it."""
    tokens: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        i += 1
        if char == "*":
            if not tokens or tokens[-1] != _STAR:
                tokens.append(_STAR)
        elif char == "?":
            tokens.append("[^/]")
        elif char == "[":
            end = _class_end(segment, i)
            if end < 0:
                tokens.append(re.escape("["))
            else:
                tokens.append(_class_regex(segment[i:end]))
                i = end + 1
        else:
            tokens.append(re.escape(char))
    # Between two stars, match the fixed part at its first place and never backtrack into it
    # (an atomic group, as fnmatch does): every token is one character wide and a star
    # follows, so the first place leaves the most for the rest, and *a*a*a*b stays linear.
    parts: list[str] = []
    i = 0
    while i < len(tokens) and tokens[i] != _STAR:
        parts.append(tokens[i])
        i += 1
    while i < len(tokens):
        i += 1  # past the star
        fixed: list[str] = []
        while i < len(tokens) and tokens[i] != _STAR:
            fixed.append(tokens[i])
            i += 1
        if i < len(tokens):
            parts.append(f"(?>[^/]*?{''.join(fixed)})")
        else:
            parts.append("[^/]*" + "".join(fixed))
    return "".join(parts)


def _segments(pattern: str) -> list[str]:
    """Given a glob pattern, return its segments: empty and ``.`` segments dropped, runs of
    ``**`` merged, and a trailing ``/`` read as ``/**``.
    """
    segments: list[str] = []
    for segment in pattern.split("/"):
        if segment in ("", "."):
            continue
        if segment == "**" and segments and segments[-1] == "**":
            continue
        segments.append(segment)
    if pattern.endswith("/") and segments and segments[-1] != "**":
        segments.append("**")
    return segments


def translate_glob(pattern: str) -> str:
    """Given a glob pattern relative to the share root, return a regex source that a whole
    relative path (``str.fullmatch``) matches exactly when the pattern does.
    """
    segments = _segments(pattern)
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:.*/)?")
        else:
            parts.append(_segment_regex(segment) + ("" if last else "/"))
    return "(?s:" + "".join(parts) + ")"


def glob_literal(path: str) -> str:
    """Given a path relative to the root, return a pattern that matches exactly it: with no
    escape character, ``*``, ``?`` and ``[`` become one-character classes (``[*]``)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def translate_glob_ancestors(pattern: str) -> str | None:
    """Given a glob pattern, return a regex source that every directory (relative path, no
    trailing ``/``) fully matches if a path the pattern matches may lie below it; None if
    no directory can hold a match (the pattern names a file in the root).

    The regex may match directories below which nothing matches after all (a ``**``
    segment lets any directory through): it only decides which directories the walk may
    skip, so it must never reject an ancestor of a match, and it never does.
    """
    segments = _segments(pattern)

    def below(index: int) -> str | None:
        # Regex for the rest of a directory path once segments[:index] have been matched.
        if index >= len(segments) - 1 and (not segments or segments[-1] != "**"):
            return None  # only the file name is left, and a directory is not the file
        if segments[index] == "**":
            return ".*"
        rest = below(index + 1)
        here = _segment_regex(segments[index])
        return here if rest is None else f"{here}(?:/{rest})?"

    source = below(0) if segments else None
    return None if source is None else "(?s:" + source + ")"


_NOTHING: Final = re.compile("(?!)")


def _union(sources: Sequence[str]) -> re.Pattern[str] | None:
    unique = list(dict.fromkeys(sources))
    if not unique:
        return None
    return re.compile("|".join(f"(?:{s})" for s in unique))


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """Compiled include and exclude patterns; a None regex means "no test needed".

    Args:
        files: a relative file path is a candidate when this regex fully matches it.
        dirs: the walk enters a directory only when this regex fully matches its path.
        exclude_files: a candidate file is dropped when this regex fully matches its path.
        exclude_dirs: the walk does not enter a directory this regex fully matches.
    """

    files: re.Pattern[str] | None
    dirs: re.Pattern[str] | None
    exclude_files: re.Pattern[str] | None
    exclude_dirs: re.Pattern[str] | None

    @classmethod
    def compile(cls, include: Sequence[str], exclude: Sequence[str]) -> Selection:
        """Given include and exclude glob patterns, return the Selection. Raise re.error if
        a pattern does not translate into a valid regex (a bug, not a user error).
        """
        if any(_segments(p) == ["**"] for p in include):
            files = dirs = None  # every file, and every directory may hold one
        else:
            files = _union([translate_glob(p) for p in include]) or _NOTHING
            ancestors = [translate_glob_ancestors(p) for p in include]
            dirs = _union([a for a in ancestors if a is not None]) or _NOTHING
        prune: list[str] = []
        for pattern in exclude:
            segments = _segments(pattern)
            if not segments:
                continue
            prune.append(translate_glob(pattern))
            if len(segments) > 1 and segments[-1] == "**":  # a/** excludes a itself
                prune.append(translate_glob("/".join(segments[:-1])))
        return cls(
            files=files,
            dirs=dirs,
            exclude_files=_union([translate_glob(p) for p in exclude if _segments(p)]),
            exclude_dirs=_union(prune),
        )

    def selects(self, path: str) -> bool:
        """Given a relative file path, return whether it is selected (ignores the walk)."""
        if self.files is not None and self.files.fullmatch(path) is None:
            return False
        return self.exclude_files is None or self.exclude_files.fullmatch(path) is None

    def enters(self, path: str) -> bool:
        """Given a directory's relative path (no trailing ``/``), return whether the walk
        enters it.
        """
        if self.dirs is not None and self.dirs.fullmatch(path) is None:
            return False
        return self.exclude_dirs is None or self.exclude_dirs.fullmatch(path) is None

    def covers(self, path: str) -> bool:
        """Given a relative file path, return whether a scan yields it: it is selected and
        the walk enters every directory above it.
        """
        if not self.selects(path):
            return False
        if self.dirs is None and self.exclude_dirs is None:
            return True
        end = path.find("/")
        while end >= 0:
            if not self.enters(path[:end]):
                return False
            end = path.find("/", end + 1)
        return True


# ---------------------------------------------------------------------------------------------
# Clocks

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_STAT_CLOCKS: Final = {
    "modified": "st_mtime_ns",
    "mtime": "st_mtime_ns",
    "accessed": "st_atime_ns",
    "atime": "st_atime_ns",
    "ctime": "st_ctime_ns",
    "created": "st_ctime_ns",
}


def _birthtime_ns(st: os.stat_result) -> int:
    return int(st.st_birthtime * 1_000_000_000)  # type: ignore[attr-defined,unused-ignore]


def _stat_clock(name: str) -> Callable[[os.stat_result], int]:
    """Given a named clock, return a function that reads it, in nanoseconds, from a stat."""
    if name == "created":
        if hasattr(os.stat_result, "st_birthtime_ns"):
            return operator.attrgetter("st_birthtime_ns")
        if hasattr(os.stat_result, "st_birthtime"):
            return _birthtime_ns
    return operator.attrgetter(_STAT_CLOCKS[name])


def _to_ns(moment: datetime) -> int:
    """Given an aware datetime, return nanoseconds since the epoch. Raise ValueError if naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a clock or cutoff needs a timezone-aware datetime, got {moment}")
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _from_ns(ns: int, tz: tzinfo) -> datetime:
    """Given nanoseconds since the epoch, return the aware datetime, truncated to the
    microsecond (so a time stamp at or before a cutoff stays at or before it).
    """
    micros = ns // 1000
    if -(2**53) < micros < 2**53:  # until the year 2255
        # Exact: such a float holds whole microseconds exactly and fromtimestamp rounds to
        # the nearest microsecond; and four times as fast as the arithmetic below.
        return datetime.fromtimestamp(micros / 1e6, tz)
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(tz)


class _PathDates:
    """Reads the clock from a path: the named group of ``path_regex`` parsed by a format."""

    def __init__(self, regex: re.Pattern[str], clock: PathDateClock, tz: tzinfo) -> None:
        self.regex = regex
        self.group = clock.path_date
        self.format = clock.format
        self.tz = tz
        # Many files share a date (one folder per day): parse each value once.
        self.parse = functools.lru_cache(maxsize=4096)(self._parse)

    def _parse(self, value: str) -> tuple[datetime, int] | None:
        """Given a date as text, return it as an aware datetime and in nanoseconds."""
        try:
            parsed = datetime.strptime(value, self.format)  # noqa: DTZ007  (zone set below)
        except ValueError:
            return None
        moment = parsed.astimezone(self.tz) if parsed.tzinfo else parsed.replace(tzinfo=self.tz)
        return moment, _to_ns(moment)

    def value(self, path: str) -> str | None:
        match = self.regex.search(path)
        return None if match is None else match.group(self.group)

    def ns(self, path: str) -> int | None:
        """Given a relative path, return its date in nanoseconds, or None if it has none."""
        value = self.value(path)
        parsed = None if value is None else self.parse(value)
        return None if parsed is None else parsed[1]

    def read(self, path: str, key: str) -> tuple[datetime | None, str | None]:
        """Given a relative path and its key, return (clock, problem)."""
        value = self.value(path)
        if value is None:
            return None, (
                f"{display_key(key)}: path_regex has no {self.group!r} group here, "
                "so the file has no date in its path"
            )
        parsed = self.parse(value)
        if parsed is None:
            return None, (
                f"{display_key(key)}: the date {value!r} in the path does not match the "
                f"format {self.format!r}"
            )
        return parsed[0], None


# ---------------------------------------------------------------------------------------------
# The walk
#
# The walk produces compact records, plain tuples that marshal can send through a pipe:
#   (_ITEM, path, size, fingerprint, clock_ns or None, number of hard links)
#   (_FINDING, kind, path, message)
#   (_SUMMARY, count, earliest clock_ns or None, size)
#   (_DIR, seq): the records up to the next _DIR belong to the seq-th directory of the walk
# and, from a worker process only, (_ERROR, message) and (_END,).
# Paths are relative to the root, as str decoded like os.fsdecode (surrogates for bytes
# that do not decode); os.fsencode gives back their exact bytes.

_ITEM: Final = 0
_FINDING: Final = 1
_SUMMARY: Final = 2
_ERROR: Final = 3
_END: Final = 4
_DIR: Final = 5

Record = tuple[Any, ...]

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NOATIME: Final = getattr(os, "O_NOATIME", 0)
_FS_IS_UTF8: Final = (
    sys.getfilesystemencoding().lower().replace("-", "") == "utf8"
    and sys.getfilesystemencodeerrors() == "surrogateescape"
)


def _storable(text: str) -> str:
    """Given text matched in a path, return it, escaped if it holds bytes that are not UTF-8
    (which no database or JSON document could store).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _escaped(text)
    return text


def _text(path: str) -> str:
    """Given a path as os.fsdecode gives it, return it decoded as UTF-8 with surrogateescape,
    the text patterns and path_regex are matched against whatever the locale.
    """
    return path if _FS_IS_UTF8 else os.fsencode(path).decode("utf-8", "surrogateescape")


@dataclasses.dataclass(frozen=True, slots=True)
class _WalkPlan:
    """What the walk needs to decide, for each file, whether it is yielded or counted."""

    root: str  # the root's real path, to tell where a symbolic link leads
    selection: Selection
    stat_clock: Callable[[os.stat_result], int] | None  # None: the clock is not a stat field
    path_dates: _PathDates | None  # set when the clock is a path date and a cutoff is set
    cutoff_ns: int | None  # None: yield every selected file


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _link_finding(dir_fd: int, name: str, rel: str, plan: _WalkPlan) -> Record | None:
    """Given a symbolic link, return a finding if its target resolves outside the root."""
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except OSError as err:
        return (_FINDING, "unreadable", rel, f"symbolic link cannot be read: {_reason(err)}")
    parent = os.path.join(plan.root, os.path.dirname(rel))
    resolved = os.path.realpath(os.path.join(parent, target))
    if _inside(resolved, plan.root):
        return None
    shown = display_key(encode_key(os.fsencode(target)))
    return (
        _FINDING,
        "symlink_outside",
        rel,
        f"symbolic link to {shown} points outside the share root; not followed",
    )


def _open_dir(name: str, dir_fd: int | None, flags: list[int]) -> int:
    """Open a directory below ``dir_fd`` without following a link; drop O_NOATIME for good
    when the kernel refuses it (it is allowed only to the owner and to root).
    """
    try:
        return os.open(name, flags[0], dir_fd=dir_fd)
    except PermissionError as err:
        if err.errno != errno.EPERM or not flags[0] & _NOATIME:
            raise
        flags[0] &= ~_NOATIME
        return os.open(name, flags[0], dir_fd=dir_fd)


def _unreadable(path: str, message: str) -> Record:
    return (
        _FINDING,
        "unreadable",
        path.rstrip("/") or ".",
        message + "; skipped, the scan went on",
    )


class _Walker:
    """One walk below an open root directory, producing records (see above).

    Several walkers can share a walk: walker ``part`` of ``parts`` lists every directory to
    find the subdirectories but reports only on the directories whose path hashes to it,
    so each file is reported by exactly one walker even if the tree changes meanwhile.
    Every walker numbers the directories in the same order (the order of one walk alone)
    and marks where each of its own begins, so their records can be merged back into the
    order of one walk.

    Every directory's fd stays open until its subdirectories are done, so one fd per level
    of depth is open. The caller keeps the root's fd.
    """

    def __init__(self, plan: _WalkPlan, part: int = 0, parts: int = 1) -> None:
        self.plan = plan
        self.part, self.parts = part, parts
        self.flags = [_DIR_FLAGS | _NOATIME]
        self.seq = 0  # directories met so far, entered or not
        self.count = 0  # files not yet due, with their total size and earliest clock
        self.size = 0
        self.earliest: int | None = None

    def run(self, root_fd: int) -> Generator[Record, None, None]:
        """Yield the records of the whole walk, ending with a summary when there is a cutoff."""
        stack: list[tuple[int, str, bool, list[str]]] = []  # (fd, prefix, owned, to enter)
        try:
            yield from self.enter(root_fd, "", stack)
            while stack:
                fd, prefix, owned, todo = stack[-1]
                if not todo:
                    stack.pop()
                    if fd != root_fd:
                        os.close(fd)
                    continue
                name = todo.pop()
                self.seq += 1
                try:
                    child = _open_dir(name, fd, self.flags)
                except OSError as err:
                    if owned:  # reported by the owner of the directory it is listed in
                        yield (_DIR, self.seq)
                        yield _unreadable(
                            prefix + name, f"directory cannot be opened ({_reason(err)})"
                        )
                    continue
                yield from self.enter(child, prefix + name + "/", stack)
        finally:
            for fd, _, _, _ in stack:
                if fd != root_fd:
                    os.close(fd)
        if self.plan.cutoff_ns is not None:
            yield (_SUMMARY, self.count, self.earliest, self.size)

    def enter(
        self, fd: int, prefix: str, stack: list[tuple[int, str, bool, list[str]]]
    ) -> Iterator[Record]:
        """Push an open directory on the stack (which then owns its fd) and list it."""
        owned = self.parts == 1 or zlib.crc32(os.fsencode(prefix)) % self.parts == self.part
        subdirs: list[str] = []
        stack.append((fd, prefix, owned, subdirs))
        if owned:
            yield (_DIR, self.seq)
            yield from self.list(fd, prefix, subdirs)
        else:
            self.list_subdirs(fd, prefix, subdirs)

    def list_subdirs(self, fd: int, prefix: str, subdirs: list[str]) -> None:
        """Append the subdirectories to enter to ``subdirs``; errors are the owner's to report."""
        enters = self.enters
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False) and enters(prefix + entry.name):
                            subdirs.append(entry.name)
                    except OSError:
                        continue
        except OSError:
            return

    def list(self, fd: int, prefix: str, subdirs: list[str]) -> Iterator[Record]:
        """Given an open directory and its path prefix (``""`` or ending in ``/``), yield the
        records of its files and links and append the subdirectories to enter to ``subdirs``.
        """
        # This loop runs once per file of the share: keep it free of calls it does not need.
        plan, selection = self.plan, self.plan.selection
        want_file, skip_file = selection.files, selection.exclude_files
        match_files = want_file is not None or skip_file is not None
        stat_clock, path_dates, cutoff = plan.stat_clock, plan.path_dates, plan.cutoff_ns
        count = size = 0
        earliest = self.earliest
        failed = 0
        failure = ""
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    try:
                        if entry.is_file(follow_symlinks=False):  # most are: test first
                            if match_files:
                                rel = _text(prefix + name)
                                if (want_file is not None and not want_file.fullmatch(rel)) or (
                                    skip_file is not None and skip_file.fullmatch(rel)
                                ):
                                    continue
                            st = entry.stat(follow_symlinks=False)
                            if not S_ISREG(st.st_mode):
                                continue  # replaced (by a link, say) since it was listed
                            if stat_clock is not None:
                                clock: int | None = stat_clock(st)
                            elif path_dates is not None:
                                clock = path_dates.ns(_text(prefix + name))
                            else:
                                clock = None
                            if cutoff is not None and clock is not None and clock > cutoff:
                                count += 1
                                size += st.st_size
                                if earliest is None or clock < earliest:
                                    earliest = clock
                                continue
                            yield (
                                _ITEM,
                                prefix + name,
                                st.st_size,
                                f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}",
                                clock if stat_clock is not None else None,
                                st.st_nlink,
                            )
                        elif entry.is_dir(follow_symlinks=False):
                            if self.enters(prefix + name):
                                subdirs.append(name)
                        elif entry.is_symlink() and self.covers(prefix + name):
                            finding = _link_finding(fd, name, prefix + name, plan)
                            if finding is not None:
                                yield finding
                    except FileNotFoundError:
                        continue  # removed since it was listed: nothing to report
                    except OSError as err:
                        failed += 1
                        failure = failure or _reason(err)
        except OSError as err:
            yield _unreadable(prefix, f"directory cannot be listed ({_reason(err)})")
        finally:
            self.count += count
            self.size += size
            self.earliest = earliest
        if failed:
            yield _unreadable(
                prefix,
                f"{failed} entr{'y' if failed == 1 else 'ies'} in this directory could not be "
                f"examined ({failure})",
            )

    def covers(self, path: str) -> bool:
        """Given a symbolic link's relative path, return whether the location would cover
        what it points to: the patterns select it as a file or let the walk enter it.
        """
        return self.plan.selection.selects(_text(path)) or self.enters(path)

    def enters(self, path: str) -> bool:
        """Given a directory's relative path, return whether the walk enters it."""
        selection = self.plan.selection
        if selection.dirs is None and selection.exclude_dirs is None:
            return True
        return selection.enters(_text(path))


# ---------------------------------------------------------------------------------------------
# The worker process

_FRAME: Final = struct.Struct("<I")
_BATCH: Final = 1024


def _worker_main(write_fd: int, root_fd: int, plan: _WalkPlan, part: int, parts: int) -> None:
    """In a forked child: walk this worker's part and send its records in marshalled
    batches, ending with an _END record. Never returns.
    """
    status = 0
    gc.disable()  # the walk makes no cycles; a collection would only copy the parent's pages
    try:
        with os.fdopen(write_fd, "wb", buffering=1 << 16) as out:

            def send(batch: list[Record]) -> None:
                data = marshal.dumps(batch)
                out.write(_FRAME.pack(len(data)))
                out.write(data)

            batch: list[Record] = []
            try:
                # A listing's position lives in the open file description, which a forked
                # fd shares with the parent and the other workers: open the root anew.
                walker = _Walker(plan, part, parts)
                own_root = _open_dir(".", root_fd, walker.flags)
                for record in walker.run(own_root):
                    batch.append(record)
                    if len(batch) >= _BATCH:
                        send(batch)
                        batch = []
            except Exception as err:  # noqa: BLE001  (sent on: the parent raises it)
                batch.append((_ERROR, f"{type(err).__name__}: {err}"))
            batch.append((_END,))
            send(batch)
    except BaseException:  # noqa: BLE001  (a broken pipe: the parent stopped reading)
        status = 1
    finally:
        os._exit(status)


class _WorkerStream:
    """The records one worker process sends through its pipe, read as they are needed."""

    def __init__(self, read_fd: int, pid: int) -> None:
        self.fd, self.pid = read_fd, pid
        self.buffer = bytearray()
        self.records: collections.deque[Record] = collections.deque()
        self.ended = False
        self.head: int | None = None  # seq of the directory whose records come next

    def next(self) -> Record:
        """Return the worker's next record, waiting for it. Raise EOFError if the worker
        closed its pipe without the _END record (it died).
        """
        while not self.records:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk
            offset = 0
            while len(self.buffer) - offset >= _FRAME.size:
                (length,) = _FRAME.unpack_from(self.buffer, offset)
                start = offset + _FRAME.size
                if len(self.buffer) - start < length:
                    break
                with memoryview(self.buffer) as view:
                    self.records.extend(marshal.loads(view[start : start + length]))
                offset = start + length
            del self.buffer[:offset]
        return self.records.popleft()


def _walk_in_workers(
    root_fd: int, plan: _WalkPlan, workers: int, system_id: str
) -> Generator[Record, None, None]:
    """Run the walk split over forked worker processes and yield their records in the order
    of one walk (see ``_Walker``), the not-due summaries merged into one at the end. Raise
    ConnectorError if a worker fails or dies; on any exit, kill and reap the workers left.
    """
    streams: list[_WorkerStream] = []
    count = size = 0
    earliest: int | None = None

    def group(stream: _WorkerStream) -> Iterator[Record]:
        # Yield the records up to the stream's next directory mark; set its head to that.
        nonlocal count, size, earliest
        while True:
            try:
                record = stream.next()
            except EOFError:
                raise ConnectorError(system_id, "a scan worker process died") from None
            tag = record[0]
            if tag == _DIR:
                stream.head = record[1]
                return
            if tag == _END:
                stream.ended, stream.head = True, None
                return
            if tag == _SUMMARY:
                count += record[1]
                size += record[3]
                if record[2] is not None and (earliest is None or record[2] < earliest):
                    earliest = record[2]
            elif tag == _ERROR:
                raise ConnectorError(system_id, f"the scan failed: {record[1]}")
            else:
                yield record

    try:
        for part in range(workers):
            read_fd, write_fd = os.pipe()
            with contextlib.suppress(OSError, AttributeError):
                import fcntl

                fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)  # let a worker run ahead
            pid = os.fork()
            if pid == 0:  # pragma: no cover  (the child; coverage does not follow a fork)
                os.close(read_fd)
                for other in streams:
                    os.close(other.fd)
                _worker_main(write_fd, root_fd, plan, part, workers)
            os.close(write_fd)
            streams.append(_WorkerStream(read_fd, pid))
        for stream in streams:
            yield from group(stream)  # nothing: a worker's records start with a mark
        # A merge by directory number: the worker owning the next directory goes next. Only
        # that worker is waited for, and it is never blocked, so this cannot deadlock; the
        # others run ahead until their pipes are full.
        while live := [s for s in streams if s.head is not None]:
            yield from group(min(live, key=lambda s: s.head or 0))
        if plan.cutoff_ns is not None:
            yield (_SUMMARY, count, earliest, size)
    finally:
        for stream in streams:
            if not stream.ended:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stream.pid, signal.SIGKILL)
            os.close(stream.fd)
            os.waitpid(stream.pid, 0)


class _Items:
    """Turns the walk's item records into ScannedItems: key, subject, clock and problem."""

    def __init__(self, location: FileLocation, request: ScanRequest) -> None:
        self.tz = request.tz
        self.regex = re.compile(location.path_regex) if location.path_regex else None
        groups = self.regex.groupindex if self.regex is not None else {}
        self.subject_group = location.subject_group if location.subject_group in groups else None
        clock = request.clock
        self.path_dates = (
            _PathDates(self.regex, clock, request.tz)
            if isinstance(clock, PathDateClock) and self.regex is not None
            else None
        )
        self.event = isinstance(clock, EventClock)

    def item(self, record: Record) -> ScannedItem:
        """Given an item record, return the ScannedItem."""
        # Runs once per item yielded, in the process that also builds the plan: keep it lean.
        _, path, size, fingerprint, clock_ns, links = record
        if path.isascii() and not path.startswith(KEY_PREFIX):
            key = path
        else:
            key = encode_key(os.fsencode(path))
        moment = None if clock_ns is None else _from_ns(clock_ns, self.tz)
        subject = problem = None
        if self.regex is not None:
            text = _text(path)
            if self.subject_group is not None:
                match = self.regex.search(text)
                subject = None if match is None else match.group(self.subject_group)
                if subject is not None and not subject.isascii():
                    subject = _storable(subject)
            if self.path_dates is not None:
                moment, problem = self.path_dates.read(text, key)
        if self.event and subject is None:
            problem = (
                f"{display_key(key)}: path_regex gives no subject here, so the event that "
                "starts the clock cannot be looked up"
            )
        # Deleting one name of a file with several hard links does not delete its data.
        details = None if links == 1 else {"hard_links": links}
        # Positional: a NamedTuple's keyword arguments cost twice as much.
        return ScannedItem(key, subject, moment, fingerprint, size, details, problem)


# ---------------------------------------------------------------------------------------------
# Looking items up and acting on them
#
# Both resolve a key from an open root one component at a time: every folder is opened
# relative to its parent with O_NOFOLLOW | O_DIRECTORY and the file itself is only lstat-ed,
# unlinked or renamed by name relative to its folder's fd. A symbolic link swapped in for any
# folder after the plan was made therefore ends the lookup there: nothing outside the root is
# ever reached, on the share's side or on the quarantine's.

_ACTIONS: Final = ("delete", "quarantine", "restore", "purge")
_OPEN_DIRS: Final = 64  # folder fds one lookup or act keeps open, the most recently used
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_PARTIAL: Final = b".ropa-sweeper-partial-"  # a copy being made, before it gets its name
_RENAME_NOREPLACE: Final = 1  # from <linux/fs.h>

# A folder is named by its path below a root as bytes, b"" for the root itself.


class _Refused(Exception):
    """An item is not acted on: ``status`` is ``gone`` or ``failed``, ``message`` says why."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _key_path(key: str) -> bytes | None:
    """Given a key, return its path's bytes; None if no scan makes such a key: it does not
    decode, is not in the one form ``encode_key`` gives, or has an empty, ``.`` or ``..``
    segment or a NUL.
    """
    if key.startswith(KEY_PREFIX):
        try:
            raw = decode_key(key)
        except ValueError:
            return None
        if encode_key(raw) != key:
            return None
    else:  # text that is not escaped is always encode_key's form of its UTF-8
        try:
            raw = key.encode("utf-8")
        except UnicodeEncodeError:
            return None
    wrapped = b"/" + raw + b"/"
    if b"//" in wrapped or b"/./" in wrapped or b"/../" in wrapped or b"\0" in raw:
        return None
    return raw


def _shown(path: bytes) -> str:
    return display_key(encode_key(path))


def _kind(st: os.stat_result) -> str:
    """Given a stat, return what kind of entry it is, for a message."""
    mode = st.st_mode
    if S_ISDIR(mode):
        return "a folder"
    if S_ISLNK(mode):
        return "a symbolic link"
    if S_ISREG(mode):
        return "a file"
    return "a FIFO, socket or device"


def _lstat(name: bytes, folder: int) -> os.stat_result:
    return os.stat(name, dir_fd=folder, follow_symlinks=False)


def _regular(folder: int, name: bytes) -> os.stat_result:
    """Given a folder fd and a name, return the name's lstat. Raise _Refused ``gone`` if it
    does not exist, ``failed`` if it is not a regular file.
    """
    try:
        st = _lstat(name, folder)
    except FileNotFoundError as err:
        raise _Refused("gone", "no longer exists") from err
    if not S_ISREG(st.st_mode):
        raise _Refused("failed", f"is now {_kind(st)}, not a regular file; left alone")
    return st


def _unverifiable(key: str, reason: str) -> ScannedItem:
    """An item that may still exist but cannot be checked now (no permission, a folder on
    the way replaced by a link): execution skips it rather than count it as gone."""
    return ScannedItem(key, None, None, "", refused="unverifiable", reason=reason)


class _Tree:
    """The folders below one open root (the share's or the quarantine's), opened one
    component at a time without following a symbolic link.

    Keeps the ``_OPEN_DIRS`` most recently used folders open, so a batch of keys in walk
    order opens each folder once. An fd it returns is valid until the next call. Records the
    folders it created and those from which files were removed (``emptied``), for ``prune``.
    """

    def __init__(self, root_fd: int, name: str) -> None:
        self.root_fd = root_fd
        self.name = name  # "share" or "quarantine"
        self.fds: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self.last = b""  # the folder used last, the most recent in fds
        self.created: set[bytes] = set()
        self.emptied: set[bytes] = set()

    def close(self) -> None:
        """Close every folder fd it opened and the root's."""
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        os.close(self.root_fd)

    def folder(self, path: bytes, create: bool = False) -> int:
        """Given a folder's path, return an fd for it; with ``create``, make the folders
        missing on the way with mode 0700. Raise _Refused: ``gone`` when (without
        ``create``) a folder on the way does not exist or is no longer a folder, ``failed``
        when one is a symbolic link or cannot be opened or created.
        """
        if not path:
            return self.root_fd
        fd = self.fds.get(path)
        if fd is not None:
            if path != self.last:  # keys come in walk order: mostly the same folder again
                self.fds.move_to_end(path)
                self.last = path
            return fd
        # Start from the deepest folder on the way that is open already.
        start = path
        while start:
            start = start.rpartition(b"/")[0]
            if start in self.fds:
                break
        fd = self.fds[start] if start else self.root_fd
        end = len(start)
        while end < len(path):
            end = path.find(b"/", end + 1)
            if end < 0:
                end = len(path)
            fd = self._open(fd, path[:end], create)
        return fd

    def _open(self, parent: int, path: bytes, create: bool) -> int:
        name = path.rpartition(b"/")[2]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError as err:
            if not create:
                raise _Refused("gone", f"folder {_shown(path)} no longer exists") from err
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass  # made meanwhile: open it as it is, below
            except OSError as err2:
                raise _Refused(
                    "failed",
                    f"folder {_shown(path)} cannot be created in the {self.name} ({_reason(err2)})",
                ) from err2
            else:
                self.created.add(path)
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            except OSError as err2:
                raise self._refusal(parent, path, err2, create) from err2
        except OSError as err:
            raise self._refusal(parent, path, err, create) from err
        self.fds[path] = fd
        self.last = path
        if len(self.fds) > _OPEN_DIRS:
            os.close(self.fds.popitem(last=False)[1])
        return fd

    def _refusal(self, parent: int, path: bytes, err: OSError, create: bool) -> _Refused:
        """Given why a folder could not be opened, return the _Refused that explains it."""
        if err.errno in (errno.ENOTDIR, errno.ELOOP):
            try:
                st: os.stat_result | None = _lstat(path.rpartition(b"/")[2], parent)
            except OSError:
                st = None
            if st is not None and S_ISLNK(st.st_mode):
                return _Refused(
                    "failed",
                    f"{_shown(path)} in the {self.name} is a symbolic link, not a folder; "
                    "not followed",
                )
            if not create:
                return _Refused("gone", f"{_shown(path)} is no longer a folder")
            return _Refused("failed", f"{_shown(path)} in the {self.name} is not a folder")
        if err.errno == errno.ENOENT and not create:
            return _Refused("gone", f"folder {_shown(path)} no longer exists")
        return _Refused(
            "failed", f"folder {_shown(path)} in the {self.name} cannot be opened ({_reason(err)})"
        )

    def prune(self) -> None:
        """Remove the emptied and created folders that are empty now, deepest first, and
        their parents that become empty; never the root. A folder that is not empty, or
        cannot be removed, stays.
        """
        todo = {p for p in self.emptied | self.created if p}
        heap = [(-p.count(b"/"), p) for p in todo]  # the deepest first
        heapq.heapify(heap)
        while heap:
            _, path = heapq.heappop(heap)
            up, _, name = path.rpartition(b"/")
            try:
                os.rmdir(name, dir_fd=self.folder(up))
            except (_Refused, OSError):
                continue
            fd = self.fds.pop(path, None)
            if fd is not None:
                os.close(fd)
            if up and up not in todo:
                todo.add(up)
                heapq.heappush(heap, (-up.count(b"/"), up))
        self.emptied.clear()
        self.created.clear()


# Moving a file without replacing what is at the destination. renameat2(RENAME_NOREPLACE)
# does it in one step; file systems without it (NFS) get a hard link then an unlink, which
# also fails rather than replace; where neither works (no hard links, or links refused to a
# user who does not own the file) a check for the name, then rename: replacing stays
# possible only in the moment between the two.


class _Unsupported(Exception):
    """This way of renaming cannot be used here: try the next."""


@functools.cache
def _libc_renameat2() -> Callable[..., int] | None:
    """Return libc's renameat2, or None where there is none (not Linux, or an old libc)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    c_int, c_path = ctypes.c_int, ctypes.c_char_p
    function.argtypes = [c_int, c_path, c_int, c_path, ctypes.c_uint]
    function.restype = c_int
    return function


def _renameat2(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> None:
    function = _libc_renameat2()
    if function is None:
        raise _Unsupported
    if function(src_dir, src, dst_dir, dst, _RENAME_NOREPLACE) == 0:
        return
    import ctypes

    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        raise _Unsupported
    raise OSError(code, os.strerror(code))  # EEXIST makes a FileExistsError, and so on


def _link_then_unlink(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> None:
    try:
        os.link(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EMLINK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise _Unsupported from err
        raise
    try:
        os.unlink(src, dir_fd=src_dir)
    except FileNotFoundError:
        return  # the source went meanwhile: the new name may be the data's last, keep it
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(dst, dir_fd=dst_dir)
        raise


def _check_then_rename(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> None:
    try:
        _lstat(dst, dst_dir)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))


_RENAMES: tuple[Callable[[int, bytes, int, bytes], None], ...] = (
    _renameat2,
    _link_then_unlink,
    _check_then_rename,
)


def _rename_noreplace(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> None:
    """Rename a name in one folder to a name in another. Raise FileExistsError if the
    destination exists (it is never replaced), OSError with EXDEV across file systems.
    """
    for rename in _RENAMES:
        try:
            rename(src_dir, src, dst_dir, dst)
        except _Unsupported:
            continue
        return
    raise OSError(errno.ENOTSUP, "no way to rename without replacing works here")


def _same_content(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> bool:
    """Given two regular files by folder fd and name, return whether their bytes are equal."""
    a = os.open(src, _FILE_FLAGS, dir_fd=src_dir)
    try:
        b = os.open(dst, _FILE_FLAGS, dir_fd=dst_dir)
        try:
            while True:
                chunk = os.read(a, 1 << 20)
                other = os.read(b, len(chunk) or 1)
                while len(other) < len(chunk):  # a short read: read the rest of the chunk
                    more = os.read(b, len(chunk) - len(other))
                    if not more:
                        return False
                    other += more
                if chunk != other:
                    return False
                if not chunk:
                    return True
        finally:
            os.close(b)
    finally:
        os.close(a)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
    )


@dataclasses.dataclass(frozen=True)
class _Move:
    """One file to move from a folder of one tree to the same name in a folder of another."""

    src_dir: int
    dst_dir: int
    name: bytes
    st: os.stat_result  # the source's lstat, a regular file
    partial: bytes  # the name of the copy being made across file systems
    occupied: str  # why the move fails when something else is at the destination

    def run(self) -> str:
        """Move the file; return ``renamed``, ``copied`` (across file systems) or
        ``completed`` (the destination already held this file, as an interrupted move
        leaves it: the source was removed). Raise _Refused ``failed`` if something else is
        at the destination, OSError if the move fails; either way nothing has changed.
        """
        try:
            _rename_noreplace(self.src_dir, self.name, self.dst_dir, self.name)
        except FileExistsError:
            return self.settle()
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
        else:
            return "renamed"
        try:
            _lstat(self.name, self.dst_dir)
        except FileNotFoundError:
            pass
        else:
            return self.settle()
        try:
            self.copy()
        except FileExistsError:
            return self.settle()
        return "copied"

    def settle(self) -> str:
        """The destination is taken: remove the source if the destination is the same file
        (one inode under two names, as a crash after the hard link leaves it) or an exact
        copy (same size, mtime and bytes, as a crash after a copy leaves it); else refuse.
        """
        try:
            there = _lstat(self.name, self.dst_dir)
        except FileNotFoundError as err:
            raise _Refused(
                "failed", "the destination changed during the move; left in place"
            ) from err
        st = self.st
        same = (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino) or (
            S_ISREG(there.st_mode)
            and (there.st_size, there.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
            and _same_content(self.src_dir, self.name, self.dst_dir, self.name)
        )
        if not same:
            raise _Refused("failed", f"{self.occupied} ({_kind(there)}); not overwritten")
        self.unlink_source()
        return "completed"

    def copy(self) -> None:
        """Copy the file across file systems (bytes, mtime, atime, mode, and owner when
        running as root) under a partial name, fsync it, give it its name (never replacing),
        fsync the folder, then unlink the source. Raise _Refused if the source is replaced
        or changes meanwhile, FileExistsError if the name got taken; nothing changes then.
        """
        src_fd = os.open(self.name, _FILE_FLAGS, dir_fd=self.src_dir)
        try:
            before = os.fstat(src_fd)
            if not _same_file(before, self.st) or not S_ISREG(before.st_mode):
                raise _Refused("failed", "was replaced during the move; left in place")
            # One partial name per key: a copy that a crash interrupted is replaced, not kept.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.partial, dir_fd=self.dst_dir)
            flags = (
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            )
            dst_fd = os.open(self.partial, flags, 0o600, dir_fd=self.dst_dir)
            try:
                try:
                    _copy_data(src_fd, dst_fd)
                    if not _same_file(os.fstat(src_fd), before):
                        raise _Refused("failed", "changed while being copied; left in place")
                    if os.geteuid() == 0:
                        with contextlib.suppress(OSError):  # a mount that squashes root, say
                            os.fchown(dst_fd, before.st_uid, before.st_gid)
                    os.fchmod(dst_fd, S_IMODE(before.st_mode))
                    os.utime(dst_fd, ns=(before.st_atime_ns, before.st_mtime_ns))
                    os.fsync(dst_fd)
                finally:
                    os.close(dst_fd)
                _rename_noreplace(self.dst_dir, self.partial, self.dst_dir, self.name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(self.partial, dir_fd=self.dst_dir)
                raise
            _fsync_dir(self.dst_dir)  # the copy is on disk under its name before the source goes
            try:
                self.unlink_source()
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(self.name, dir_fd=self.dst_dir)
                raise
        finally:
            os.close(src_fd)

    def unlink_source(self) -> None:
        """Unlink the source if it is still the file examined. Raise _Refused if not."""
        try:
            now = _lstat(self.name, self.src_dir)
        except FileNotFoundError:
            return
        if not _same_file(now, self.st):
            raise _Refused("failed", "was replaced during the move; left in place")
        os.unlink(self.name, dir_fd=self.src_dir)


def _copy_data(src_fd: int, dst_fd: int) -> None:
    while chunk := os.read(src_fd, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view) :]


def _fsync_dir(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as err:  # some network file systems cannot sync a folder
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _partial_name(path: bytes) -> bytes:
    return _PARTIAL + hashlib.sha256(path).hexdigest()[:32].encode()


class _Acting:
    """One act request's trees and the action on one item at a time."""

    def __init__(
        self, share: _Tree | None, quarantine: _Tree | None, selection: Selection | None
    ) -> None:
        self.share, self.quarantine = share, quarantine
        everything = selection is None or selection == Selection(None, None, None, None)
        self.selection = None if everything else selection

    def covered(self, path: bytes) -> None:
        """Raise _Refused if the location's patterns do not cover the path."""
        if self.selection is not None and not self.selection.covers(
            path.decode("utf-8", "surrogateescape")
        ):
            raise _Refused(
                "failed", "the location's include and exclude patterns do not cover it; left alone"
            )

    def delete(self, path: bytes) -> tuple[str | None, dict[str, Any] | None]:
        # Runs once per file of a batch: _regular and covered are written out here.
        share = self.share
        assert share is not None
        if self.selection is not None:
            self.covered(path)
        where, _, name = path.rpartition(b"/")
        folder = share.folder(where)
        try:
            st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if not S_ISREG(st.st_mode):
                raise _Refused("failed", f"is now {_kind(st)}, not a regular file; left alone")
            os.unlink(name, dir_fd=folder)
        except FileNotFoundError as err:
            raise _Refused("gone", "no longer exists") from err
        share.emptied.add(where)
        if st.st_nlink > 1:
            return (
                f"its data stays under {st.st_nlink - 1} other name(s) (hard links)",
                {"hard_links": st.st_nlink},
            )
        return None, None

    def quarantine_one(self, path: bytes) -> tuple[str | None, dict[str, Any] | None]:
        assert self.share is not None and self.quarantine is not None
        self.covered(path)
        where, _, name = path.rpartition(b"/")
        src = self.share.folder(where)
        st = _regular(src, name)
        dst = self.quarantine.folder(where, create=True)
        how = _Move(
            src,
            dst,
            name,
            st,
            _partial_name(path),
            "something is already in the quarantine at this path",
        ).run()
        return _moved(how), {"quarantined_to": encode_key(path), "moved": how}

    def restore(self, path: bytes) -> tuple[str | None, dict[str, Any] | None]:
        assert self.share is not None and self.quarantine is not None
        where, _, name = path.rpartition(b"/")
        src = self.quarantine.folder(where)
        st = _regular(src, name)
        created = len(self.share.created)
        dst = self.share.folder(where, create=True)
        how = _Move(
            src, dst, name, st, _partial_name(path), "a file exists at the original path"
        ).run()
        self.quarantine.emptied.add(where)
        message = _moved(how)
        if len(self.share.created) > created:
            message = (message + "; " if message else "") + (
                "its folder was gone and was made again with mode 0700: set its permissions"
            )
        return message, {"moved": how}

    def purge(self, path: bytes) -> tuple[str | None, dict[str, Any] | None]:
        assert self.quarantine is not None
        where, _, name = path.rpartition(b"/")
        folder = self.quarantine.folder(where)
        _regular(folder, name)
        try:
            os.unlink(name, dir_fd=folder)
        except FileNotFoundError as err:
            raise _Refused("gone", "no longer exists") from err
        self.quarantine.emptied.add(where)
        if self.share is not None:  # the folders that quarantine left for a restore
            self.share.emptied.add(where)
        return None, None


def _moved(how: str) -> str | None:
    if how == "copied":
        return "copied to another file system, then removed"
    if how == "completed":
        return "the destination already held this file (an interrupted move): source removed"
    return None


# ---------------------------------------------------------------------------------------------
# The connector


class FileShareConnector(Connector):
    """Files under a local or mounted share root. See the module docstring for the rules."""

    kind: ClassVar[str] = "fileshare"
    system: FileShareSystem

    def __init__(self, system: FileShareSystem, context: ConnectorContext) -> None:
        super().__init__(system, context)
        self._scans: weakref.WeakSet[Generator[ScanOutput, None, None]] = weakref.WeakSet()
        self._acts: weakref.WeakSet[Generator[Outcome, None, None]] = weakref.WeakSet()
        # discovery: per folder the files to read and to judge by name; compiled locations
        self._discovery_samples: dict[str, tuple[list[tuple[str, int]], ...]] = {}
        self._discovery_selections: dict[tuple[tuple[str, ...], tuple[str, ...]], Selection] = {}

    @property
    def root(self) -> str:
        """The share root as configured, a relative one resolved against the RoPA's folder."""
        return os.path.join(self.context.base_dir, self.system.connection.root)

    def _open_root(self) -> tuple[int, str]:
        """Return an fd for the root directory and the root's real path. Raise
        SystemUnreachable if it is not a directory that can be opened.
        """
        real = os.path.realpath(self.root)
        try:
            fd = _open_dir(real, None, [_DIR_FLAGS | _NOATIME])
        except OSError as err:
            raise SystemUnreachable(
                self.system.id,
                f"share root {self.root} is not a readable directory ({_reason(err)})",
            ) from err
        return fd, real

    def check(self) -> None:
        """Check that the root is a directory that can be listed. Raise SystemUnreachable."""
        fd, _ = self._open_root()
        try:
            with os.scandir(fd) as entries:
                next(entries, None)
        except OSError as err:
            raise SystemUnreachable(
                self.system.id, f"share root {self.root} cannot be listed ({_reason(err)})"
            ) from err
        finally:
            os.close(fd)

    def _location(self, location: LocationModel) -> FileLocation:
        if not isinstance(location, FileLocation):
            raise LocationInvalid(
                self.system.id, "a file share is scanned by include patterns, not by a table"
            )
        return location

    def prepare(self, location: LocationModel, clock: Clock) -> None:
        """Check the location's patterns, path_regex groups and clock. Raise LocationInvalid."""
        location = self._location(location)
        groups = location.regex_groups
        where = f"location with include {location.include}"
        if isinstance(clock, ColumnClock):
            raise LocationInvalid(
                self.system.id,
                f"{where}: a column clock ({clock.column!r}) needs a SQL table; a file's "
                "clock is modified, accessed, ctime, created, {path_date: GROUP} or "
                "{event: ID}",
            )
        if isinstance(clock, PathDateClock):
            if clock.path_date not in groups:
                raise LocationInvalid(
                    self.system.id,
                    f"{where}: the clock reads the date from group {clock.path_date!r}, "
                    f"but path_regex {location.path_regex!r} has no such named group "
                    f"(it has: {', '.join(sorted(groups)) or 'none'})",
                )
            problem = _check_format(clock.format)
            if problem is not None:
                raise LocationInvalid(
                    self.system.id,
                    f"{where}: the date format {clock.format!r} cannot read a date: {problem}",
                )
        if isinstance(clock, EventClock) and location.subject_group not in groups:
            raise LocationInvalid(
                self.system.id,
                f"{where}: the clock is event {clock.event!r}, read per subject, but "
                f"path_regex {location.path_regex!r} has no named group "
                f"{location.subject_group!r} to read the subject from",
            )
        try:
            Selection.compile(location.include, location.exclude)
        except re.error as err:  # pragma: no cover  (translate_glob escapes everything)
            raise LocationInvalid(self.system.id, f"{where}: a pattern is invalid: {err}") from err

    def scan(self, request: ScanRequest) -> Iterator[ScanOutput]:
        """Stream the location's files, findings and, with a cutoff, one NotDueSummary.

        Raise LocationInvalid at once if the location does not fit (see ``prepare``), and
        SystemUnreachable when iterated if the root cannot be opened.
        """
        location = self._location(request.location)
        self.prepare(location, request.clock)
        items = _Items(location, request)
        path_dates = items.path_dates
        stat_clock = _stat_clock(request.clock) if isinstance(request.clock, str) else None
        counts = request.cutoff is not None and (stat_clock is not None or path_dates is not None)
        plan = _WalkPlan(
            root="",  # set once the root is opened
            selection=Selection.compile(location.include, location.exclude),
            stat_clock=stat_clock,
            path_dates=path_dates if counts else None,
            cutoff_ns=_to_ns(request.cutoff) if counts and request.cutoff else None,
        )
        stream = self._stream(plan, items)
        self._scans.add(stream)
        return stream

    def close(self) -> None:
        """Stop the scans still running (their worker processes too) and the acts, and close
        their files.
        """
        for stream in list(self._scans):
            stream.close()
        for acting in list(self._acts):
            acting.close()

    # -- lookup and act -------------------------------------------------------------------------

    def lookup(
        self, location: LocationModel, clock: Clock, tz: tzinfo, keys: Sequence[str]
    ) -> dict[str, ScannedItem]:
        """Given item keys, return the items that still exist, read as ``scan`` reads them.

        Each path is resolved from the root one folder at a time without following a link,
        and its file is only lstat-ed. An item has the key, subject, clock (None for an event
        clock), fingerprint, size and details that a scan would give it now. Absent are keys
        whose file is gone or is not a regular file, that the location's patterns no longer
        cover, and keys that no scan makes. A key whose file cannot be checked (a folder on
        the way cannot be opened or is now a link, the file cannot be stat-ed) comes back
        ``refused="unverifiable"`` with the reason, so execution skips it instead of taking
        it for gone. Works on a read-only connector. Raise LocationInvalid if
        the location does not fit (see ``prepare``), SystemUnreachable if the root cannot be
        opened.
        """
        location = self._location(location)
        self.prepare(location, clock)
        items = _Items(location, ScanRequest(location=location, clock=clock, tz=tz))
        selection = Selection.compile(location.include, location.exclude)
        stat_clock = _stat_clock(clock) if isinstance(clock, str) else None
        root_fd, _ = self._open_root()
        tree = _Tree(root_fd, "share")
        found: dict[str, ScannedItem] = {}
        try:
            for key in keys:
                raw = _key_path(key)
                if raw is None or not selection.covers(raw.decode("utf-8", "surrogateescape")):
                    continue
                where, _, name = raw.rpartition(b"/")
                try:
                    st = _lstat(name, tree.folder(where))
                except _Refused as refused:
                    if refused.status == "failed":  # there, perhaps, but not to be checked
                        found[key] = _unverifiable(key, refused.message)
                    continue
                except OSError as err:
                    if err.errno not in (errno.ENOENT, errno.ENOTDIR):
                        reason = f"{display_key(key)} cannot be checked ({_reason(err)})"
                        found[key] = _unverifiable(key, reason)
                    continue
                if not S_ISREG(st.st_mode):
                    continue
                record = (
                    _ITEM,
                    os.fsdecode(raw),
                    st.st_size,
                    f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}",
                    None if stat_clock is None else stat_clock(st),
                    st.st_nlink,
                )
                found[key] = items.item(record)
        finally:
            tree.close()
        return found

    def act(self, request: ActRequest) -> Iterator[Outcome]:
        """Delete, quarantine, restore or purge files; return an iterator of one Outcome per
        distinct key, in the order of the keys.

        ``delete`` unlinks each file; ``quarantine`` moves it to the quarantine root under
        the same relative path; ``restore`` moves it from there back to the share; ``purge``
        unlinks it from the quarantine. See the module docstring for the rules.

        Everything is checked before the first change: raise ActionUnsupported on a
        read-only connector, for another action, or when a quarantine action has no
        quarantine root; LocationInvalid when the quarantine root and the share root lie one
        inside the other. When iterated, raise SystemUnreachable if a root cannot be opened.
        """
        action = request.action
        if self.context.read_only:
            raise ActionUnsupported(
                self.system.id, f"cannot {action}: the connector is read-only (dry run)"
            )
        if action not in _ACTIONS:
            why = " (a file cannot be anonymised: delete or quarantine it)"
            raise ActionUnsupported(
                self.system.id,
                f"a file share cannot {action!r} files: it can delete, quarantine, restore or "
                "purge them" + (why if action == "anonymise" else ""),
            )
        location = self._location(request.location)
        quarantine = None if action == "delete" else self._quarantine_root(request, action)
        selection = (
            Selection.compile(location.include, location.exclude)
            if action in ("delete", "quarantine")
            else None
        )
        stream = self._act(action, list(dict.fromkeys(request.keys)), selection, quarantine)
        self._acts.add(stream)
        return stream

    def _quarantine_root(self, request: ActRequest, action: str) -> str:
        """Return the quarantine root's real path. Raise ActionUnsupported if there is none,
        LocationInvalid if it lies inside the share root or holds it.
        """
        configured = request.options.get("quarantine_root", self.system.connection.quarantine_root)
        if configured is None:
            raise ActionUnsupported(
                self.system.id,
                f"cannot {action}: the system has no connection.quarantine_root to keep "
                "quarantined files in",
            )
        real = os.path.realpath(os.path.join(self.context.base_dir, configured))
        share = os.path.realpath(self.root)
        if _inside(real, share):
            raise LocationInvalid(
                self.system.id,
                f"quarantine root {configured} lies inside the share root {self.root}: "
                "quarantined files would still be in the share; choose a folder outside it",
            )
        if _inside(share, real):
            raise LocationInvalid(
                self.system.id,
                f"quarantine root {configured} holds the share root {self.root}: a "
                "quarantined file could land back in the share; choose a folder outside it",
            )
        return real

    def _open_quarantine(self, real: str) -> _Tree:
        try:
            fd = os.open(real, _DIR_FLAGS)
        except OSError as err:
            raise SystemUnreachable(
                self.system.id,
                f"quarantine root {real} is not a folder that can be opened ({_reason(err)}); "
                "it must exist",
            ) from err
        return _Tree(fd, "quarantine")

    def _act(
        self,
        action: str,
        keys: list[str],
        selection: Selection | None,
        quarantine_root: str | None,
    ) -> Generator[Outcome, None, None]:
        trees: list[_Tree] = []
        try:
            quarantine = share = None
            if quarantine_root is not None:
                quarantine = self._open_quarantine(quarantine_root)
                trees.append(quarantine)
            if action == "purge":
                # Only to remove the folders a quarantine left for a restore: optional.
                with contextlib.suppress(SystemUnreachable):
                    share = _Tree(self._open_root()[0], "share")
            else:
                share = _Tree(self._open_root()[0], "share")
            if share is not None:
                trees.append(share)
            acting = _Acting(share, quarantine, selection)
            handler = {
                "delete": acting.delete,
                "quarantine": acting.quarantine_one,
                "restore": acting.restore,
                "purge": acting.purge,
            }[action]
            for key in keys:
                path = _key_path(key)
                if path is None:
                    yield Outcome(key, "failed", "not a key that a scan of a file share makes")
                    continue
                try:
                    message, details = handler(path)
                except _Refused as refused:
                    yield Outcome(key, refused.status, refused.message)
                except OSError as err:
                    yield Outcome(key, "failed", f"{action} failed: {_reason(err)}")
                else:
                    yield Outcome(key, "done", message, details)
            for tree in trees:
                tree.prune()
        finally:
            for tree in trees:
                tree.close()

    def _stream(self, plan: _WalkPlan, items: _Items) -> Generator[ScanOutput, None, None]:
        root_fd, root_real = self._open_root()
        plan = dataclasses.replace(plan, root=root_real)
        try:
            workers = self._workers()
            if workers:
                records = _walk_in_workers(root_fd, plan, workers, self.system.id)
            else:
                records = _Walker(plan).run(root_fd)
            with contextlib.closing(records):
                for record in records:
                    tag = record[0]
                    if tag == _ITEM:
                        yield items.item(record)
                    elif tag == _FINDING:
                        _, kind, path, message = record
                        where = "." if path == "." else encode_key(os.fsencode(path))
                        yield ScanFinding(kind, where, message)
                    elif tag == _SUMMARY:
                        _, count, earliest, size = record
                        earliest_clock = None if earliest is None else _from_ns(earliest, items.tz)
                        yield NotDueSummary(count, earliest_clock, size)
        finally:
            os.close(root_fd)

    # -- discovery (see connectors._sharediscovery) ---------------------------------------------

    def discover(self, request: DiscoverRequest) -> Iterator[DiscoveredStore | ScanFinding]:
        """Stream the folders down to ``request.depth`` that hold files, with file counts,
        bytes and age, and an ``uninspectable`` finding for each folder that cannot be read."""
        from connectors import _sharediscovery

        return _sharediscovery.discover(self, request)

    def sample(self, request: SampleRequest) -> Iterator[Sample | ScanFinding]:
        """Read a few files of a discovered folder (CSV, TSV, XLSX, text; at most
        ``request.bytes`` each) and name the others, without changing access times."""
        from connectors import _sharediscovery

        return _sharediscovery.sample(self, request)

    def scope(self, request: DiscoverRequest) -> tuple[str, ...]:
        """Return the place discovery reaches: the real path of the root (and base)."""
        from connectors import _sharediscovery

        return _sharediscovery.scope(self, request)

    def quarantine_places(self) -> tuple[tuple[str, ...], ...]:
        """Return the quarantine root's place, if the system has one."""
        from connectors import _sharediscovery

        configured = self.system.connection.quarantine_root
        if configured is None:
            return ()
        return (_sharediscovery.place_of(os.path.join(self.context.base_dir, configured)),)

    def locate(self, store: DiscoveredStore) -> tuple[str, ...]:
        """Return a folder's place: ``("fileshare", *its real path's parts)``."""
        from connectors import _sharediscovery

        return _sharediscovery.locate(self, store)

    def coverage(self, location: Any, place: tuple[str, ...], store: DiscoveredStore) -> str:
        """Return whether the location's patterns cover the folder (or file) at ``place``."""
        from connectors import _sharediscovery

        return _sharediscovery.coverage(self, location, place, store)

    def _workers(self) -> int:
        """Return how many worker processes walk the tree; 0 means the calling process does.

        The connector option ``walk_workers`` sets the number; by default it is one less
        than the number of CPUs this process may run on, at most 4, leaving a CPU to
        whatever consumes the items.
        Workers are forked, so there are none where ``fork`` is missing or the caller runs
        other threads (a thread that holds a lock at the fork would leave the child's copy
        of that lock held forever).
        """
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return 0
        wanted = self.context.options.get("walk_workers")
        if wanted is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            return max(0, min((cpus or os.cpu_count() or 1) - 1, 4))
        return max(0, int(wanted))
