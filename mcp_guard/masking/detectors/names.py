"""Names and places from structure, with no model: where a key or a header says what a value
is (``"full_name": ...``, ``city = ...``, ``From: Jane Doe <...>``, vCard ``FN:``, ICS
``CN=`` and ``LOCATION:``), the value gets that label, if it looks like a name or a place.

Prose stays with the NER extra (ner.py); these are the values tool results carry in fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote_plus

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register

_PERSON_KEYS = (
    r"(?:first|last|given|family|full|middle|maiden|customer|contact|display|legal|account[_ -]?holder|card[_ -]?holder"
    r"|account|global"
    r"|owner|sender|recipient|guest|passenger|traveller|traveler|applicant|patient|employee|member|student|tenant"
    r"|nick|preferred|spouse|parent|guardian|emergency[_ -]?contact|next[_ -]?of[_ -]?kin)"
    r"[_ -]?name|name[_ -]?on[_ -]?card|surname|name|nickname|author|recipient|cardholder|patient|employee|assignee"
    r"|attendee|organi[sz]er|real[_ -]?name|holder|beneficiary|payee|user(?:[_ -]?name)?|maintainer|reviewer|reporter"
    r"|owner|passenger|guest|traveller|traveler|applicant|tenant|landlord|spouse|guardian|next[_ -]?of[_ -]?kin"
    r"|emergency[_ -]?contact|contact(?:[_ -]?person)?|attn|attention|physician|doctor|nurse|clinician|surgeon"
    r"|pharmacist|caregiver|witness|cashier|signatory|(?:referring|attending)[_ -]?(?:physician|doctor)?"
    r"|(?:prepared|requested|reported|approved|signed"
    r"|submitted|created|assigned|issued|ordered)[_ -](?:by|to)"
)
_ONE_WORD_KEYS = lazy(r"(?i)first|last|given|family|middle|maiden|surname|display|nick|preferred")
_CAPS_KEYS = lazy(r"(?i)card|passenger|traveller|traveler")  # names printed in capitals: cards, tickets
_PLACE_KEYS = (
    r"(?:street|billing|shipping|home|postal|mailing|work|delivery|residential)?[_ -]?address(?:[_ -]?(?:line[_ -]?)?\d)?"
    r"|street(?:[_ -]?(?:line[_ -]?)?\d)?|addr|(?:city|town|country)(?:[_ -]?name)?|locality|suburb|hometown|village"
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
# A vCard or iCalendar property's group ("item1.") and parameters, a quoted one holding ":"
# (RFC 6350 section 3.3, RFC 5545 section 3.1: LOCATION;ALTREP="http://...":Room 4).
_PARAMS = r"(?:;(?:\"[^\"\r\n]{0,200}\"|[^:;\"\r\n]){0,80}){0,8}"
_VCARD_NAME = lazy(rf"(?m)^(?:[\w-]{{1,20}}\.)?(?:FN|N){_PARAMS}:([^\r\n]{{2,80}})")
# An LDAP DN's or an iCalendar parameter's common name: CN=Jane Doe, CN="Doe, Jane", CN=Doe\, Jane.
_COMMON_NAME = lazy(r"(?<![\w])[Cc][Nn]=(?:\"([^\"\r\n]{2,60})\"|((?:[^;:\"\r\n,\\]|\\.){2,60}))")
_VCARD_PLACE = lazy(rf"(?m)^(?:[\w-]{{1,20}}\.)?(ADR|LOCATION){_PARAMS}:([^\r\n]{{2,160}})")
# A DN's locality, state or street (RFC 4514; OpenSSL prints them "/L=Leeds/"), after another part.
_DN_PLACE = lazy(
    r"(?:(?<=[,/])|(?<=, ))(?:L|ST|street)=((?:[^,;+/\"\r\n\\=]|\\.){2,60}?)[ \t]*(?=[,/+][ \t]?[A-Za-z]{1,12}=|\r?\n|$)"
)
_CAMEL_HUMP = lazy(r"[a-z][A-Z]")
_PARTICLES = frozenset({"van", "von", "de", "da", "di", "du", "dos", "das", "del", "der", "la", "le", "bin", "al", "y"})
_NAME_WORD = lazy(r"[^\W\d_](?:[^\W\d_]|['’.-][^\W\d_]?)*\.?")


# Words that make a capitalised phrase a thing, a team or a state rather than a person or a
# place: "Build Docker Image", "Mail Delivery System", "The Team", "state: Running".
_THINGS = frozenset({
    "the", "team", "bot", "system", "service", "services", "support", "admin", "administrator", "daemon", "recipients",
    "undisclosed", "delivery", "notification", "notifications", "noreply", "build", "pipeline", "image", "docker",
    "python", "package", "packaging", "authority", "project", "window", "widget", "server", "client", "app",
    "application", "data", "file", "main", "default", "test", "tests", "config", "github", "gitlab", "jenkins", "api",
    "users", "group", "staff", "department", "desk", "helpdesk", "sales", "security", "accounts", "world", "everyone",
    "all", "folks", "engineering", "operations", "devops", "foundation", "inc", "inc.", "ltd", "ltd.", "llc", "gmbh",
    "corp", "corp.", "company", "labs", "plugin", "module", "library", "framework", "tool", "tools", "task", "job",
    "step", "workflow", "action", "actions", "release", "deploy", "deployment", "checks", "lint", "docs", "example",
    "sample", "demo", "my", "your", "our", "install", "setup", "run", "create", "update", "dependencies", "checkout",
    "error", "handler", "request", "response", "type", "markup", "format", "version", "node", "cluster", "contributors",
    "there", "customer", "customers", "developer", "developers", "sir", "madam", "reader", "readers", "friend", "friends",
    "everybody", "user", "ops", "room", "conference", "policy", "retry", "key", "primary", "maintainers", "colleagues",
    "guys", "community", "members", "account", "world!", "value", "field", "table", "column", "index", "object", "class", "method",
    # what a listing's bare "name" holds when it is no person: files, pages, channels, meetings
    "notes", "report", "reports", "plan", "plans", "roadmap", "template", "templates", "started", "getting", "drive",
    "channel", "folder", "files", "meeting", "meetings", "summary", "draft", "agenda", "minutes", "budget", "invoice",
    "invoices", "photo", "photos", "slides", "deck", "wiki", "readme", "sync", "doc", "sheet", "spreadsheet", "document",
    "documents", "notebook", "backlog", "sprint", "standup", "kickoff", "onboarding", "overview", "changelog", "quick",
    "start", "homepage", "google", "slack", "weekly", "daily", "monthly", "quarterly", "annual", "product", "design",
})
_MIXED_TOKEN = lazy(r"0[xX][0-9a-fA-F]+|(?=[^\s]*\d)(?=[^\s]*[A-Za-z])[^\s]{9,}")  # 0x7ffd5e8c, a1b2c3d4e5: ids
_STATES = frozenset({
    "running", "pending", "active", "inactive", "open", "closed", "enabled", "disabled", "ready", "failed", "success",
    "succeeded", "default", "unknown", "stopped", "started", "done", "new", "none", "draft", "published", "ok", "error",
    "complete", "completed", "healthy", "unhealthy", "available", "terminated", "paused", "idle", "online", "offline",
})


def person(value: str, one_word: bool = False, capitals: bool = False) -> bool:
    """One to four capitalised words of letters (O'Neil, Anne-Marie, J.), particles between;
    a single word only under a key that asks for one (first_name, surname). "Doe, Jane" (a
    surname first) is one too, its surname in capitals or not; capitals throughout only where
    the key prints names so (a card, a ticket)."""
    head, comma, tail = value.partition(", ")
    if comma and head and tail and "," not in tail:
        return person(head, True, True) and person(tail, True, capitals)
    words = value.split()
    if not words or len(words) > 4 or (len(words) == 1 and not one_word):
        return False
    for i, word in enumerate(words):
        if _NAME_WORD.fullmatch(word) is None or word.lower() in _THINGS:
            return False
        if not word[0].isupper() and not (i and word in _PARTICLES):
            return False
        if word.isupper() and len(word) > 3 and not capitals:
            return False  # RUNNING, ENABLED: constants, not names
    return True


def place(value: str) -> bool:
    """A place or an address line: letters, and capitalised or numbered (12 Main St, Lisbon,
    SW1A 1AA), not an identifier (us-east-1, open, /var/run) nor a state (Running)."""
    if "://" in value or any(c in "_/()[]{}=" for c in value) or not any(c.isalpha() for c in value):
        return False
    first = value[0]
    if not (first.isupper() or first.isdigit()) or len(value.split()) > 6:
        return False
    if " " not in value and (_CAMEL_HUMP.search(value) or value.lower() in _STATES or _MIXED_TOKEN.fullmatch(value)):
        return False  # StateBlock, DefaultRegion: a type or a constant, not a place
    if any(word.lower() in _THINGS for word in value.split()) and not any(c.isdigit() for c in value):
        return False
    return not (value.isupper() and len(value) > 3 and " " not in value)


_GAP = lazy(r" {2,}|\t")  # a form's next field on the same line: "Employee: Jo Doe    SSN: ..."
_ARRAY_ONLY = frozenset({"line"})  # FHIR's address "line": ["..."]; a bare `line:` is a number's key
_JSON_ONLY = frozenset({"family", "given"})  # FHIR's HumanName: "family": "...", "given": ["..."]
_TOML_SECTION = lazy(r"(?m)^\[[\w.\" -]{1,64}\][ \t]*$")


_BARE_END = lazy(r"[ \t&]")
_LOGFMT = lazy(r"(?:^|[ \t])[\w.-]{1,40}=[^\s=]")  # a log line's pairs: level=info msg="..." name=...
_SURNAME_FIRST = lazy(r", ?([^\W\d_][^\n\"',;{}\[\]<>|=]{0,40}?)[ \t]*(?=[\"']|\r?\n|$| {2,}|\t)")
_TO_KEY = lazy(r"(?i)(?:ship|bill|sold|deliver)[_ -]?to")


def _logfmt(text: str, m_start: int, separator_at: int) -> bool:
    """``key=value`` is a log line's pair (no spaces round "=", another pair on the line, the
    key not an argument in a call), not code's assignment."""
    if text[separator_at - 1 : separator_at] in " \t" or text[separator_at + 1 : separator_at + 2] in " \t":
        return False
    lo = text.rfind("\n", 0, m_start) + 1
    hi = text.find("\n", m_start)
    line = text[lo : len(text) if hi < 0 else hi]
    return "(" not in text[lo:m_start] and len(_LOGFMT.findall(line)) >= 2


def _keyed(text: str, low: str) -> Iterator[Span]:
    toml, at = None, 0
    while (m := _KEYED_LOW.search(low, at)) is not None:
        key, separator, quote, value = (text[m.start(g) : m.end(g)] for g in (1, 2, 3, 4))
        at = m.end()
        if separator == "=" and not quote and (cut := _BARE_END.search(value)):
            value, at = value[: cut.start()], m.start(4) + cut.start()  # name=Jo city=Rome: a bare value ends at a space
        gap = _GAP.search(value)
        value = (value[: gap.start()] if gap else value).rstrip()
        lead = len(value) - len(value.lstrip())
        value = value.lstrip()
        if key.lower() in _ARRAY_ONLY and text[m.end(2) : m.start(3)].strip() != "[":
            continue
        if key.lower() in _JSON_ONLY and text[m.start()] != '"':
            continue
        if (separator == "=" and (not quote or key.lower() == "name") or value in _LITERALS) and not (
            separator == "=" and value not in _LITERALS and _logfmt(text, m.start(), m.start(2))
        ):
            # code: `city = default_city`, `name = "BBC Basic"` (a lexer's, a tool's); but a
            # TOML or INI table's unindented `name = "..."` is data, and so is a log's name=...
            if not (quote and key.lower() == "name" and _line_start(text, m.start())):
                continue
            toml = _TOML_SECTION.search(text) is not None if toml is None else toml
            if not toml:
                continue
        start = m.start(4) + lead
        end = start + len(value)
        if _TO_KEY.fullmatch(key) and person(value):  # "Ship to: Jane Doe, 12 Main St": the name first
            yield Span(start, end, "PERSON")
            after = _address_end(text, end, quote)
            if after > end:
                yield Span(text.index(",", end) + 1 + _spaces(text, text.index(",", end) + 1), after, "LOCATION")
        elif _PLACE_KEY.fullmatch(key) or key.lower() in _ARRAY_ONLY:
            if place(value):
                yield Span(start, _address_end(text, end, quote), "LOCATION")
        elif person(value, one_word=_ONE_WORD_KEYS.search(key) is not None, capitals=_CAPS_KEYS.search(key) is not None):
            yield Span(start, end, "PERSON")
        elif (tail := _SURNAME_FIRST.match(text, end)) and person(value + ", " + tail.group(1).strip()):
            yield Span(start, tail.start(1) + len(tail.group(1).strip()), "PERSON")  # "Patient: DOE, Jane"


# An HTML form's body or a query string: first_name=Jo&city=San+Jose (RFC 1866's
# application/x-www-form-urlencoded), its values read decoded.
_FORM = lazy(rf"(?:^|(?<=[?&\n]))({_PERSON_KEYS}|{_PLACE_KEYS})=([^&\s#=]{{2,120}})(?=[&\s#]|$)")


def _form_fields(text: str, low: str) -> Iterator[Span]:
    for m in _FORM.finditer(low):
        if not (text[m.start() - 1 : m.start()] in ("?", "&") or text[m.end() : m.end() + 1] == "&"):
            continue  # a pair of a form, not a lone assignment
        key, raw = m.group(1), text[m.start(2) : m.end(2)]
        value = unquote_plus(raw).strip()
        if _PLACE_KEY.fullmatch(key):
            if place(value):
                yield Span(m.start(2), m.end(2), "LOCATION")
        elif person(value, one_word=_ONE_WORD_KEYS.search(key) is not None):
            yield Span(m.start(2), m.end(2), "PERSON")


# A name/value object: HAR's params and headers, AWS tags ({"Key": "city", "Value": "..."}),
# custom fields; the name says what the value is.
_NAME_VALUE = lazy(
    r"(?i)\{[ \t\r\n]{0,40}\"(?:name|key|field)\"[ \t]{0,4}:[ \t]{0,4}\"([\w .-]{2,40})\"[ \t]{0,4},[ \t\r\n]{0,40}"
    r"\"value\"[ \t]{0,4}:[ \t]{0,4}\"([^\"\r\n]{2,80})\""
)
_ANY_KEY = lazy(rf"(?:{_PERSON_KEYS}|{_PLACE_KEYS}|family|given)")


def _name_values(text: str, low: str) -> Iterator[Span]:
    for m in _NAME_VALUE.finditer(text):
        key = m.group(1).lower()
        if _ANY_KEY.fullmatch(key) is None:
            continue
        value = m.group(2).strip()
        start = m.start(2) + m.group(2).index(value) if value else m.start(2)
        if _PLACE_KEY.fullmatch(key):
            if place(value):
                yield Span(start, start + len(value), "LOCATION")
        elif person(value, one_word=_ONE_WORD_KEYS.search(key) is not None):
            yield Span(start, start + len(value), "PERSON")


def _spaces(text: str, at: int) -> int:
    return len(text[at : at + 8]) - len(text[at : at + 8].lstrip(" \t"))


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


def _cards(text: str, low: str) -> Iterator[Span]:
    for m in _VCARD_NAME.finditer(text):
        value = m.group(1).strip().strip(";")
        parts = [p for p in value.replace(";", " ").split() if p]
        if value and person(" ".join(parts), one_word=True):
            start = m.start(1) + m.group(1).index(value)
            yield Span(start, start + len(value), "PERSON")
    for m in _COMMON_NAME.finditer(text) if "cn=" in low else ():  # literal tests first: each search costs a pass
        group = 1 if m.group(1) is not None else 2
        raw = m.group(group).strip()
        if person(raw.replace("\\,", ",")):
            yield Span(m.start(group), m.start(group) + len(raw), "PERSON")
    for m in _VCARD_PLACE.finditer(text) if "ADR" in text or "LOCATION" in text else ():
        raw = m.group(2).strip().strip(";")
        value = raw.replace("\\,", ",")
        parts = [p.strip() for p in value.split(";") if p.strip()]
        if raw and (place(" ".join(parts)) or m.group(1) == "ADR" and any(place(p) for p in parts)):
            start = m.start(2) + m.group(2).index(raw)
            yield Span(start, start + len(raw), "LOCATION")
    for m in _DN_PLACE.finditer(text) if "L=" in text or "ST=" in text or "street=" in text else ():
        if place(m.group(1).replace("\\,", ",")):
            yield Span(m.start(1), m.end(1), "LOCATION")


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
                  'address = "12 Main Street, Springfield"', "author: Ana María López",
                  'level=info msg="signup" name="Dara Kelly" city=Galway', "Patient: SHANKAR, Ravi",
                  '{"locality": "New York", "nickname": "Maja Berg"}', "Deliver to: Zara Ali, 221B Baker Street"),
        not_flagged=('{"name": "read_file", "description": "Reads a file"}', "state: running", "location: us-east-1",
                     "username: jdoe", "filename: report.pdf", '{"name": "RUNNING"}', "    last_name = None",
                     "    name = 'Pango Markup'", "    location = ObjectIdentifier(oid)", "        state: Final",
                     "    city = get_city()", "state: Running", '{"name": "Build Docker Image"}',
                     "  - name: Install Dependencies", 'logger.info("name=%s city=%s", name, city)',
                     'f(name="Main Window", city=default)', "Address: 0x7ffd5e8c"),
    ),
    Detector(
        "name-value-objects", _NAMED, (Hint(_NAME_VALUE.pattern),), find=_name_values,
        when=lambda text, low: "value" in low,
        examples=('{"name": "first_name", "value": "Dara"}', '{"Key": "City", "Value": "Galway"}'),
        not_flagged=('{"name": "Content-Type", "value": "Text Html"}', '{"name": "city", "value": "{{ city }}"}'),
    ),
    Detector(
        "form-fields", _NAMED, (Hint("(?i)" + _FORM.pattern),), find=_form_fields,
        when=lambda text, low: "&" in text,
        examples=("first_name=Dara&last_name=Kelly&city=Galway", "POST /signup\n\nfull_name=Dara+Kelly&plan=pro"),
        not_flagged=("name=build&step=2", "?city=x&page=2", "a=1&name=read_file"),
    ),
    Detector(
        "card-and-calendar-names", _NAMED,
        (Hint(_VCARD_NAME.pattern), Hint(_COMMON_NAME.pattern), Hint(_VCARD_PLACE.pattern), Hint(_DN_PLACE.pattern)),
        find=_cards,
        when=lambda text, low: ":" in text or "=" in text,
        examples=("BEGIN:VCARD\nFN:Jane Doe\nN:Doe;Jane;;;\nEND:VCARD", "ORGANIZER;CN=John Smith:mailto:john@example.com",
                  "LOCATION:Conference Room 4\\, 1 Main Street", "item1.ADR;type=HOME:;;12 Elm St;Leeds;;LS1 1AA;UK",
                  'LOCATION;ALTREP="http://x.example/f123.vcf":Room F123\\, Bldg. 2',
                  'ATTENDEE;CN="Doe, John":mailto:j@example.com', "CN=Doe\\, Jane,OU=Users,DC=corp",
                  "subject=CN=web,O=Example Ltd,L=Leeds,C=GB"),
        not_flagged=("CN=example.com", "LOCATION:https://meet.example.com/abc", "CN=Users,DC=corp,DC=example",
                     "cn=admin,dc=example,dc=com", "ATTENDEE;CN=Conference Room:mailto:room", "ST=California"),
    ),
)
