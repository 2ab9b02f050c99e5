"""Personal-data detectors for discovery: field names and sampled values, counted and masked.

Two kinds of evidence, both counted per detector:

* **Names.** Column names, spreadsheet and CSV headers and file names, in Dutch and English:
  ``naam``, ``geboortedatum``, ``adres``, ``bsn``, ``e-mail``, ``telefoon``, ``iban``,
  ``leerlingnummer``, ``medisch``, … A name is split into words (``geboorteDatum``,
  ``leerling_nr``) and matched as a whole word or, for compound words, as a part of one
  (``leerlinggeboortedatum``). Names are schema facts, not personal data, so the names that
  matched are kept; a file's name is not kept, only the detectors it matched.
* **Values.** A Dutch citizen service number (BSN) passing the eleven-test, an e-mail address,
  an IBAN passing mod-97, a Dutch phone number, a postcode with a house number, a date of
  birth (a date in a birth-date field or after "geboren", "born", …) and the patterns the RoPA
  configures (student numbers, …).

Values never leave this module: a ``Tally`` holds counts per detector and at most a few masked
examples (``12*****82``), never a value, so nothing downstream (the state store, the reports,
the logs, the audit log) can hold one.

Fewer false alarms: in a column (or a text) with five or more nine-digit numbers of which
fewer than half pass the eleven-test, the numbers are record numbers, not BSNs, and none is
counted; ``info@``, ``noreply@`` and similar role addresses are not personal; a date counts as
a date of birth only where a name or a word says so; in running text a postcode counts only
next to a house number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

__all__ = [
    "DETECTORS",
    "VALUE_DETECTORS",
    "Detector",
    "Detectors",
    "Hit",
    "Pattern",
    "Tally",
    "bsn_valid",
    "iban_valid",
    "mask",
]


@dataclass(frozen=True)
class Detector:
    """What a detector finds and how sensitive that is (1 to 10).

    Args:
        id: the detector's name in reports (``bsn``, ``email``, ``special_category``, …).
        label: what it finds, for people.
        sensitivity: weight in the score: 10 for a BSN and special categories of data.
        special: Art. 9 (or Art. 10) data: health, religion, ethnicity, criminal records, ….
    """

    id: str
    label: str
    sensitivity: int
    special: bool = False


DETECTORS: dict[str, Detector] = {
    d.id: d
    for d in (
        Detector("bsn", "citizen service number (BSN)", 10),
        Detector("special_category", "special category of data (Art. 9/10)", 10, special=True),
        Detector("identity_document", "identity document (passport, ID card)", 8),
        Detector("iban", "bank account (IBAN)", 6),
        Detector("date_of_birth", "date of birth", 5),
        Detector("student_number", "student or staff number", 4),
        Detector("address", "address", 4),
        Detector("postcode", "postcode with house number", 4),
        Detector("photo", "photo", 3),
        Detector("email", "e-mail address", 3),
        Detector("phone", "phone number", 3),
        Detector("name", "name of a person", 2),
        Detector("demographic", "gender or nationality", 2),
        Detector("people", "records about people (pupils, staff, parents, applicants)", 2),
    )
}


VALUE_DETECTORS = frozenset({"bsn", "email", "iban", "phone", "postcode", "date_of_birth"})
"""Built-in detectors that read values with their own checks."""


@dataclass(frozen=True)
class Pattern:
    """A pattern the RoPA configures, such as a school's student numbers.

    Args:
        id: the detector's name in reports; a built-in detector that reads only names
            (``student_number``) gains the pattern's values; one that reads values (``bsn``,
            ``email``, …) cannot be given another pattern.
        regex: a value matches when this regex matches inside it.
        names: field names that point to this kind of data (``stamnummer``).
        sensitivity: weight in the score, 1 to 10 (default: the built-in detector's, or 4).
        label: what it finds, for people.
    """

    id: str
    regex: str
    names: tuple[str, ...] = ()
    sensitivity: int | None = None
    label: str = ""


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- names --------------------------------------------------------------------------------------

# Terms are compared with the words of a name (``token``) or found inside one of them
# (``part``, for Dutch compounds: leerling+geboortedatum). Everything lower case, ASCII.
_PARTS: dict[str, tuple[str, ...]] = {
    "bsn": (
        "burgerservicenummer",
        "sofinummer",
        "citizenservicenumber",
        "socialsecuritynumber",
        "onderwijsnummer",
        "nationalidnumber",
    ),
    "name": (
        "voornaam",
        "achternaam",
        "roepnaam",
        "tussenvoegsel",
        "voorletters",
        "familienaam",
        "geslachtsnaam",
        "meisjesnaam",
        "leerlingnaam",
        "studentnaam",
        "oudernaam",
        "medewerkernaam",
        "docentnaam",
        "persoonsnaam",
        "contactnaam",
        "gebruikersnaam",
        "firstname",
        "lastname",
        "surname",
        "givenname",
        "fullname",
        "middlename",
        "displayname",
        "username",
        "studentname",
        "pupilname",
        "employeename",
        "parentname",
        "contactname",
        "personname",
    ),
    "date_of_birth": (
        "geboortedatum",
        "geboortedag",
        "geboortejaar",
        "geboorteplaats",
        "gebdatum",
        "birthdate",
        "dateofbirth",
        "birthday",
        "birthplace",
    ),
    "address": (
        "straatnaam",
        "huisnummer",
        "huisnr",
        "woonplaats",
        "woonadres",
        "postadres",
        "huisadres",
        "verblijfadres",
        "housenumber",
        "streetname",
        "homeaddress",
        "postaladdress",
        "streetaddress",
    ),
    "postcode": ("postcode", "zipcode", "postalcode"),
    "email": ("emailadres", "mailadres", "email"),
    "phone": (
        "telefoon",
        "mobielnummer",
        "mobiel",
        "telnr",
        "telephone",
        "phonenumber",
        "cellphone",
        "mobilephone",
    ),
    "iban": ("iban", "rekeningnummer", "bankrekening", "banknummer", "bankaccount", "girorekening"),
    "student_number": (
        "leerlingnummer",
        "leerlingnr",
        "studentnummer",
        "studentnr",
        "studentnumber",
        "studentid",
        "pupilid",
        "pupilnumber",
        "stamnummer",
        "personeelsnummer",
        "medewerkernummer",
        "employeenumber",
        "employeeid",
        "staffnumber",
    ),
    "special_category": (
        "medisch",
        "medische",
        "gezondheid",
        "diagnose",
        "ziekte",
        "ziekmelding",
        "allergie",
        "medicatie",
        "medicijn",
        "handicap",
        "beperking",
        "dyslexie",
        "autisme",
        "zorgbehoefte",
        "zorgdossier",
        "godsdienst",
        "religie",
        "geloof",
        "etniciteit",
        "afkomst",
        "vakbond",
        "strafblad",
        "strafrecht",
        "biometrie",
        "vingerafdruk",
        "health",
        "medical",
        "diagnosis",
        "disability",
        "allergy",
        "medication",
        "religion",
        "ethnicity",
        "tradeunion",
        "criminal",
        "biometric",
        "fingerprint",
    ),
    "identity_document": (
        "paspoort",
        "passport",
        "identiteitskaart",
        "idkaart",
        "rijbewijs",
        "documentnummer",
        "legitimatie",
        "idbewijs",
        "driverslicense",
        "identitycard",
    ),
    "photo": ("pasfoto", "portretfoto", "photo"),
    "demographic": ("geslacht", "gender", "nationaliteit", "nationality"),
    "people": (
        "leerling",
        "student",
        "personeel",
        "medewerker",
        "ouders",
        "verzorger",
        "sollicita",
        "cijferlijst",
        "klassenlijst",
        "adreslijst",
        "adressenlijst",
        "verzuim",
        "pupil",
        "employee",
        "applicant",
        "contactpersonen",
    ),
}
_TOKENS: dict[str, tuple[str, ...]] = {
    "bsn": ("bsn", "ssn", "sofi"),
    "name": ("naam", "name", "namen", "names"),
    "date_of_birth": ("dob", "geb", "geboren", "born"),
    "address": ("adres", "address", "straat", "street", "adressen"),
    "postcode": ("zip", "pc6"),
    "email": ("mail", "mails"),
    "phone": ("tel", "gsm", "phone", "mobile"),
    "student_number": ("llnr", "stamnr"),
    "special_category": ("adhd", "zorg"),
    "photo": ("foto", "fotos", "photos"),
    "demographic": ("sexe", "sex"),
    "people": ("cv", "staff", "grades", "cijfers"),
}
# A bare "name" or "address" after one of these words is not a person's: file name, course
# name, e-mail address, IP address, ….
_NOT_A_PERSON = _wordset(
    "file bestand table tabel course cursus vak school product company bedrijf group groep "
    "class klas module host server column kolom field veld sheet blad dir folder map domain "
    "domein app brand merk org organisatie organisation organization department afdeling "
    "location locatie city stad plaats street straat role rol event project test type "
    "category categorie tag key sleutel display ip mac web url e email mail"
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def _words(name: str) -> list[str]:
    """Given a field or file name, return its lower-case ASCII words."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return [w for w in _NON_WORD.split(_CAMEL.sub(" ", ascii_name).lower()) if w]


class _NameMatcher:
    """Matches names against the terms: one regex per detector for the parts, one dict from
    word to detectors for the whole words (a run samples tens of thousands of names)."""

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        parts = {k: list(v) for k, v in _PARTS.items()}
        tokens: dict[str, set[str]] = {}
        for detector, known in _TOKENS.items():
            for word in known:
                tokens.setdefault(word, set()).add(detector)
        for pattern in patterns:
            words = ["".join(_words(n)) for n in pattern.names]
            parts.setdefault(pattern.id, []).extend(w for w in words if len(w) >= 5)
            for word in (w for w in words if 0 < len(w) < 5):
                tokens.setdefault(word, set()).add(pattern.id)
        self.parts = [
            (d, re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))))
            for d, terms in parts.items()
            if terms
        ]
        self.tokens = tokens

    def match(self, name: str) -> set[str]:
        """Given a field or file name, return the detectors it points to."""
        words = _words(name)
        if not words:
            return set()
        joined = "".join(words)
        found = {d for d, regex in self.parts if regex.search(joined)}
        for i, word in enumerate(words):
            for detector in self.tokens.get(word, ()):
                if detector in ("name", "address") and i > 0 and words[i - 1] in _NOT_A_PERSON:
                    continue  # a file name, an e-mail address: not a person's
                found.add(detector)
        return found


# -- values -------------------------------------------------------------------------------------


def bsn_valid(digits: str) -> bool:
    """Given eight or nine digits, return whether they form a BSN that passes the eleven-test.

    The test: 9·d1 + 8·d2 + … + 2·d8 - 1·d9 is a multiple of 11 (eight digits get a
    leading zero). All zeros is not a BSN.
    """
    if not (len(digits) in (8, 9) and digits.isascii() and digits.isdigit()):
        return False
    digits = digits.zfill(9)
    if digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


# Lengths of IBANs per country (ISO 13616 registry), for the countries a Dutch school meets
# most; any other country code is accepted with a length between 15 and 34.
_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MA": 28, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TR": 26, "UA": 29,
}  # fmt: skip


def iban_valid(text: str) -> bool:
    """Given an IBAN (spaces allowed), return whether its length fits its country and it
    passes the mod-97 check of ISO 13616 (moved to the end, letters as 10 to 35, remainder 1).
    """
    iban = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def mask(value: str) -> str:
    """Given a value, return it masked: ``123456782`` becomes ``12*****82``.

    Eight characters or more keep two at each end, five to seven keep one, shorter ones none;
    at least three characters are always hidden.
    """
    text = "".join(value.split())
    keep = 2 if len(text) >= 8 else 1 if len(text) >= 5 else 0
    if keep == 0:
        return "*" * max(3, len(text))
    return text[:keep] + "*" * (len(text) - 2 * keep) + text[-keep:]


_BSN_TEXT = re.compile(r"(?<![\w\-+./,])(\d{4}\.\d{2}\.\d{3}|\d{3}\.\d{3}\.\d{3}|\d{9})(?![\w\-])")
_BSN_CELL = re.compile(r"\s*(\d{4}\.\d{2}\.\d{3}|\d{3}\.\d{3}\.\d{3}|\d{8,9})\s*")
_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
)
_ROLE_MAILBOXES = _wordset(
    "info admin administratie secretariaat noreply no-reply donotreply support helpdesk "
    "servicedesk postmaster webmaster abuse contact privacy fg avg security sales office "
    "receptie directie mail post team"
)
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])([A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?))"
    r"(?![A-Za-z0-9])",
    re.I,
)
_PHONE = re.compile(r"(?<![\w+])((?:\+31|0031|0)[ -]?(?:\(0\)[ -]?)?[1-9](?:[ -]?\d){8})(?![\d])")
_POSTCODE = re.compile(r"(?<![\w])([1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2})(?![\w])")
_POSTCODE_CELL = re.compile(r"\s*([1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2})\s*", re.I)
_NUMBER_BEFORE = re.compile(r"[A-Za-z]{3,}\.?\s+\d{1,5}\s?[a-zA-Z]?(?:[ -]\w{1,4})?[,\s]+$")
_NUMBER_AFTER = re.compile(r"^[ ,]+\d{1,5}\b")
_DATE_TEXT = r"(\d{1,2}[-/.]\d{1,2}[-/.](?:19|20)\d{2}|(?:19|20)\d{2}-\d{1,2}-\d{1,2})"
_DATE = re.compile(r"\s*" + _DATE_TEXT + r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?\s*")
_BIRTH_CONTEXT = re.compile(
    r"(?:geboren|geb\.?|geboortedatum|date of birth|born|birth date|dob)\W{0,4}" + _DATE_TEXT,
    re.I,
)
_DIGIT = re.compile(r"\d")
_BSN_MIN_CANDIDATES = 5  # with this many nine-digit numbers, the pass rate decides
_MAX_CELL = 4096  # characters of one value that are examined


def _parse_date(text: str) -> date | None:
    """Given a date as text (31-12-2010, 31/12/2010, 2010-12-31), return it or None."""
    try:
        if text[4:5] == "-" and text[:4].isdigit():
            year, month, day = (int(p) for p in text.split("-"))
        else:
            day, month, year = (int(p) for p in re.split(r"[-/.]", text))
        return date(year, month, day)
    except ValueError:
        return None


@dataclass
class Hit:
    """One detector's evidence in one store: the field names that matched, how many values
    matched, and a few of them masked."""

    names: set[str] = field(default_factory=set)
    values: int = 0
    examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"names": sorted(self.names), "values": self.values, "examples": self.examples}


@dataclass
class Tally:
    """What the detectors found in the samples of one store. Holds no value, only counts,
    matched field names and masked examples.

    Args:
        hits: detector id -> its evidence.
        records: rows (tables, spreadsheets, CSV) or lines (text) examined.
        with_values: records in which at least one value matched.
        named_records: records of tables whose fields' names point to personal data.
        files: files whose content was read; names_only: files judged by name and size only.
    """

    hits: dict[str, Hit] = field(default_factory=dict)
    records: int = 0
    with_values: int = 0
    named_records: int = 0
    files: int = 0
    names_only: int = 0
    max_examples: int = 3

    def hit(self, detector: str) -> Hit:
        found = self.hits.get(detector)
        if found is None:
            found = self.hits[detector] = Hit()
        return found

    def value(self, detector: str, text: str) -> None:
        hit = self.hit(detector)
        hit.values += 1
        example = mask(text)
        if len(hit.examples) < self.max_examples and example not in hit.examples:
            hit.examples.append(example)

    def merge(self, other: Tally) -> None:
        for detector, theirs in other.hits.items():
            mine = self.hit(detector)
            mine.names |= theirs.names
            mine.values += theirs.values
            for example in theirs.examples:
                if len(mine.examples) < self.max_examples and example not in mine.examples:
                    mine.examples.append(example)
        self.records += other.records
        self.with_values += other.with_values
        self.named_records += other.named_records
        self.files += other.files
        self.names_only += other.names_only

    @property
    def personal_data(self) -> bool:
        return bool(self.hits)

    def as_dict(self) -> dict[str, Any]:
        return {k: self.hits[k].as_dict() for k in sorted(self.hits)}


class Detectors:
    """The detectors for one run: the built-in ones and the RoPA's patterns.

    Args:
        patterns: configured patterns (student numbers, …).
        max_examples: masked examples kept per detector and store.
        today: dates of birth lie between 1900 and this day.
    """

    def __init__(
        self, patterns: Sequence[Pattern] = (), max_examples: int = 3, today: date | None = None
    ) -> None:
        clash = [p.id for p in patterns if p.id in VALUE_DETECTORS]
        if clash:
            raise ValueError(
                f"pattern {clash[0]!r} has the name of a built-in value detector; "
                f"name it otherwise (built-in: {', '.join(sorted(VALUE_DETECTORS))})"
            )
        self.patterns = list(patterns)
        self.compiled = [(p.id, re.compile(p.regex)) for p in patterns]
        self.max_examples = max_examples
        self.today = today or datetime.now(UTC).date()
        self._names = _NameMatcher(self.patterns)
        self.detectors: dict[str, Detector] = dict(DETECTORS)
        for p in patterns:
            known = DETECTORS.get(p.id)
            self.detectors[p.id] = Detector(
                p.id,
                p.label or (known.label if known else p.id),
                p.sensitivity if p.sensitivity is not None else known.sensitivity if known else 4,
            )

    def tally(self) -> Tally:
        return Tally(max_examples=self.max_examples)

    def names(self, name: str) -> set[str]:
        """Given a field or file name, return the detectors it points to."""
        return self._names.match(name)

    # -- records ---------------------------------------------------------------------------

    def table(
        self, fields: Sequence[str] | None, rows: Iterable[Sequence[Any]], tally: Tally
    ) -> None:
        """Examine a table (SQL rows, a spreadsheet, a CSV file): its field names, if any, and
        each value of each row, column by column."""
        named: list[set[str]] = [self.names(f) for f in fields] if fields else []
        for name, found in zip(fields or (), named, strict=False):
            for detector in found:
                tally.hit(detector).names.add(name)
        columns: dict[int, _Column] = {}
        count = 0
        for row in rows:
            for index, value in enumerate(row):
                if value is None or value == "" or isinstance(value, bytes | bytearray):
                    continue
                column = columns.get(index)
                if column is None:
                    hints = named[index] if index < len(named) else set()
                    column = columns[index] = _Column(self, hints)
                column.add(value, count)
            count += 1
        rows_with: set[int] = set()
        for column in columns.values():
            rows_with |= column.flush(tally)
        tally.records += count
        tally.with_values += len(rows_with)
        if any(named):
            tally.named_records += count

    def text(self, text: str, tally: Tally) -> None:
        """Examine running text (a text file, a SQL dump, …), line by line."""
        column = _Column(self, set(), text=True)
        lines = text.splitlines()
        for number, line in enumerate(lines):
            if line.strip():
                column.add(line, number)
        lines_with = column.flush(tally)
        tally.records += len(lines)
        tally.with_values += len(lines_with)

    def file_name(self, name: str, tally: Tally) -> set[str]:
        """Given a file's name, count the detectors it points to (the name is not kept)."""
        found = self.names(name)
        for detector in found:
            tally.hit(detector)
        return found


class _Column:
    """The values of one column (or of one text), examined and held back until the column is
    complete, so that the BSN pass rate of the whole column can decide."""

    def __init__(self, detectors: Detectors, hints: set[str], *, text: bool = False) -> None:
        self.d = detectors
        self.hints = hints
        self.text = text
        self.found: list[tuple[str, str, int]] = []  # (detector, raw match, record)
        self.bsn_candidates = 0
        self.bsn_passed: list[tuple[str, int]] = []

    def add(self, value: Any, record: int) -> None:
        """Examine one value of record number ``record``."""
        if isinstance(value, datetime | date):
            moment = value.date() if isinstance(value, datetime) else value
            if "date_of_birth" in self.hints and self._plausible_birth(moment):
                self.found.append(("date_of_birth", moment.isoformat(), record))
            return
        if isinstance(value, bool):
            return
        text = str(value)[:_MAX_CELL]
        self._values(text, record)

    def _bsn(self, text: str, record: int, *, cell: bool) -> None:
        matches: Iterable[str]
        if cell and (whole := _BSN_CELL.fullmatch(text)):
            matches = [whole.group(1)]
        else:
            matches = (m.group(1) for m in _BSN_TEXT.finditer(text))
        for match in matches:
            digits = match.replace(".", "")
            self.bsn_candidates += 1
            if bsn_valid(digits):
                self.bsn_passed.append((digits.zfill(9), record))

    def _values(self, text: str, record: int) -> None:
        found = self.found
        if "@" not in text and _DIGIT.search(text) is None:
            # Every built-in value has a digit or an '@': only the RoPA's patterns are left.
            self._patterns(text, record)
            return
        spans: list[tuple[int, int]] = []
        if "@" in text:
            for m in _EMAIL.finditer(text):
                spans.append(m.span())
                if m.group(1).lower() not in _ROLE_MAILBOXES:
                    found.append(("email", m.group(0), record))
        for m in _IBAN.finditer(text):
            candidate = m.group(1)
            while not iban_valid(candidate) and candidate.count(" ") > 2:
                candidate = candidate.rsplit(" ", 1)[0]  # "NL91 ABNA … 4300 1234": drop groups
            if iban_valid(candidate):
                found.append(("iban", candidate, record))
                spans.append((m.start(), m.start() + len(candidate)))
        if spans:  # the digits of an e-mail address or an IBAN are no phone number or BSN
            for start, end in reversed(spans):
                text = text[:start] + " " * (end - start) + text[end:]
        self._bsn(text, record, cell=not self.text)
        for m in _PHONE.finditer(text):
            found.append(("phone", m.group(1), record))
        if not self.text and (cell := _POSTCODE_CELL.fullmatch(text)):
            found.append(("postcode", cell.group(1).upper(), record))
        else:
            for m in _POSTCODE.finditer(text):
                before, after = text[max(0, m.start() - 60) : m.start()], text[m.end() :]
                if _NUMBER_BEFORE.search(before) or _NUMBER_AFTER.match(after):
                    found.append(("postcode", m.group(1), record))
        if "date_of_birth" in self.hints and (whole := _DATE.fullmatch(text)):
            day = _parse_date(whole.group(1))
            if day is not None and self._plausible_birth(day):
                found.append(("date_of_birth", whole.group(1), record))
        elif any(c.isdigit() for c in text):
            for m in _BIRTH_CONTEXT.finditer(text):
                day = _parse_date(m.group(1))
                if day is not None and self._plausible_birth(day):
                    found.append(("date_of_birth", m.group(1), record))
        self._patterns(text, record)

    def _patterns(self, text: str, record: int) -> None:
        for detector, regex in self.d.compiled:
            for m in regex.finditer(text):
                if m.group(0):
                    self.found.append((detector, m.group(0), record))

    def _plausible_birth(self, day: date) -> bool:
        return date(1900, 1, 1) <= day <= self.d.today

    def flush(self, tally: Tally) -> set[int]:
        """Count what the column holds into ``tally``; return the records with a match."""
        records = {r for _, _, r in self.found}
        if self.bsn_passed and not (
            self.bsn_candidates >= _BSN_MIN_CANDIDATES
            and len(self.bsn_passed) * 2 < self.bsn_candidates
        ):
            for digits, record in self.bsn_passed:
                tally.value("bsn", digits)
                records.add(record)
        for detector, raw, _ in self.found:
            tally.value(detector, raw)
        return records


def sensitivity(hits: Mapping[str, Any], detectors: Mapping[str, Detector]) -> float:
    """Given the detectors that matched in a store, return its sensitivity: the highest
    detector's weight plus a quarter of the others' (a BSN with a name and an address is more
    than a BSN alone)."""
    weights = sorted((detectors[d].sensitivity for d in hits if d in detectors), reverse=True)
    if not weights:
        return 0.0
    return weights[0] + 0.25 * sum(weights[1:])
