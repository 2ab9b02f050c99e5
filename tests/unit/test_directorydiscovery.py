"""Directory discovery's pure parts: reading an OU's DACL for the List Contents right, the
exclude patterns, and which attributes a sample never reads."""

from __future__ import annotations

import pytest

from connectors._directorydiscovery import _BOOKKEEPING, _SECRET, _matches, _pattern, dacl_allows

ME = "S-1-5-21-1-2-3-1105"
USERS = "S-1-5-11"
LIST = 0x4


def _sid(text: str) -> bytes:
    parts = text.split("-")
    subs = [int(p) for p in parts[3:]]
    raw = bytes([int(parts[1]), len(subs)]) + int(parts[2]).to_bytes(6, "big")
    return raw + b"".join(s.to_bytes(4, "little") for s in subs)


def _ace(kind: int, mask: int, sid: str, flags: int = 0, object_type: bool = False) -> bytes:
    body = mask.to_bytes(4, "little")
    if kind in (0x05, 0x06):
        body += (1 if object_type else 0).to_bytes(4, "little")
        body += b"\x11" * 16 if object_type else b""
    body += _sid(sid)
    return bytes([kind, flags]) + (4 + len(body)).to_bytes(2, "little") + body


def _descriptor(*aces: bytes, dacl: bool = True) -> bytes:
    acl = b"".join(aces)
    header = bytes([4, 0]) + (8 + len(acl)).to_bytes(2, "little")
    header += len(aces).to_bytes(2, "little") + b"\0\0"
    control = 0x8004 if dacl else 0x8000
    sd = bytes([1, 0]) + control.to_bytes(2, "little") + b"\0" * 12
    sd += (20 if dacl else 0).to_bytes(4, "little")
    return sd + (header + acl if dacl else b"")


def test_an_allow_for_a_group_of_the_token_grants_listing() -> None:
    """An ACE that allows List Contents to Authenticated Users grants it to the account."""
    sd = _descriptor(_ace(0x00, 0x14, USERS))
    assert dacl_allows(sd, {ME, USERS}, LIST)


def test_a_deny_before_the_allow_wins() -> None:
    """A deny of List Contents to the account, placed first, wins over the allow after it."""
    sd = _descriptor(_ace(0x01, LIST, ME), _ace(0x00, 0x14, USERS))
    assert not dacl_allows(sd, {ME, USERS}, LIST)


def test_inherit_only_and_object_typed_aces_do_not_decide() -> None:
    """A deny that only children inherit, and one for an object type, leave the allow."""
    sd = _descriptor(
        _ace(0x01, LIST, ME, flags=0x0A),
        _ace(0x06, LIST, ME, object_type=True),
        _ace(0x00, LIST, USERS),
    )
    assert dacl_allows(sd, {ME, USERS}, LIST)


def test_generic_read_grants_listing_and_no_matching_ace_denies_it() -> None:
    """GENERIC_READ includes List Contents; a DACL granting only others grants nothing."""
    assert dacl_allows(_descriptor(_ace(0x00, 0x80000000, ME)), {ME}, LIST)
    assert not dacl_allows(_descriptor(_ace(0x00, LIST, "S-1-5-32-544")), {ME}, LIST)


def test_no_dacl_grants_everything_and_a_cut_descriptor_is_an_error() -> None:
    """A descriptor without a DACL grants every right; one cut short raises ValueError."""
    assert dacl_allows(_descriptor(dacl=False), {ME}, LIST)
    with pytest.raises(ValueError):
        dacl_allows(_descriptor(_ace(0x00, LIST, ME))[:30], {ME}, LIST)


def test_exclude_patterns_match_a_whole_dn_or_any_rdn() -> None:
    """A pattern with a comma matches a whole DN, case and spaces aside; one without matches
    an RDN."""
    whole = _pattern("*, OU=Oud , DC=school,DC=local")
    assert _matches(whole, ("ou=2019", "ou=oud", "dc=school", "dc=local"))
    assert not _matches(whole, ("ou=oud", "dc=school", "dc=local"))
    assert _matches(_pattern("OU=Test*"), ("ou=testklas", "dc=school"))
    assert not _matches(_pattern("OU=Test*"), ("ou=klas", "ou=test", "dc=school"))


@pytest.mark.parametrize(
    "name",
    [
        "userPassword",
        "unicodePwd",
        "ntPwdHistory",
        "supplementalCredentials",
        "ms-Mcs-AdmPwd",
        "msLAPS-Password",
        "msFVE-RecoveryPassword",
        "sambaNTPassword",
        "pwdHistory",
        "krbPrincipalKey",
        "userPKCS12",
    ],
)
def test_secret_attributes_are_never_sampled(name: str) -> None:
    """Passwords, their hashes, LAPS and BitLocker recovery passwords and keys are secrets."""
    assert _SECRET.search(name)


@pytest.mark.parametrize(
    "name", ["mail", "employeeID", "employeeNumber", "telephoneNumber", "description", "info"]
)
def test_personal_attributes_are_sampled(name: str) -> None:
    """The attributes that hold personal data are neither secret nor bookkeeping."""
    assert not _SECRET.search(name) and name.lower() not in _BOOKKEEPING
