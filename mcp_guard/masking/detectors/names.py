"""Names and places from structure, with no model: where a key or a header says what a value
is (``"full_name": ...``, ``city = ...``, ``From: Jane Doe <...>``, vCard ``FN:``, ICS
``CN=`` and ``LOCATION:``), the value gets that label, if it looks like a name or a place.

Prose stays with the NER extra (ner.py); these are the values tool results carry in fields.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register

_PERSON_KEYS = (
    r"(?:first|last|given|family|full|middle|maiden|customer|contact|display|legal|account[_ -]?holder|card[_ -]?holder)"
    r"[_ -]?name|surname|name|author|recipient|cardholder|patient|employee|assignee|attendee|organi[sz]er"
    r"|real[_ -]?name|holder|beneficiary|payee|user(?:[_ -]?name)?"
)
_ONE_WORD_KEYS = lazy(r"(?i)first|last|given|family|middle|maiden|surname|display")
_PLACE_KEYS = (
    r"(?:street|billing|shipping|home|postal|mailing|work)?[_ -]?address(?:[_ -]?line[_ -]?\d)?|street|addr|city|town"
    r"|country|county|province|region|state|post[_ -]?code|postal[_ -]?code|zip(?:[_ -]?code)?|location|birthplace|place"
    r"|line[_ -]?[123]|(?:ship|bill|sold|deliver)[_ -]?to"
)
# "key": "value", key: value, key = value; the key a whole word (not "username", "filename").
_KEYED = lazy(
    rf"(?i)(?<![\w-])[\"']?({_PERSON_KEYS}|{_PLACE_KEYS}|line|family|given)[\"']?[ \t]{{0,4}}([:=])[ \t]{{0,4}}"
    r"(?:\[[ \t]{0,4}|\{[ \t]{0,4}\"S\"[ \t]{0,4}:[ \t]{0,4})?"  # FHIR's ["..."], DynamoDB's {"S": "..."}
    r"([\"']?)([^\n\"',;{}\[\]<>|=]{2,80})"
)
# The same, matched on the text's lowercase form (detect.py keeps it the same length): Python's
# re tries a case-insensitive alternation of keys about three times slower than a plain one, and
# this pattern runs on every text with a ":" or "=". Groups are then read from the text itself.
_KEYED_LOW = lazy(_KEYED.pattern.removeprefix("(?i)").replace('\\"S\\"', '\\"s\\"'))
# Code's constants and types, which annotations put after `state:` or `name:`.
_LITERALS = frozenset({
    "None", "True", "False", "Null", "NULL", "Undefined", "NaN", "Nil", "N/A", "TBD", "Unknown", "Final", "Literal",
    "Optional", "Any", "Union", "List", "Dict", "Tuple", "Set", "Sequence", "Mapping", "Callable", "Type", "ClassVar",
    "Annotated", "Required", "NotRequired", "Self", "Never", "Object", "String", "Integer", "Boolean", "Number",
})
_PLACE_KEY = lazy(rf"(?i)(?:{_PLACE_KEYS})")
_MAIL_HEADER = lazy(r"(?m)^(?:From|To|Cc|Bcc|Reply-To|Sender):[ \t]{0,8}(\"?)([^\"<>\n,@:]{2,60})\1[ \t]{0,8}<")
_VCARD_NAME = lazy(r"(?m)^(?:FN|N)(?:;[^:\r\n]{0,80})?:([^\r\n]{2,80})")
_COMMON_NAME = lazy(r"(?<![\w])[Cc][Nn]=(\"?)([^;:\"\r\n,]{2,60})\1")
_VCARD_PLACE = lazy(r"(?m)^(?:ADR|LOCATION)(?:;[^:\r\n]{0,80})?:([^\r\n]{2,120})")
_CAMEL_HUMP = lazy(r"[a-z][A-Z]")
_PARTICLES = frozenset({"van", "von", "de", "da", "di", "du", "dos", "das", "del", "der", "la", "le", "bin", "al", "y"})
_NAME_WORD = lazy(r"[^\W\d_](?:[^\W\d_]|['’.-][^\W\d_]?)*\.?")


def person(value: str, one_word: bool = False) -> bool:
    """One to four capitalised words of letters (O'Neil, Anne-Marie, J.), particles between;
    a single word only under a key that asks for one (first_name, surname)."""
    words = value.split()
    if not words or len(words) > 4 or (len(words) == 1 and not one_word):
        return False
    for i, word in enumerate(words):
        if _NAME_WORD.fullmatch(word) is None:
            return False
        if not word[0].isupper() and not (i and word in _PARTICLES):
            return False
        if word.isupper() and len(word) > 3:
            return False  # RUNNING, ENABLED: constants, not names
    return True


def place(value: str) -> bool:
    """A place or an address line: letters, and capitalised or numbered (12 Main St, Lisbon,
    SW1A 1AA), not an identifier (us-east-1, open, /var/run)."""
    if "://" in value or any(c in "_/()[]{}=" for c in value) or not any(c.isalpha() for c in value):
        return False
    first = value[0]
    if not (first.isupper() or first.isdigit()) or len(value.split()) > 6:
        return False
    if " " not in value and _CAMEL_HUMP.search(value):
        return False  # StateBlock, DefaultRegion: a type or a constant, not a place
    return not (value.isupper() and len(value) > 3 and " " not in value)


_GAP = lazy(r" {2,}|\t")  # a form's next field on the same line: "Employee: Jo Doe    SSN: ..."
_ARRAY_ONLY = frozenset({"line"})  # FHIR's address "line": ["..."]; a bare `line:` is a number's key
_JSON_ONLY = frozenset({"family", "given"})  # FHIR's HumanName: "family": "...", "given": ["..."]
_TOML_SECTION = lazy(r"(?m)^\[[\w.\" -]{1,64}\][ \t]*$")


def _keyed(text: str, low: str) -> Iterator[Span]:
    toml = None
    for m in _KEYED_LOW.finditer(low):
        key, separator, quote, value = (text[m.start(g) : m.end(g)] for g in (1, 2, 3, 4))
        gap = _GAP.search(value)
        value = (value[: gap.start()] if gap else value).rstrip()
        if key.lower() in _ARRAY_ONLY and text[m.end(2) : m.start(3)].strip() != "[":
            continue
        if key.lower() in _JSON_ONLY and text[m.start()] != '"':
            continue
        if separator == "=" and (not quote or key.lower() == "name") or value in _LITERALS:
            # code: `city = default_city`, `name = "BBC Basic"` (a lexer's, a tool's); but a
            # TOML or INI table's unindented `name = "..."` is data
            if not (quote and key.lower() == "name" and _line_start(text, m.start())):
                continue
            toml = _TOML_SECTION.search(text) is not None if toml is None else toml
            if not toml:
                continue
        start = m.start(4)
        if _PLACE_KEY.fullmatch(key) or key.lower() in _ARRAY_ONLY:
            if place(value):
                yield Span(start, _address_end(text, start + len(value), quote), "LOCATION")
        elif person(value, one_word=_ONE_WORD_KEYS.search(key) is not None):
            yield Span(start, start + len(value), "PERSON")


def _line_start(text: str, at: int) -> bool:
    return at == 0 or text[at - 1] == "\n" or (text[at - 1] in "\"'" and (at == 1 or text[at - 2] == "\n"))


_ADDRESS_PART = lazy(r",[ \t]{0,2}([^\n\"',;{}\[\]<>|=]{2,60})")


def _address_end(text: str, end: int, quote: str) -> int:
    """An address goes on after commas ("Marktgasse 38a, Lisbon, Portugal"): each further part
    that looks like a place belongs to it; two spaces or a field's key end it."""
    for _ in range(4):
        m = _ADDRESS_PART.match(text, end)
        if m is None:
            break
        part = m.group(1)
        gap = _GAP.search(part)
        part = (part[: gap.start()] if gap else part).rstrip().rstrip(".")
        if not part or not place(part) or ":" in part:
            break
        end = m.start(1) + len(part)
    return end


def _headers(text: str, low: str) -> Iterator[Span]:
    for m in _MAIL_HEADER.finditer(text):
        value = m.group(2).strip()
        if person(value):
            start = m.start(2) + m.group(2).index(value)
            yield Span(start, start + len(value), "PERSON")


def _cards(text: str, low: str) -> Iterator[Span]:
    for m in _VCARD_NAME.finditer(text):
        value = m.group(1).strip().strip(";")
        parts = [p for p in value.replace(";", " ").split() if p]
        if value and person(" ".join(parts), one_word=True):
            start = m.start(1) + m.group(1).index(value)
            yield Span(start, start + len(value), "PERSON")
    for m in _COMMON_NAME.finditer(text):
        if person(m.group(2).strip()):
            yield Span(m.start(2), m.start(2) + len(m.group(2).strip()), "PERSON")
    for m in _VCARD_PLACE.finditer(text):
        value = m.group(1).strip().strip(";").replace("\\,", ",")
        raw = m.group(1).strip().strip(";")
        if raw and place(value.replace(";", " ").strip()):
            start = m.start(1) + m.group(1).index(raw)
            yield Span(start, start + len(raw), "LOCATION")


_NAMED = frozenset({"PERSON", "LOCATION"})
def _any_case(pattern: str) -> str:
    """``pattern`` (letters, groups, classes without letters) matching its letters in any case."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        in_class = (in_class or c == "[") and c != "]"
        if c.isalpha():
            out.append(c.upper() + c.lower() if in_class else f"[{c.upper()}{c.lower()}]")
        else:
            out.append(c)
        i += 1
    return "".join(out)


# For the pre-pass: what _keyed can call a name starts with a capital, a place with a capital
# or a digit (after any spaces), which keeps "Author: ci-bot" and "user: 42" out of its zones.
def _keyed_hint(keys: str, first: str) -> str:
    return (
        rf"(?<![\w-])[\"']?(?:{_any_case(keys)})[\"']?[ \t]{{0,4}}[:=][ \t]{{0,4}}"
        r"(?:\[[ \t]{0,4}|\{[ \t]{0,4}\"S\"[ \t]{0,4}:[ \t]{0,4})?[\"']?[ \t]{0,80}" + first
    )


_KEYED_HINTS = (
    Hint(_keyed_hint(_PERSON_KEYS + "|family|given", "[A-Z]"), fwd=100),
    Hint(_keyed_hint(_PLACE_KEYS + "|line", "[A-Z0-9]"), fwd=360),  # a value, and an address's further parts
)


register(
    Detector(
        "keyed-names-and-places", _NAMED, _KEYED_HINTS, find=_keyed,
        when=lambda text, low: ":" in text or "=" in text,
        context_keys=("name", "full_name", "first_name", "surname", "address", "city", "country", "postcode", "location"),
        examples=('{"full_name": "Jane Doe", "city": "Lisbon"}', "first_name: Maria\nlast_name: da Silva",
                  'address = "12 Main Street, Springfield"', "author: Ana María López"),
        not_flagged=('{"name": "read_file", "description": "Reads a file"}', "state: running", "location: us-east-1",
                     "username: jdoe", "filename: report.pdf", '{"name": "RUNNING"}', "    last_name = None",
                     "    name = 'Pango Markup'", "    location = ObjectIdentifier(oid)", "        state: Final"),
    ),
    Detector(
        "mail-header-names", frozenset({"PERSON"}), (Hint(_MAIL_HEADER.pattern),), find=_headers,
        when=lambda text, low: "<" in text,
        examples=("From: Jane Doe <jane@example.com>", 'To: "Ana María López" <ana@example.es>'),
        not_flagged=("From: noreply <bounce>", "To: all staff <list>"),
    ),
    Detector(
        "card-and-calendar-names", _NAMED,
        (Hint(_VCARD_NAME.pattern), Hint(_COMMON_NAME.pattern), Hint(_VCARD_PLACE.pattern)), find=_cards,
        when=lambda text, low: ":" in text or "cn=" in low,
        examples=("BEGIN:VCARD\nFN:Jane Doe\nN:Doe;Jane;;;\nEND:VCARD", "ORGANIZER;CN=John Smith:mailto:john@example.com",
                  "LOCATION:Conference Room 4\\, 1 Main Street"),
        not_flagged=("CN=example.com", "LOCATION:https://meet.example.com/abc"),
    ),
)
