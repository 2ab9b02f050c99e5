"""Any file name works: each is found under a key that decodes back to its exact bytes."""

from __future__ import annotations

import pytest
from fileshare_tree import NAMES, ScanFn, Share

from connectors.fileshare import KEY_PREFIX, decode_key, display_key


@pytest.mark.parametrize("raw", list(NAMES.values()), ids=list(NAMES))
def test_any_name_is_found_with_an_exact_key(share: Share, scan: ScanFn, raw: bytes) -> None:
    """The file is an item whose key decodes to the exact bytes of its relative path."""
    share.file(raw)
    [key] = scan().keys
    assert decode_key(key) == raw
    key.encode("utf-8")  # storable text: no lone surrogates


def test_nfc_and_nfd_names_are_two_files(share: Share, scan: ScanFn) -> None:
    """Names differing only in Unicode normalisation are two items with two keys."""
    share.file(NAMES["nfc"])
    share.file(NAMES["nfd"])
    assert {decode_key(k) for k in scan().keys} == {NAMES["nfc"], NAMES["nfd"]}


def test_invalid_utf8_gets_an_escaped_key(share: Share, scan: ScanFn) -> None:
    """A path that is not UTF-8 gets a '!b64:' key; a valid one is its own key."""
    share.file(NAMES["invalid-utf8"])
    share.file(NAMES["space"])
    keys = scan().keys
    assert NAMES["space"].decode() in keys
    assert any(k.startswith(KEY_PREFIX) for k in keys)


def test_name_with_newline_displays_escaped(share: Share, scan: ScanFn) -> None:
    """A key with a newline shows as one line in a report."""
    share.file(NAMES["newline"])
    [key] = scan().keys
    assert display_key(key) == "two\\nlines.txt"


def test_patterns_match_names_with_invalid_bytes(share: Share, scan: ScanFn) -> None:
    """Include patterns and '?' see a byte that is not UTF-8 as one character."""
    share.file(b"bad\xff.txt")
    share.file(b"good.txt")
    keys = scan(include=["bad?.txt"]).keys
    assert {decode_key(k) for k in keys} == {b"bad\xff.txt"}


def test_subject_with_invalid_bytes_is_storable(share: Share, scan: ScanFn) -> None:
    """A subject matched over bytes that are not UTF-8 comes out as escaped, storable text."""
    share.file(b"homes/12\xff34/a.txt")
    [item] = scan(path_regex=r"^homes/(?P<subject>[^/]+)/").items.values()
    assert item.subject == "12\\xff34"
