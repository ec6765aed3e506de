"""Names and places that a document's layout labels, with no key on the same line: the lines
under "Bill to:" or "Ship to:", a SWIFT party field (``:50K:``, ``:59:``), a mail's sign-off,
a chat line's speaker, an XML element (``<City>``, ISO 20022's ``<Nm>`` and ``<TwnNm>``), an
HL7 ``PID`` segment, LDIF attributes (``cn:``, ``l:``), an identity card's printed fields, and
a name paired with an address (``("Jane Doe", "jane@example.com")``).

Each rule needs its structure to be there (a label line, a segment name, a tag), and each value
must still look like a name (names.person) or a place (names.place).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register
from .names import person, place

# -- address blocks ------------------------------------------------------------------------------

_BLOCK_LABEL = lazy(
    r"(?im)^[ \t]{0,8}(?:bill(?:ed)?[ \t]{1,4}to|ship(?:ped)?[ \t]{1,4}to|sold[ \t]{1,4}to|deliver(?:y)?[ \t]{1,4}to"
    r"|remit[ \t]{1,4}to"
    r"|invoice[ \t]{1,4}to|consignee|recipient|beneficiary|ordering[ \t]{1,4}customer|:5[09][AFK]?:(?:/[^\n]{0,40})?"
    r"|sender|shipper|from(?=[ \t]{0,8}:))"  # a shipping label's sender block
    r"[ \t]{0,8}:?[ \t]{0,8}\r?\n"
)
# A label over an address alone: "Mailing address", "Registered office:"; every line under it is a place.
_PLACE_LABEL = lazy(
    r"(?im)^[ \t]{0,8}(?:(?:home|mailing|postal|billing|shipping|delivery|street|registered|business|work|office"
    r"|permanent|current|residential)[ \t]{1,4})?(?:address|office)[ \t]{0,8}:?[ \t]{0,8}\r?\n"
)
# A line that is another field, not an address line: a key, a phone, a mail address.
_NOT_ADDRESS = lazy(r"(?i)[^\n]*[@:]|[ \t]*(?:tel|phone|fax|mobile|e-?mail|vat|iban|bic|ref)\b")


_LINE = 120  # longer lines are no address lines; and the pre-pass's zone reaches five of these


def _blocks(text: str, low: str) -> Iterator[Span]:
    for label, names_first in ((_BLOCK_LABEL, True), (_PLACE_LABEL, False)):
        for m in label.finditer(text):
            yield from _block_lines(text, m.end(), names_first)


def _block_lines(text: str, at: int, names_first: bool) -> Iterator[Span]:
    first = names_first
    for _ in range(5):
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        line = text[at:end].rstrip("\r")
        value = line.strip()
        if not value or len(line) > _LINE or _NOT_ADDRESS.match(line):
            break
        start = at + line.index(value)
        if first and person(value):
            yield Span(start, start + len(value), "PERSON")
        elif not first and place(value):
            yield Span(start, start + len(value), "LOCATION")
        elif not first:
            break
        first, at = False, end + 1


# -- sign-offs and chat speakers -----------------------------------------------------------------

_SIGN_OFF = lazy(
    r"(?im)^[ \t]{0,8}(?:(?:kind|best|warm|many)[ \t]{1,4})?"
    r"(?:regards|thanks|thank you|cheers|sincerely|best|yours[ \t]{1,4}(?:sincerely|truly))[,!.]?[ \t]{0,8}\r?\n"
    r"(?:[ \t]{0,8}\r?\n)?[ \t]{0,8}(?:--[ \t]{0,4})?([^\n]{2,60}?)[ \t]{0,8}(?:\r?\n|$)"
    # a signature under its delimiter line (RFC 3676's "-- "), a role or a company after "|" or ","
    r"|^--[ \t]?\r?\n[ \t]{0,8}([^\n|,]{2,60}?)[ \t]{0,8}(?:[|,][^\n]{0,80})?(?:\r?\n|$)"
)
# "[09:14] Diego: ...", "[11/04/2025, 10:02:11] Mei O'Sullivan: ...", "<Henrik> ...",
# "Noor Santos 11/04/2025 10:02" (a chat export's message header).
_SPEAKER = lazy(
    r"(?m)^(?:\[[^\]\n]{0,30}\d[^\]\n]{0,30}\][ \t]{1,4}([^\n:\[\]<>]{2,40}):[ \t]"
    r"|(?:\[?\d{1,2}:\d{2}(?::\d{2})?\]?[ \t]{1,4})?<[ @+]?([^\s<>@]{2,30})>[ \t]"  # IRC: "[10:02] <Henrik> ..."
    r"|([^\n\d:@<>\[\]]{2,40}?)[ \t]{1,4}\d{1,2}/\d{1,2}/\d{2,4},?[ \t]{1,4}\d{1,2}:\d{2}[ \t]{0,8}$"
    # WhatsApp's export on Android: "03/02/2025, 18:01 - Zoe Adler: see you"
    r"|\d{1,2}/\d{1,2}/\d{2,4},?[ \t]{1,4}\d{1,2}:\d{2}(?:[ \t]?[AaPp][Mm])?[ \t]{1,4}-[ \t]{1,4}([^\n:@<>\[\]]{2,40}?):[ \t])"
)


def _sign_offs(text: str, low: str) -> Iterator[Span]:
    for m in _SIGN_OFF.finditer(text):
        group = 1 if m.group(1) is not None else 2
        if person(m.group(group), one_word=group == 1):
            yield Span(m.start(group), m.end(group), "PERSON")


def _speakers(text: str, low: str) -> Iterator[Span]:
    for m in _SPEAKER.finditer(text):
        group = next(g for g in (1, 2, 3, 4) if m.group(g) is not None)
        value = m.group(group).strip()
        if person(value, one_word=group != 3):
            start = m.start(group) + m.group(group).index(value)
            yield Span(start, start + len(value), "PERSON")


# -- XML elements --------------------------------------------------------------------------------

_XML_PERSON = (
    r"(?:full|first|last|given|family|sur|customer|contact|display|holder|account|card)?name|surname|Nm|holder"
    r"|creator|author|contributor|assignee|reporter|owner"
)
_XML_PLACE = (
    r"(?:street|home|billing|shipping|postal)?address(?:line\d?)?|AdrLine|StrtNm|TwnNm|CtrySubDvsn|street|city|town"
    r"|country(?:name)?|locality|suburb|province|county|birthplace|placeofbirth"
)
# The closing tag is compared in Python: the pre-pass has no back-references.
# An element may have a namespace's prefix (Dublin Core's <dc:creator>, Atom's <atom:name>).
_XML = lazy(rf"(?i)<((?:[\w-]{{1,20}}:)?(?:{_XML_PERSON}|{_XML_PLACE}))>([^<>\n]{{2,80}})</([\w:-]{{1,50}})>")
_XML_PLACE_KEY = lazy(rf"(?i){_XML_PLACE}")


def _elements(text: str, low: str) -> Iterator[Span]:
    for m in _XML.finditer(text):
        if m.group(3) != m.group(1):
            continue
        value = m.group(2).strip()
        tag = m.group(1).rpartition(":")[2]
        label = "LOCATION" if _XML_PLACE_KEY.fullmatch(tag) else "PERSON"
        one_word = tag.lower() in ("firstname", "lastname", "givenname", "familyname", "surname")
        if (place(value) if label == "LOCATION" else person(value, one_word=one_word)):
            start = m.start(2) + m.group(2).index(value)
            yield Span(start, start + len(value), label)


# -- HL7 v2 --------------------------------------------------------------------------------------

_HL7_SEGMENT = lazy(r"(?m)^(PID|NK1|GT1)\|[^\r\n]{0,2000}")
# The fields (by number) of a person's name and address in each segment (HL7 v2.5, chapter 3 and 6).
_HL7_FIELDS = {"PID": ((5, "PERSON"), (11, "LOCATION")), "NK1": ((2, "PERSON"), (4, "LOCATION")),
               "GT1": ((3, "PERSON"), (5, "LOCATION"))}


_HL7_DATE = lazy(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?:\d{2,6})?")


def _hl7(text: str, low: str) -> Iterator[Span]:
    for m in _HL7_SEGMENT.finditer(text):
        fields = m.group().split("|")
        offsets = [m.start()]
        for field in fields[:-1]:
            offsets.append(offsets[-1] + len(field) + 1)
        if m.group(1) == "PID" and len(fields) > 7 and _HL7_DATE.fullmatch(fields[7]):  # PID-7, the birth date
            yield Span(offsets[7], offsets[7] + 8, "DATE")
        for number, label in _HL7_FIELDS[m.group(1)]:
            if number >= len(fields) or not fields[number]:
                continue
            parts = [p for p in re.split(r"[\^~&]", fields[number]) if p]
            check = (lambda p: person(p, one_word=True)) if label == "PERSON" else place
            if parts and any(check(p) for p in parts) and all(not p.isdigit() or label == "LOCATION" for p in parts):
                yield Span(offsets[number], offsets[number] + len(fields[number]), label)


# -- LDIF and identity cards ---------------------------------------------------------------------

_LDIF = lazy(
    r"(?m)^(cn|sn|givenName|displayName|l|st|street|postalAddress|homePostalAddress)[ \t]{0,8}:[ \t]{0,8}([^\n]{2,80})$"
)
_LDIF_KEYS = {"cn": "PERSON", "sn": "PERSON1", "givenname": "PERSON1", "displayname": "PERSON"}
_ID_CARD = lazy(
    r"(?m)^(SURNAME|FAMILY NAME|GIVEN NAMES?|FIRST NAMES?|NAME|PLACE OF BIRTH|ADDRESS)"
    r"(?:[ \t]{0,4}/[ \t]{0,4}[^\n]{1,30}?)?"
    r"[ \t]{2,40}([^\n]{2,80})$"
)


def _ldif(text: str, low: str) -> Iterator[Span]:
    for m in _LDIF.finditer(text):
        kind = _LDIF_KEYS.get(m.group(1).lower(), "LOCATION")
        yield from _valued(m, 2, kind)


def _id_cards(text: str, low: str) -> Iterator[Span]:
    for m in _ID_CARD.finditer(text):
        key = m.group(1)
        kind = "LOCATION" if key in ("PLACE OF BIRTH", "ADDRESS") else "PERSON" if key == "NAME" else "PERSON1"
        yield from _valued(m, 2, kind)


def _valued(m: re.Match[str], group: int, kind: str) -> Iterator[Span]:
    raw = m.group(group)
    value = raw.strip().replace("$", " ")
    ok = place(value) if kind == "LOCATION" else person(value, one_word=kind == "PERSON1")
    if ok:
        start = m.start(group) + raw.index(raw.strip())
        yield Span(start, start + len(raw.strip()), kind.rstrip("1"))


# -- a name beside its address -------------------------------------------------------------------

_NAME_AND_MAIL = lazy(r"[\"']([^\"'\n]{2,60})[\"'][ \t]{0,8},[ \t]{0,8}[\"'][A-Za-z0-9._%+-]{1,64}@")


def _named_addresses(text: str, low: str) -> Iterator[Span]:
    for m in _NAME_AND_MAIL.finditer(text):
        if person(m.group(1)):
            yield Span(m.start(1), m.end(1), "PERSON")


_NAMED = frozenset({"PERSON", "LOCATION"})
_OTHER_LABELS = ("recipient", "beneficiary", "consignee")
register(
    Detector(
        "address-blocks", _NAMED,
        (Hint(_BLOCK_LABEL.pattern, fwd=5 * (_LINE + 2)), Hint(_PLACE_LABEL.pattern, fwd=5 * (_LINE + 2))),
        find=_blocks,
        when=lambda text, low: "to" in low or ":5" in text or any(
            w in low for w in (*_OTHER_LABELS, "address", "office", "sender", "shipper", "from")),
        examples=("Bill to:\nJane Doe\n12 Main Street\n10115 Berlin\n", "SHIP TO:\nAna Lopez\nRua Augusta 10\n",
                  ":59:/DE89370400440532013000\nJane Doe\n", "FROM:\nJane Doe\n12 Main Street\n", "Mailing address\n221B Baker Street\nLondon NW1 6XE\n"),
        not_flagged=("Ship to:\n\nnothing yet", "Bill to:\nsee attached\n", "Address\n0x7ffd5e8c\n",
                     "address\nSee the docs\n"),
    ),
    Detector(
        "sign-offs", frozenset({"PERSON"}), (Hint(_SIGN_OFF.pattern),), find=_sign_offs,
        when=lambda text, low: any(w in low for w in ("regards", "thank", "cheers", "sincerely", "best", "--")),
        examples=("Kind regards,\nJane Doe", "Best regards,\n\nJane Doe\n", "Regards\nRavi\n", "-- \nJane Doe | Acme\n"),
        not_flagged=("Thanks,\nthe team", "Best,\nSupport Team Lead Desk Ops", "--\nSELECT Name FROM users;",
                     "Thanks,\nAnd another thing"),
    ),
    Detector(
        "chat-speakers", frozenset({"PERSON"}), (Hint(_SPEAKER.pattern),), find=_speakers,
        when=lambda text, low: "[" in text or "<" in text or "/" in text,
        examples=("[09:14] Diego: rotate it", "[11/04/2025, 10:02:11] Mei O'Sullivan: hi",
                  "Noor Santos 11/04/2025 10:02\nhey", "[10:02] <Henrik> deploy done", "03/02/2025, 18:01 - Zoe Adler: ok"),
        not_flagged=("[2025-04-11 08:00:01] INFO: started", "[1/3] building: ok", "<div> hello"),
    ),
    Detector(
        "xml-elements", _NAMED, (Hint(_XML.pattern),), find=_elements, when=lambda text, low: "</" in text,
        examples=("<Name>Jane Doe</Name>", "<Cdtr><Nm>Jane Doe</Nm><PstlAdr><TwnNm>Tampere</TwnNm></PstlAdr>",
                  "<dc:creator>Nadia Haddad</dc:creator>", "<Country>Lebanon</Country>"),
        not_flagged=("<name>read_file</name>", "<city>{{ city }}</city>", "<name>Main Window</name>",
                     "<dc:creator>sphinx-build</dc:creator>"),
    ),
    Detector(
        "hl7-segments", _NAMED | {"DATE"}, (Hint(_HL7_SEGMENT.pattern),), find=_hl7, when=lambda text, low: "|" in text,
        examples=("PID|1||123^^^HOSP^MR||Doe^Jane||19800101|F|||1 Main St^^Lisbon||555 0100",),
    ),
    Detector(
        "ldif-and-id-cards", _NAMED, (Hint(_LDIF.pattern), Hint(_ID_CARD.pattern)),
        find=lambda text, low: [*_ldif(text, low), *_id_cards(text, low)],
        when=lambda text, low: ":" in text or "  " in text,
        examples=("dn: cn=Jane Doe,dc=example\ncn: Jane Doe\nl: Leeds", "SURNAME / NOM  Doe\nPLACE OF BIRTH  Turin"),
        not_flagged=("l: 12", "cn: ${NAME}"),
    ),
    Detector(
        "name-beside-address", frozenset({"PERSON"}), (Hint(_NAME_AND_MAIL.pattern),), find=_named_addresses,
        when=lambda text, low: "@" in text,
        examples=('ADMINS = [("Jane Doe", "jane@example.com")]',),
        not_flagged=('("support", "docs")',),
    ),
)
