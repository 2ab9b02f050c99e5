"""Personal-data detectors: checksums, field names, values, masking, and that no value is kept."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sweeper.detect import Detectors, Pattern, Tally, bsn_valid, iban_valid, mask, sensitivity

digits8 = st.text(alphabet="0123456789", min_size=8, max_size=8)


def _bsn_from(first8: str) -> str | None:
    """Return the nine-digit BSN that starts with these eight digits, if one exists."""
    total = sum(int(d) * w for d, w in zip(first8, range(9, 1, -1), strict=True))
    check = total % 11
    return None if check == 10 else first8 + str(check)


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


valid_bsns = digits8.map(_bsn_from).filter(lambda b: b is not None and b != "000000000")
nl_ibans = st.builds(
    lambda bank, account: _iban("NL", bank + account),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4),
    st.text(alphabet="0123456789", min_size=10, max_size=10),
)


@given(valid_bsns)
def test_a_number_built_to_the_eleven_test_passes(bsn: str | None) -> None:
    """Nine digits whose weighted sum is a multiple of 11 pass the eleven-test."""
    assert bsn is not None and bsn_valid(bsn)


@given(valid_bsns, st.integers(0, 8), st.integers(1, 9))
def test_changing_one_digit_of_a_bsn_fails_the_eleven_test(
    bsn: str | None, position: int, delta: int
) -> None:
    """Every single-digit error is caught (the weights 9..2 and -1 are all prime to 11)."""
    assert bsn is not None
    digit = (int(bsn[position]) + delta) % 10
    changed = bsn[:position] + str(digit) + bsn[position + 1 :]
    assert not bsn_valid(changed)


@given(valid_bsns, st.integers(0, 7))
def test_swapping_two_adjacent_digits_of_a_bsn_fails_the_eleven_test(
    bsn: str | None, position: int
) -> None:
    """Every swap of two different neighbouring digits is caught."""
    assert bsn is not None
    assume(bsn[position] != bsn[position + 1])
    swapped = bsn[:position] + bsn[position + 1] + bsn[position] + bsn[position + 2 :]
    assert not bsn_valid(swapped)


def test_known_bsns_and_non_bsns() -> None:
    """The eleven-test on published test numbers, an eight-digit one, zeros and non-digits."""
    assert bsn_valid("111222333")
    assert bsn_valid("123456782")
    assert bsn_valid("12345672")  # eight digits: a leading zero dropped by an integer column
    assert not bsn_valid("123456789")
    assert not bsn_valid("000000000")
    assert not bsn_valid("12345678a")
    assert not bsn_valid(
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff12"
    )  # fullwidth digits are not digits of a BSN


@given(nl_ibans)
def test_an_iban_built_with_its_check_digits_passes_mod_97(iban: str) -> None:
    """An IBAN with correct check digits passes, with or without groups of four."""
    assert iban_valid(iban)
    assert iban_valid(" ".join(iban[i : i + 4] for i in range(0, len(iban), 4)))


@given(nl_ibans, st.integers(2, 17), st.integers(1, 9))
def test_changing_one_digit_of_an_iban_fails_mod_97(iban: str, position: int, delta: int) -> None:
    """A single changed digit (check digits or account number) is caught."""
    assume(iban[position].isdigit())
    digit = (int(iban[position]) + delta) % 10
    assert not iban_valid(iban[:position] + str(digit) + iban[position + 1 :])


@given(nl_ibans, st.integers(8, 16))
def test_swapping_two_adjacent_digits_of_an_iban_fails_mod_97(iban: str, position: int) -> None:
    """A swap of two different neighbouring digits of the account number is caught."""
    assume(iban[position] != iban[position + 1])
    swapped = iban[:position] + iban[position + 1] + iban[position] + iban[position + 2 :]
    assert not iban_valid(swapped)


def test_an_iban_of_the_wrong_length_for_its_country_fails() -> None:
    """NL IBANs have 18 characters; a valid checksum at another length is not enough."""
    assert iban_valid("NL91ABNA0417164300")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("NL91ABNA04171643001")
    assert not iban_valid("NL91ABNA041716430")


@given(st.text(min_size=1, max_size=40).filter(lambda t: "*" not in t and "".join(t.split()) != ""))
def test_a_masked_value_never_shows_the_value(value: str) -> None:
    """The mask hides at least three characters and keeps the length (without spaces)."""
    compact = "".join(value.split())
    masked = mask(value)
    assert masked != compact
    assert masked.count("*") >= min(3, len(compact))
    if len(compact) >= 3:
        assert len(masked) == len(compact)


def test_mask_keeps_two_characters_at_each_end_of_a_bsn() -> None:
    """A BSN is shown as its first and last two digits."""
    assert mask("123456782") == "12*****82"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Geboortedatum", {"date_of_birth"}),
        ("leerling_geboortedatum", {"date_of_birth", "people"}),
        ("geboorteDatum", {"date_of_birth"}),
        ("achternaam", {"name"}),
        ("First Name", {"name"}),
        ("naam", {"name"}),
        ("course_name", set()),
        ("bestandsnaam", set()),
        ("email_address", {"email"}),
        ("e-mail adres", {"email"}),
        ("ip_address", set()),
        ("Adres", {"address"}),
        ("huisnummer", {"address"}),
        ("postcode", {"postcode"}),
        ("BSN", {"bsn"}),
        ("burgerservicenummer", {"bsn"}),
        ("telefoonNummer", {"phone"}),
        ("iban", {"iban"}),
        ("rekeningnummer", {"iban"}),
        ("leerlingnummer", {"student_number", "people"}),
        ("medische_gegevens", {"special_category"}),
        ("godsdienst", {"special_category"}),
        ("paspoort jan.jpg", {"identity_document"}),
        ("leerlingenlijst 2019.xlsx", {"people"}),
        ("id", set()),
        ("created_at", set()),
        ("lesrooster week 12.pdf", set()),
    ],
)
def test_field_names_in_dutch_and_english(name: str, expected: set[str]) -> None:
    """Field and file names point to the detectors their words name, and only to those."""
    assert Detectors().names(name) == expected


def _table(fields: list[str] | None, rows: list[list[object]], **kw: object) -> Tally:
    detectors = Detectors(**kw)  # type: ignore[arg-type]
    tally = detectors.tally()
    detectors.table(fields, rows, tally)
    return tally


def test_a_bsn_failing_the_eleven_test_is_not_counted() -> None:
    """Of two BSN-like numbers only the one passing the eleven-test is counted."""
    tally = _table(["nummer"], [["123456782"], ["123456789"]])
    assert tally.hits["bsn"].values == 1
    assert tally.hits["bsn"].examples == ["12*****82"]


def test_record_numbers_that_happen_to_pass_the_eleven_test_are_not_bsns() -> None:
    """In a column of nine-digit numbers mostly failing the test, the few passing are chance."""
    tally = _table(["id"], [[n] for n in range(100_000_000, 100_000_060)])
    assert "bsn" not in tally.hits


def test_values_in_a_table_are_counted_and_masked() -> None:
    """Every value detector counts its values; the tally holds masked examples only."""
    rows: list[list[object]] = [
        ["Jan Jansen", "111222333", "jan@example.nl", "06-12345678", "1234 AB", "12-03-2010"],
        ["Els de Vries", "123456782", "info@school.example", "020 123 4567", "9999ZZ", "unknown"],
    ]
    fields = ["naam", "bsn", "email", "telefoon", "postcode", "geboortedatum"]
    tally = _table(fields, rows)
    assert {d: h.values for d, h in tally.hits.items()} == {
        "name": 0,
        "bsn": 2,
        "email": 1,  # info@ is a role address, not a person's
        "phone": 2,
        "postcode": 2,
        "date_of_birth": 1,
    }
    assert tally.hits["bsn"].names == {"bsn"}
    assert tally.records == 2 and tally.with_values == 2 and tally.named_records == 2
    stored = json.dumps(tally.as_dict())
    for row in rows:
        for value in row:
            assert str(value) not in stored


def test_running_text_values() -> None:
    """Text: a BSN with dots, an IBAN in groups, a postcode next to a house number, a date of
    birth after 'geboren', and a configured student-number pattern."""
    detectors = Detectors([Pattern("student_number", r"\bS\d{7}\b", ("stamnummer",))])
    tally = detectors.tally()
    detectors.text(
        "Leerling S1234567, geboren 12-03-2010, woont Dorpsstraat 12, 1234 AB Utrecht.\n"
        "Rekening NL91 ABNA 0417 1643 00, BSN 1234.56.782.\n"
        "Cursus 2019: les 12-03-2010, lokaal 1234 AB.\n",
        tally,
    )
    assert {d: h.values for d, h in tally.hits.items()} == {
        "student_number": 1,
        "date_of_birth": 1,
        "postcode": 1,
        "iban": 1,
        "bsn": 1,
    }
    assert tally.records == 3 and tally.with_values == 2


def test_digits_of_an_iban_are_no_phone_number() -> None:
    """The account digits inside an IBAN are not counted again as a phone number."""
    detectors = Detectors()
    tally = detectors.tally()
    detectors.text("NL91 ABNA 0417 1643 00", tally)
    assert set(tally.hits) == {"iban"}


def test_dates_in_a_birth_date_field_come_as_dates_too() -> None:
    """A date object in a column named as a birth date is a date of birth; elsewhere not."""
    tally = _table(["geboortedatum", "ingeschreven"], [[date(2010, 3, 12), date(2020, 8, 1)]])
    assert tally.hits["date_of_birth"].values == 1
    assert tally.hits["date_of_birth"].examples == ["20******12"]


def test_a_pattern_cannot_take_the_name_of_a_value_detector() -> None:
    """A configured pattern named bsn would bypass the eleven-test: refused."""
    with pytest.raises(ValueError, match="built-in value detector"):
        Detectors([Pattern("bsn", r"\d{9}")])


def test_sensitivity_is_the_highest_weight_plus_a_quarter_of_the_rest() -> None:
    """A BSN (10) with a name (2) and an e-mail address (3) scores 11.25."""
    detectors = Detectors()
    assert sensitivity({"bsn": 1, "name": 1, "email": 1}, detectors.detectors) == 11.25
    assert sensitivity({}, detectors.detectors) == 0.0
