"""Columns: where a table's header names a column (``full_name``, ``City``, ``phone``, ``ssn``),
that header labels every cell under it, if the cell looks like what the header says.

Tables come as CSV and TSV exports, Markdown and psql tables, a dataframe's print (columns cut
by runs of spaces, the index first), an SQL ``INSERT ... (columns) VALUES (...)`` and a
PostgreSQL ``COPY ... (columns) FROM stdin`` block. A bare nine-digit number or a national
phone number means nothing by itself; under an ``ssn`` or ``phone`` header it is one.

A table can be longer than any zone of the pre-pass, and its header may lie far above a row,
so this detector always reads the whole text (``whole=True``): the pre-pass cannot make it
miss a row. It costs one search for header words, and one split per row of a table found.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register
from .names import person, place
from .secrets import secret_for_key

# A header cell, lowercased, its spaces, dots and dashes made "_": the label of its column.
_COLUMNS: list[tuple[re.Pattern[str], str]] = [
    (lazy(r"(?:customer_|contact_|employee_|patient_|account_|card_?|display_|legal_|real_|person_|client_"
                r"|emergency_contact_|spouse_|guardian_|parent_|driver_|user_)?(?:full_)?name"
                r"|(?:first|last|given|family|middle|sur|maiden|birth)_?names?|[fl]_?name|surname|holder|card_?holder"
                r"|account_?holder|customer|employee|patient|recipient|beneficiary|payee|attendee|contact|person"
                r"|client|emergency_contact|next_of_kin|spouse|guardian|signatory"
                r"|author|owner|assignee|reporter|maintainer|reviewer|guest|passenger|tenant|applicant"
                # French, Spanish, Italian, German, Dutch exports' headers
                r"|nom|pr[ée]nom|nom_de_famille|nombre|apellidos?|nome|cognome|vorname|nachname|voornaam|achternaam"),
     "PERSON"),
    (lazy(r"(?:home_|billing_|shipping_|street_|postal_|mailing_|work_)?address(?:_?line_?\d)?|street|city|town"
                r"|country|county|province|region|location|place_of_birth|birth_?place|city_of_birth|birth_?city|hometown"
                r"|municipality|ship_to|bill_to|locality|suburb|district|neighbou?rhood"
                r"|ville|pays|adresse|ciudad|pa[ií]s|direcci[oó]n|localidad|citt[aà]|indirizzo|stadt|stra(?:ss|ß)e"
                r"|wohnort|plaats|woonplaats|adres"), "LOCATION"),
    (lazy(r"(?:(?:home|work|office|mobile|cell|contact|alt|alternate|other|emergency|primary|secondary|business"
                r"|personal|private|direct|daytime|evening|customer|patient|guardian)_?)?"
                r"(?:phone|telephone|tel|mobile|cell|fax|msisdn|whatsapp)(?:_?(?:no|num|nbr|number))?_?\d?"
                r"|contact_?(?:no|num|number)|mobile_?number|call_?back_?number"), "PHONE"),
    (lazy(r"(?:us_|customer_|patient_|employee_|spouse_)?ssn(?:_?(?:no|num|number))?_?\d?"
                r"|social_?security(?:_?(?:no|num|number))?|soc_sec(?:_no)?|tax_?(?:payer_)?(?:id|no|number)|itin"),
     "US_SSN"),
    (lazy(r"(?:[a-z0-9]+_){0,3}(?:password|passwd|pwd|passphrase|secret|api_?key|apikey|access_?key|private_?key"
                r"|secret_?key|client_secret)"), "SECRET"),  # (token columns: the header search would cost clean text 5 %)
]
_ONE_WORD = lazy(r"first|last|given|family|middle|sur|display|maiden|^[fl]_?name$")
# A header word: the pre-pass looks for it, and each line holding one is read as a possible header.
_HEADER_WORD = lazy(
    r"name|holder|customer|employee|patient|recipient|beneficiary|payee|attendee|contact|address|street|city|town"
    r"|countr|county|province|region|location|place|ship|bill|phone|tel|mobile|cell|fax|msisdn|ssn|soc"
    r"|author|owner|assignee|reporter|maintainer|reviewer|guest|passenger|tenant|applicant|locality|suburb"
    r"|person|client|kin|spouse|guardian|signatory|birth|hometown|municipal|district|neighbo|whatsapp|tax|itin"
    r"|nom|apellido|cognome|ville|pays|adres|ciudad|pa[ií]s|direcci|localidad|citt|indirizzo|stadt|stra(?:ss|ß)e"
    r"|wohnort|plaats|password|passwd|pwd|passphrase|secret|api_?key|apikey|access_?key|private_?key"
)  # every column of _COLUMNS holds one of these words (test_structure checks it)
_LONGEST_HEADER = 2000
_NOT_HEADER = lazy(r"[@:/=(){}<>]")
_SQL_COLUMNS = lazy(
    r"(?is)\b(INSERT\s{1,8}INTO|COPY)\s{1,8}[\w.`\"\[\]]{1,128}\s{0,8}\(([^()]{1,2000})\)\s{0,8}"
    r"(VALUES|FROM\s{1,8}stdin;?)"
)
_MD_RULE = lazy(r"[\s|:+-]*-{2,}[\s|:+-]*")
_SPACES = lazy(r" {2,}|\t")
_PHONE_CHARS = lazy(r"\+?[\d ().-]{7,24}")
_CAMEL = lazy(r"(?<=[a-z0-9])(?=[A-Z])")
_SSN_VALUE = lazy(r"(\d{3})-?(\d{2})-?(\d{4})")


def _column(header: str) -> str | None:
    key = re.sub(r"[\s.-]+", "_", header.strip().strip("\"'`[]").strip().lower())
    for pattern, label in _COLUMNS:
        if pattern.fullmatch(key):
            return label
    return None


@functools.lru_cache(maxsize=4096)
def key_column(key: str) -> str | None:
    """The label a JSON key (or an env name) names, as a table's header would: ``home_phone``,
    ``social_security_number``, ``fname``, ``municipality``; None for most keys."""
    if not 0 < len(key) <= 64:
        return None
    return _column(_CAMEL.sub("_", key))  # homePhone, placeOfBirth: as home_phone, place_of_birth


def column_value(label: str, key: str, value: str) -> bool:
    """Whether ``value``, under a key naming a column of ``label``, looks like what it names."""
    return 0 < len(value) <= 200 and _cell_label(label, key, value)


def _cell_label(label: str, header: str, value: str) -> bool:
    if label == "PERSON":
        return person(value, one_word=_ONE_WORD.search(header.lower()) is not None)
    if label == "LOCATION":
        return place(value)
    if label == "PHONE":
        return _PHONE_CHARS.fullmatch(value) is not None and 7 <= sum(c.isdigit() for c in value) <= 15
    if label == "SECRET":
        return secret_for_key(header, value)
    m = _SSN_VALUE.fullmatch(value)
    return m is not None and _ssn_valid(*m.groups())


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _split(line: str, delimiter: str) -> list[tuple[int, int]]:
    """Cells of one row as (start, end) in the line, quotes and padding left out; a quoted cell
    keeps its delimiters (``"Lisbon, Portugal"``)."""
    if delimiter == "  ":
        return [(m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)]
    cells, at, n = [], 0, len(line)
    while at <= n:
        while at < n and line[at] in " \t" and line[at] != delimiter:
            at += 1
        if at < n and line[at] in "\"'" and delimiter != "|":
            quote, end = line[at], line.find(line[at] + delimiter, at + 1)
            close = end if end >= 0 else (n - 1 if line.endswith(quote) and n - 1 > at else -1)
            if close >= 0:
                cells.append((at + 1, close))
                at = close + 1 + len(delimiter)
                continue
        end = line.find(delimiter, at)
        end = n if end < 0 else end
        lo, hi = at, end
        while hi > lo and line[hi - 1] in " \t":
            hi -= 1
        cells.append((lo, hi))
        at = end + len(delimiter)
    return cells


def _delimiter(line: str) -> str:
    for delimiter in ("\t", "|", ",", ";"):
        if line.count(delimiter) >= 1:
            return delimiter
    return "  "


def _rows(text: str, header_end: int, headers: list[str], delimiter: str, reach: list[int]) -> Iterator[Span]:
    """The rows after a header, until a line that does not have the header's cells; ``reach``
    gets where the table ended, so that no later header reads its rows again."""
    labels = [_column(h) for h in headers]
    at = header_end + 1
    reach[0] = at
    misses = 0
    while at < len(text) and misses < 2:
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        line = text[at:end].rstrip("\r")
        if delimiter == "|" and _MD_RULE.fullmatch(line):
            at = end + 1
            continue
        cells = _cells(line, delimiter)
        extra = len(cells) - len(headers)
        if extra > 0 and delimiter == ",":  # an unquoted comma in a later cell ("May 3, 2001"): the first cells hold
            cells, extra = cells[: len(headers)], 0
        if not line.strip() or not (extra == 0 or (delimiter == "  " and extra == 1)):
            misses += 1 if line.strip() else 2
            at = end + 1
            continue
        for (lo, hi), label, header in zip(cells[extra:], labels, headers):
            value = line[lo:hi]
            if label is not None and value and _cell_label(label, header, value):
                yield Span(at + lo, at + hi, label)
        at = reach[0] = end + 1


def _cells(line: str, delimiter: str) -> list[tuple[int, int]]:
    if delimiter == "|":
        body = line.strip()
        if not body:
            return []
        lead = line.index(body[0])
        inner = body[1:] if body.startswith("|") else body
        offset = lead + (1 if body.startswith("|") else 0)
        inner = inner[:-1] if inner.endswith("|") else inner
        return [(lo + offset, hi + offset) for lo, hi in _split(inner, "|")]
    return _split(line, delimiter)


def _tables(text: str, low: str, ends: list[int] | None = None) -> Iterator[Span]:
    """Each line holding a header word is read once, as a possible header; a table's rows are
    read once, after it. The pre-pass says where the header words end (``ends``); without it,
    they are searched for."""
    at = 0
    for end in _word_ends(low) if ends is None else sorted(ends):
        if end <= at:
            continue
        lo = text.rfind("\n", 0, end - 1) + 1
        hi = text.find("\n", end - 1)
        hi = len(text) if hi < 0 else hi
        at = hi + 1
        line = text[lo:hi].rstrip("\r")
        if len(line) > _LONGEST_HEADER or _NOT_HEADER.search(line) is not None:
            continue  # code and prose: no header cell holds these (_header_cell)
        delimiter = _delimiter(line)
        headers = [line[a:b] for a, b in _cells(line, delimiter)]
        if len(headers) < 2 or not all(_header_cell(h) for h in headers) or not any(_column(h) for h in headers):
            continue
        reach = [hi]
        yield from _rows(text, hi, headers, delimiter, reach)
        at = max(at, reach[0])


def _word_ends(low: str) -> Iterator[int]:
    return (m.end() for m in _HEADER_WORD.finditer(low))


def _header_cell(cell: str) -> bool:
    """A header names a column: a few words, no digits of data, no sentence."""
    value = cell.strip().strip("\"'`[]")
    return 0 < len(value) <= 40 and len(value.split()) <= 4 and _NOT_HEADER.search(value) is None


def _sql(text: str, low: str, ends: list[int] | None = None) -> Iterator[Span]:
    for m in _SQL_COLUMNS.finditer(text):
        headers = [c.strip().strip("`\"[]") for c in m.group(2).split(",")]
        if not any(_column(h) for h in headers):
            continue
        if m.group(3).upper() == "VALUES":
            yield from _sql_values(text, m.end(), headers)
        else:
            yield from _rows(text, text.find("\n", m.end() - 1), headers, "\t", [0])


_SQL_VALUE = lazy(r"\s*(?:'((?:[^'\\]|\\.|''){0,400})'|([^,()']{0,64}))\s*([,)])")


def _sql_values(text: str, at: int, headers: list[str]) -> Iterator[Span]:
    """The tuples of an INSERT: ``(1, 'Jane Doe', ...), (...)``; each value under its column."""
    labels = [_column(h) for h in headers]
    while True:
        opening = lazy(r"\s*,?\s*\(").match(text, at)
        if opening is None:
            return
        at, column = opening.end(), 0
        while True:
            m = _SQL_VALUE.match(text, at)
            if m is None:
                return
            group = 1 if m.group(1) is not None else 2
            value, start = m.group(group), m.start(group)
            label = labels[column] if column < len(labels) else None
            if label is not None and value and _cell_label(label, headers[column], value):
                yield Span(start, start + len(value), label)
            at, column = m.end(), column + 1
            if m.group(3) == ")":
                break


_TABLE_LABELS = frozenset({"PERSON", "LOCATION", "PHONE", "US_SSN", "SECRET"})

register(
    Detector(
        "table-columns", _TABLE_LABELS, (Hint("(?i)" + _HEADER_WORD.pattern),), find=_tables, whole=True,
        when=lambda text, low: "\n" in text,
        context_keys=("name", "full_name", "city", "address", "phone", "ssn"),
        examples=("id,full_name,ssn\n1,Jane Doe,123456789\n",
                  "| Name | Phone |\n|---|---|\n| Ana Lopez | 020 7946 0958 |",
                  "name\tphone\nJane Doe\t(02) 9347 8166\n", "     name   phone\n0  Jane Doe  020 7946 0958",
                  "| Author | Commits |\n|---|---|\n| Zara Ali | 12 |\n", "id;nom;ville\n1;Zara Ali;Lyon\n",
                  "fname,home_phone,tax_id\nZara,4155550143,219099999\n", "user,password\nadmin,nHFr#SVgbp57\n",
                  "| service | api_key |\n|---|---|\n| billing | G1t8w!5l3Xek49 |\n"),
        not_flagged=("id,name,size\n1,README.md,120\n", "| name | type |\n|---|---|\n| read_file | tool |",
                     "name,phone\nfoo,12\n", "Name,Version\nrequests,2.31.0\nurllib3,2.0.4\n",
                     "| Owner | Description |\n|---|---|\n| Platform Team | runs infra |\n",
                     "Name\tType\tDefault\nRetry Policy\tstr\tnone\n"),
    ),
    Detector(
        "sql-columns", _TABLE_LABELS, (Hint(_SQL_COLUMNS.pattern),), find=_sql, whole=True,
        when=lambda text, low: "insert" in low or "copy" in low,
        examples=("INSERT INTO users (id, name, ssn) VALUES (1, 'Jane Doe', '123456789');",
                  "INSERT INTO users (login, password) VALUES ('admin', 'egCbF!wqPPX094');",
                  "COPY public.people (id, full_name, city) FROM stdin;\n7\tJane Doe\tLisbon\n\\.\n"),
        not_flagged=("INSERT INTO tools (id, name) VALUES (1, 'read_file');",
                     "INSERT INTO users (login, password) VALUES ('admin', ?);"),
    ),
)
