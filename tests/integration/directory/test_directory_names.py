"""Bad input is an error before any account is searched: unknown names, bases, filters."""

from __future__ import annotations

import pytest
from directory_data import Directory
from pydantic import ValidationError

from sweeper.errors import LocationInvalid


def prepare(directory: Directory, clock: object = "created", **location: object) -> int:
    """Prepare a location; return the LDAP requests it took."""
    from directory_data import _CLOCK

    with directory.connector() as connector:
        connector.check()
        before = connector.round_trips
        connector.prepare(directory.location(**location), _CLOCK.validate_python(clock))
        return connector.round_trips - before


def test_unknown_attribute_in_a_condition_is_named_with_close_matches(ad: Directory) -> None:
    """A misspelt attribute is refused with the names it may have meant."""
    with pytest.raises(LocationInvalid, match=r"'employeID' \(filter\).*did you mean employeeID"):
        prepare(ad, where=[{"attribute": "employeID", "value": "1"}])


def test_unknown_attribute_in_a_raw_filter(directory: Directory) -> None:
    """An attribute of the raw filter that the schema lacks is refused."""
    with pytest.raises(LocationInvalid, match="'klas' \\(filter\\) is not in the server's schema"):
        prepare(directory, filter="(klas=4B)")


def test_unknown_subject_report_and_anonymise_attributes(directory: Directory) -> None:
    """Subject, report and anonymise attributes are checked too, all reported at once."""
    with pytest.raises(LocationInvalid) as info:
        prepare(directory, subject="leerlingnummer", report=["klas"], anonymise={"foto": None})
    message = str(info.value)
    for name in ("'leerlingnummer' (subject)", "'klas' (report)", "'foto' (anonymise)"):
        assert name in message


def test_unknown_object_class(directory: Directory) -> None:
    """An object class the schema lacks is refused."""
    with pytest.raises(LocationInvalid, match="object class 'leerling' is not in the server"):
        prepare(directory, object_class="leerling")


def test_clock_attribute_that_is_not_a_date(directory: Directory) -> None:
    """{attribute: NAME} must name a date attribute."""
    with pytest.raises(LocationInvalid, match="clock attribute 'description' has syntax"):
        prepare(directory, {"attribute": "description"})


def test_base_dn_that_does_not_exist(directory: Directory) -> None:
    """A base DN that parses but does not exist is refused before anything is scanned."""
    missing = "OU=Nergens," + directory.ou
    with pytest.raises(LocationInvalid, match=r"base_dn .* does not exist"):
        prepare(directory, base_dn=missing)


def test_base_dn_that_does_not_parse(directory: Directory) -> None:
    """A base DN that is not a DN is refused when the RoPA is loaded."""
    with pytest.raises(ValidationError, match="is not a distinguished name"):
        directory.location(base_dn="Leerlingen")


def test_filter_that_does_not_parse(directory: Directory) -> None:
    """A raw filter that does not parse is refused when the RoPA is loaded."""
    with pytest.raises(ValidationError, match="does not parse"):
        directory.location(filter="(cn=Jan")
    with pytest.raises(ValidationError, match="does not parse"):
        directory.location(filter="(cn=Jan)(cn=Piet)")


def test_names_are_checked_without_searching_accounts(directory: Directory) -> None:
    """Preparing a good location reads the schema, the base, the groups, but no account page."""
    directory.user("Jan")
    with directory.connector() as connector:
        connector.check()
        connector.prepare(directory.location(), "created")
        assert connector.round_trips < 20
