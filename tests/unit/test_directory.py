"""The directory connector's pure parts: AD and LDAP times, filter escaping and building, the
RoPA models and checks of directory systems and locations, and the lazy ldap3 import."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.directory import (
    ad_time,
    build_filter,
    condition_filter,
    escape_value,
    filter_attributes,
    from_ad_time,
    generalized_time,
)
from sweeper.errors import RopaInvalid
from sweeper.ropa import load_ropa
from sweeper.ropa.model import DirectoryCondition, DirectoryConnection, DirectoryLocation

INVALID = Path(__file__).parent / "ropa_invalid_directory"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# -- times ----------------------------------------------------------------------------------


def test_ad_time_of_the_unix_epoch() -> None:
    """116444736000000000 hundred-nanosecond intervals after 1601 is 1970-01-01 UTC."""
    assert ad_time(116444736000000000) == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("never", [0, 0x7FFFFFFFFFFFFFFF, -1])
def test_ad_never_values_have_no_time(never: int) -> None:
    """0 and 0x7FFFFFFFFFFFFFFF (and nonsense below 0) mean never."""
    assert ad_time(never) is None


@given(
    st.datetimes(
        min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
)
def test_ad_time_round_trips_to_the_microsecond(moment: datetime) -> None:
    """Every moment AD can hold survives being written as a large integer and read back."""
    assert ad_time(from_ad_time(moment)) == moment


def test_from_ad_time_refuses_naive_datetimes() -> None:
    """A naive datetime has no instant: refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        from_ad_time(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261201080013.0Z", datetime(2026, 12, 1, 8, 0, 13, tzinfo=UTC)),
        ("20261201080425Z", datetime(2026, 12, 1, 8, 4, 25, tzinfo=UTC)),
        ("2026120108Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("202612010804.5Z", datetime(2026, 12, 1, 8, 4, 30, tzinfo=UTC)),
        (
            "20261201080425+0100",
            datetime(2026, 12, 1, 8, 4, 25, tzinfo=timezone(timedelta(hours=1))),
        ),
        ("20260701120000", datetime(2026, 7, 1, 12, tzinfo=AMSTERDAM)),
    ],
)
def test_generalized_time(text: str, expected: datetime) -> None:
    """Generalized Time with and without fractions and zones (none: the system's timezone)."""
    assert generalized_time(text, AMSTERDAM) == expected


@pytest.mark.parametrize("text", ["", "2026-12-01", "20261301000000Z", "yesterday"])
def test_generalized_time_refuses_other_text(text: str) -> None:
    """Anything else is a ValueError (the item's problem), never a guess."""
    with pytest.raises(ValueError):
        generalized_time(text, UTC)


# -- filters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("*)(objectClass=*", "\\2a\\29\\28objectClass=\\2a"),
        ("a\\b", "a\\5cb"),
        ("nul\x00", "nul\\00"),
        ("Zoë", "Zoë"),
        (True, "TRUE"),
        (100001, "100001"),
    ],
)
def test_escape_value(value: str | int | bool, escaped: str) -> None:
    """The RFC 4515 specials are escaped; non-ASCII stays UTF-8; booleans are TRUE/FALSE."""
    assert escape_value(value) == escaped


@given(st.text(min_size=1))
def test_an_escaped_value_is_one_equality_assertion(value: str) -> None:
    """Whatever the text, the escaped condition parses as a single test of its attribute."""
    from ldap3.operation.search import MATCH_EQUAL, parse_filter

    root = parse_filter(f"(cn={escape_value(value)})", None, False, False, None, False)
    (node,) = root.elements
    assert node.tag == MATCH_EQUAL and node.assertion["attr"] == "cn"


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("=", "4B", "(department=4B)"),
        ("!=", "4B", "(!(department=4B))"),
        (">=", "2", "(department>=2)"),
        ("in", ["4B", "4C"], "(|(department=4B)(department=4C))"),
        ("in", ["4B"], "(department=4B)"),
        ("not in", ["4B", "4C"], "(!(|(department=4B)(department=4C)))"),
        ("present", None, "(department=*)"),
        ("absent", None, "(!(department=*))"),
    ],
)
def test_condition_filter(op: str, value: object, expected: str) -> None:
    """Each operator becomes its LDAP filter."""
    condition = DirectoryCondition.model_validate(
        {"attribute": "department", "op": op, "value": value}
    )
    assert condition_filter(condition) == expected


def test_build_filter_for_ad_excludes_computers() -> None:
    """AD's default object class user leaves computer accounts out; the raw filter is ANDed."""
    location = DirectoryLocation(
        system="ad",
        base_dn="OU=Pupils,DC=school,DC=local",
        where=[DirectoryCondition(attribute="department", value="4B")],
        filter="(|(title=pupil)(title=student))",
    )
    assert build_filter(location, "ad") == (
        "(&(objectClass=user)(!(objectClass=computer))(department=4B)"
        "(|(title=pupil)(title=student)))"
    )
    assert filter_attributes(build_filter(location, "ad")) == {"objectClass", "department", "title"}


def test_build_filter_for_openldap() -> None:
    """OpenLDAP's default object class is inetOrgPerson."""
    location = DirectoryLocation(system="ldap", base_dn="ou=people,dc=school,dc=local")
    assert build_filter(location, "openldap") == "(&(objectClass=inetOrgPerson))"


def test_importing_the_connector_does_not_import_ldap3() -> None:
    """A site without directories needs no ldap3: the driver is imported on first use."""
    code = "import sys, connectors.directory; print('ldap3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the RoPA -------------------------------------------------------------------------------

EXPECTED: dict[str, tuple[int, str, str]] = {
    "anonymise_by_hashing.yaml": (
        12,
        "activities[0].locations[0].anonymise",
        "a hash is not anonymisation",
    ),
    "anonymise_without_attributes.yaml": (
        10,
        "activities[0].locations[0].anonymise",
        "list the attributes to clear",
    ),
    "attribute_clock_on_sql.yaml": (
        13,
        "activities[0].locations[0].clock",
        "not {attribute: accountExpires}",
    ),
    "base_dn_not_a_dn.yaml": (
        11,
        "activities[0].locations[0].base_dn",
        "'Leerlingen' is not a distinguished name",
    ),
    "condition_value_with_nul.yaml": (
        13,
        "activities[0].locations[0].where[0].value",
        "NUL byte",
    ),
    "disable_on_sql.yaml": (10, "activities[0].locations[0]", "SQL rows cannot be disabled"),
    "disable_setting_on_ad.yaml": (8, "systems[0].connection", "disable is for OpenLDAP"),
    "event_clock_without_subject_attribute.yaml": (
        13,
        "activities[0].locations[0].subject",
        "add subject: ATTRIBUTE",
    ),
    "filter_does_not_parse.yaml": (
        12,
        "activities[0].locations[0].filter",
        "'(department=4B' does not parse",
    ),
    "last_login_clock_on_file.yaml": (
        12,
        "activities[0].locations[0].clock",
        "not 'last_login'",
    ),
    "ldaps_with_ldap_url.yaml": (8, "systems[0].connection", "tls is ldaps but"),
    "move_without_staging_ou.yaml": (
        10,
        "activities[0].locations[0].staging_ou",
        "name the OU to move accounts to",
    ),
    "mtime_clock_on_directory.yaml": (
        12,
        "activities[0].locations[0].clock",
        "a directory location needs clock",
    ),
    "openldap_delete_without_disable.yaml": (
        14,
        "activities[0].locations[0].system",
        "set connection.disable",
    ),
    "password_in_server_url.yaml": (
        9,
        "systems[0].connection.servers",
        "a server URL holds a user or password",
    ),
    "quarantine_on_directory.yaml": (
        10,
        "activities[0].locations[0]",
        "accounts cannot be quarantined",
    ),
}


def test_every_invalid_directory_file_has_an_expectation() -> None:
    """Each file in ropa_invalid_directory/ is in the table and each table entry has a file."""
    assert sorted(p.name for p in INVALID.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_invalid_directory_ropa_names_its_one_mistake(
    name: str, expected: tuple[int, str, str]
) -> None:
    """Each invalid file is refused with exactly its one mistake: file, line, path, message."""
    with pytest.raises(RopaInvalid) as info:
        load_ropa(INVALID / name)
    (problem,) = [p for p in info.value.problems if p.severity == "error"]
    line, path, phrase = expected
    assert (problem.line, problem.path) == (line, path)
    assert phrase in problem.message


def test_password_never_echoed_from_a_server_url() -> None:
    """The error about a password in a URL does not repeat the URL."""
    with pytest.raises(RopaInvalid) as info:
        load_ropa(INVALID / "password_in_server_url.yaml")
    assert "geheim" not in str(info.value)


def test_tls_follows_the_url_scheme_by_default() -> None:
    """ldaps:// means LDAPS, ldap:// means StartTLS; plain LDAP only when tls is none."""

    def mode(url: str, **kw: object) -> str:
        return DirectoryConnection.model_validate(
            {"servers": [url], "bind_dn": "CN=svc,DC=x", "credential": "ad", **kw}
        ).tls_mode

    assert mode("ldaps://dc1") == "ldaps"
    assert mode("ldap://dc1") == "starttls"
    assert mode("ldap://dc1", tls="none") == "none"


def test_insecure_connections_say_why() -> None:
    """Plain LDAP and unverified TLS are allowed only explicitly, and say what they risk."""
    base = {"servers": ["ldap://dc1"], "bind_dn": "CN=svc,DC=x", "credential": "ad"}
    assert DirectoryConnection.model_validate(base).insecure is None
    plain = DirectoryConnection.model_validate({**base, "tls": "none"}).insecure
    assert plain is not None and "plain LDAP" in plain
    unverified = DirectoryConnection.model_validate({**base, "verify_tls": False}).insecure
    assert unverified is not None and "verify_tls: false" in unverified
