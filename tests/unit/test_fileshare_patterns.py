"""Pure logic of the file-share connector: glob translation, selection and item keys."""

from __future__ import annotations

import fnmatch
import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.fileshare import (
    KEY_PREFIX,
    Selection,
    decode_key,
    display_key,
    encode_key,
    translate_glob,
    translate_glob_ancestors,
)


def matches(pattern: str, path: str) -> bool:
    return re.fullmatch(translate_glob(pattern), path) is not None


def may_hold(pattern: str, directory: str) -> bool:
    source = translate_glob_ancestors(pattern)
    return source is not None and re.fullmatch(source, directory) is not None


# --- glob translation: examples ------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**", "a", True),
        ("**", "a/b/c.txt", True),
        ("**/*.pdf", "x.pdf", True),
        ("**/*.pdf", "a/b/x.pdf", True),
        ("**/*.pdf", "a/b/x.pdfx", False),
        ("homes/**/cache/*", "homes/cache/f", True),
        ("homes/**/cache/*", "homes/123456/deep/cache/f", True),
        ("homes/**/cache/*", "homes/123456/cache/sub/f", False),
        ("homes/**/cache/*", "homes/xcache/f", False),
        ("exports/**", "exports/2019/a.csv", True),
        ("exports/**", "exports", False),
        ("exports/**", "exportsx/a.csv", False),
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("x[!a]y", "x/y", False),
        ("x[!a]y", "xby", True),
        ("x[!a]y", "xay", False),
        ("[+-0]", "/", False),
        ("[a-c]", "b", True),
        ("[a-c]", "d", False),
        ("[]]", "]", True),
        ("[!]]", "a", True),
        ("[", "[", True),
        ("a[b", "a[b", True),
        ("[z-a]", "z", False),
        ("*", ".hidden", True),
        ("tmp/", "tmp/a/b", True),
        ("a//b", "a/b", True),
        ("./a", "a", True),
        ("a+b(c)$.txt", "a+b(c)$.txt", True),
        ("a\\b", "a\\b", True),
        ("?", "é", True),
        ("[é]", "é", True),
        ("*", "line\nbreak", True),
        ("*a*a*a*b", "a" * 200, False),
    ],
)
def test_glob_examples(pattern: str, path: str, expected: bool) -> None:
    """A glob pattern matches exactly the relative paths its documented rules say."""
    assert matches(pattern, path) is expected


def test_nfd_name_is_two_characters_for_question_mark() -> None:
    """'?' matches one character, so an NFD letter needs two: names are not normalised."""
    nfd = unicodedata.normalize("NFD", "é")
    assert not matches("?", nfd)
    assert matches("??", nfd)


def test_many_stars_stay_fast_on_a_long_name() -> None:
    """A pattern of many stars fails on a long non-matching name without backtracking blow-up."""
    assert not matches("*a*a*a*a*a*a*a*a*b", "a" * 5000)


# --- glob translation: properties ----------------------------------------------------------

SEGMENT_PATTERN = st.text(alphabet="ab*?[]!-", min_size=1, max_size=6).filter(lambda s: s != "**")
PATH_SEGMENT = st.text(alphabet="ab-![]*?", min_size=1, max_size=5)
PATH = st.lists(PATH_SEGMENT, min_size=1, max_size=4)


@given(st.lists(SEGMENT_PATTERN, min_size=1, max_size=4), PATH)
def test_glob_agrees_with_fnmatch_per_segment(pattern: list[str], path: list[str]) -> None:
    """Without '**', a pattern matches a path exactly when each segment fnmatches its own."""
    expected = len(pattern) == len(path) and all(
        fnmatch.fnmatchcase(name, segment) for name, segment in zip(path, pattern, strict=True)
    )
    assert matches("/".join(pattern), "/".join(path)) is expected


def reference(pattern: list[str], path: list[str]) -> bool:
    """A slow, obviously right matcher: '**' takes any number of segments, at the end one+."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return len(path) >= 1
        return any(reference(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and reference(rest, path[1:])


@given(st.lists(st.one_of(SEGMENT_PATTERN, st.just("**")), min_size=1, max_size=4), PATH)
def test_glob_with_double_star_agrees_with_reference(pattern: list[str], path: list[str]) -> None:
    """With '**' segments, the regex agrees with a recursive reference matcher."""
    merged = [s for i, s in enumerate(pattern) if not (s == "**" and pattern[i - 1 : i] == ["**"])]
    assert matches("/".join(pattern), "/".join(path)) is reference(merged, path)


# A pattern token and a way to make a path segment piece it matches.
TOKENS = st.sampled_from(["a", "b", "*", "?", "[ab]", "[!a]"])


@st.composite
def pattern_and_instance(draw: st.DrawFn) -> tuple[str, str]:
    """Draw a pattern and a path that the pattern must match, by filling in its wildcards."""
    pattern: list[str] = []
    path: list[str] = []
    count = draw(st.integers(min_value=1, max_value=4))
    for index in range(count):
        last = index == count - 1
        if draw(st.booleans()) and not (pattern and pattern[-1] == "**"):
            pattern.append("**")
            fill = draw(st.lists(st.text("ab", min_size=1, max_size=3), max_size=2))
            if last and not fill:
                fill = ["a"]
            path.extend(fill)
            continue
        tokens = draw(st.lists(TOKENS, min_size=1, max_size=4))
        name = ""
        for token in tokens:
            if token == "*":
                name += draw(st.text("ab", max_size=3))
            elif token in ("?", "[ab]"):
                name += draw(st.sampled_from("ab"))
            elif token == "[!a]":
                name += "b"
            else:
                name += token
        if not name:
            name, tokens = "a", [*tokens, "a"]
        pattern.append("".join(tokens))
        path.append(name)
    return "/".join(pattern), "/".join(path)


@given(pattern_and_instance())
def test_instance_of_pattern_matches(case: tuple[str, str]) -> None:
    """A path made by filling in a pattern's wildcards matches the pattern."""
    pattern, path = case
    assert matches(pattern, path)


@given(pattern_and_instance())
def test_every_ancestor_of_a_match_may_hold_it(case: tuple[str, str]) -> None:
    """The walk never skips a directory below which a path the pattern matches lies."""
    pattern, path = case
    parts = path.split("/")
    for depth in range(1, len(parts)):
        assert may_hold(pattern, "/".join(parts[:depth])), (pattern, path, depth)


def test_ancestors_skip_unrelated_directories() -> None:
    """A pattern under a fixed directory lets the walk skip the other directories."""
    assert may_hold("exports/*/*.csv", "exports")
    assert may_hold("exports/*/*.csv", "exports/2019")
    assert not may_hold("exports/*/*.csv", "homes")
    assert not may_hold("exports/*/*.csv", "exports/2019/deeper")
    assert translate_glob_ancestors("*.csv") is None


# --- selection -----------------------------------------------------------------------------


def test_default_include_needs_no_regex() -> None:
    """The default include '**' with no exclude compiles to no regex at all (the fast path)."""
    selection = Selection.compile(["**"], [])
    assert (selection.files, selection.dirs, selection.exclude_files, selection.exclude_dirs) == (
        None,
        None,
        None,
        None,
    )


def test_exclude_of_everything_below_prunes_the_directory() -> None:
    """Excluding 'a/*/cache/**' prunes the directory a/x/cache itself, not just its files."""
    selection = Selection.compile(["**"], ["a/*/cache/**"])
    assert selection.exclude_dirs is not None
    assert selection.exclude_dirs.fullmatch("a/x/cache")
    assert not selection.exclude_dirs.fullmatch("a/x")


def test_exclude_beats_include() -> None:
    """A file that an include and an exclude both match is not selected."""
    selection = Selection.compile(["**/*.pdf"], ["**/tmp/**"])
    assert selection.selects("a/b.pdf")
    assert not selection.selects("a/tmp/b.pdf")
    assert not selection.selects("a/b.txt")


def test_empty_include_selects_nothing() -> None:
    """An empty include list selects no file (rather than every file)."""
    assert not Selection.compile([], []).selects("a.txt")


# --- keys ----------------------------------------------------------------------------------


@given(st.binary())
def test_key_round_trip(raw: bytes) -> None:
    """Any path bytes survive encode_key then decode_key exactly."""
    assert decode_key(encode_key(raw)) == raw


@given(st.binary())
def test_key_is_storable_text(raw: bytes) -> None:
    """Every key is valid Unicode (no lone surrogates): SQLite, JSON and CSV can store it."""
    encode_key(raw).encode("utf-8")


@given(st.text().filter(lambda t: not t.startswith(KEY_PREFIX)))
def test_utf8_path_is_its_own_key(text: str) -> None:
    """A path that is valid UTF-8 is its own key."""
    assert encode_key(text.encode("utf-8")) == text


def test_invalid_utf8_gets_a_base64_key() -> None:
    """A path with bytes that are not UTF-8 gets a '!b64:' key."""
    raw = b"homes/\xff\xfe.txt"
    assert encode_key(raw) == KEY_PREFIX + "aG9tZXMv__4udHh0"


def test_path_that_looks_like_an_escaped_key_is_escaped_too() -> None:
    """A valid path starting with the escape prefix is base64-encoded, so it decodes right."""
    raw = (KEY_PREFIX + "aG9tZXM=").encode()
    key = encode_key(raw)
    assert key != raw.decode()
    assert decode_key(key) == raw


@pytest.mark.parametrize("key", [KEY_PREFIX + "not base64!", KEY_PREFIX + "abc", "\udcff"])
def test_malformed_key_is_rejected(key: str) -> None:
    """decode_key raises ValueError for a key encode_key could not have made."""
    with pytest.raises(ValueError):
        decode_key(key)


# --- display -------------------------------------------------------------------------------


def undisplay(shown: str) -> bytes:
    """Invert display_key's escapes (test oracle)."""
    out = bytearray()
    i = 0
    simple = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
    while i < len(shown):
        char = shown[i]
        if char != "\\":
            out += char.encode("utf-8")
            i += 1
            continue
        kind = shown[i + 1]
        if kind in simple:
            out += simple[kind].encode()
            i += 2
        elif kind == "x":
            code = int(shown[i + 2 : i + 4], 16)
            out += bytes([code]) if code >= 0x80 else chr(code).encode()
            i += 4
        else:
            width = 4 if kind == "u" else 8
            out += chr(int(shown[i + 2 : i + 2 + width], 16)).encode("utf-8")
            i += 2 + width
    return bytes(out)


@given(st.binary())
def test_display_is_printable(raw: bytes) -> None:
    """A displayed key holds no control, format or unassigned characters and no surrogates."""
    shown = display_key(encode_key(raw))
    assert all(
        not unicodedata.category(c).startswith("C") and unicodedata.category(c) not in ("Zl", "Zp")
        for c in shown
    )


@given(st.one_of(st.binary(), st.text().map(lambda t: t.encode("utf-8"))))
def test_display_is_unambiguous(raw: bytes) -> None:
    """Two different paths never display the same: the escapes can be read back exactly."""
    assert undisplay(display_key(encode_key(raw))) == raw


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"homes/jan de vries/cv.docx", "homes/jan de vries/cv.docx"),
        (b"a\nb", "a\\nb"),
        (b"a\\b", "a\\\\b"),
        (b"caf\xc3\xa9", "café"),
        (b"bad\xff", "bad\\xff"),
        ("evil\u202etxt.exe".encode(), "evil\\u202etxt.exe"),
    ],
)
def test_display_examples(raw: bytes, shown: str) -> None:
    """Readable names show as they are; newlines, backslashes, stray bytes and bidi escape."""
    assert display_key(encode_key(raw)) == shown
