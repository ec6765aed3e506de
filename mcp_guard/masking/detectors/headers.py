"""People that a message's or a commit's headers name: RFC 5322 address lists (``From:``,
``To:``, ``Cc:`` with ``Name <addr>``, ``"Doe, Jane" <addr>`` or ``addr (Name)``, quoted in a
reply with ``>``), the header block a mail client pastes above a forwarded message (``From:
Jane Doe`` then ``Sent:``), a reply's attribution line (``On Mon, 3 Mar 2025, Jane Doe
<addr> wrote:``), a letter's greeting (``Dear Jane,``), git's ``Author:``/``Commit:`` lines and
trailers (``Signed-off-by:``, ``Co-authored-by:``), and ``git blame``'s author column.

Each value must still look like a name (names.person): "Mail Delivery System", "GitHub" and
"dependabot[bot]" are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register
from .names import person

_FIELDS = (
    r"From|To|Cc|Bcc|Reply-To|Sender|Resent-From|Resent-To|Author|Commit|Committer|Signed-off-by|Co-authored-by"
    r"|Reviewed-by|Acked-by|Tested-by|Reported-by|Suggested-by|Helped-by"
)
_HEADER = lazy(rf"(?im)^[ \t]{{0,8}}(?:>[ \t]?){{0,4}}(?:{_FIELDS}):[ \t]{{0,12}}([^\r\n]{{2,600}})")
# One mailbox of a list: "Display" <addr>, Display <addr>, addr (Display).
_MAILBOX = lazy(
    r"[ \t]*(?:\"([^\"\r\n]{2,80})\"|([^\"<>\r\n,;@:()]{2,80}?))[ \t]*<[^<>\s]{1,200}>"
    r"|[ \t]*[^\s<>(),;\"]{1,100}@[^\s<>(),;\"]{1,200}[ \t]{1,4}\(([^()\r\n]{2,80})\)"
)
# For the pre-pass: a header whose first mailbox has a name before "<" or after an address;
# its zone reaches to the line's end, where the list's last mailbox is.
_HEADER_HINT = (
    rf"(?im)^[ \t]{{0,8}}(?:>[ \t]?){{0,4}}(?:{_FIELDS}):[ \t]{{0,12}}"
    r"(?:(?:\"[^\"\r\n]{2,80}\"|[^\"<>\r\n,;@:()]{2,80})[ \t]*<|[^\s<>(),;\"]{1,100}@[^\s<>(),;\"]{1,200}[ \t]{1,4}\()"
)
_SEPARATOR = lazy(r"[ \t]*[,;][ \t]*")
# A forwarded message's header block, as mail clients paste it: names alone, no addresses.
_PASTED = lazy(r"(?im)^[ \t]{0,8}(?:>[ \t]?){0,4}(?:From|To|Cc):[ \t]{1,12}([^\r\n<>@:]{2,300})[ \t]*$")
_PASTED_NEIGHBOUR = lazy(r"(?im)^[ \t]{0,8}(?:>[ \t]?){0,4}(?:From|Sent|Date|To|Cc|Subject):")
_ATTRIBUTION = lazy(
    r"(?m)^[ \t]{0,8}(?:>[ \t]?){0,4}On [^\r\n]{4,100}?,[ \t]{0,4}([^,\r\n<>]{2,60}?)[ \t]{0,4}"
    r"(?:<[^<>\r\n]{3,200}>[ \t]{0,4})?wrote:[ \t]*\r?$"
)
_GREETING = lazy(
    r"(?m)^[ \t]{0,8}(?:Dear|Hi|Hello|Hey)[ \t]{1,4}(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?[ \t]{1,4})?"
    r"([^\r\n,!:;]{2,60}?)[ \t]{0,4}[,!:][ \t]*\r?$"
)
_BLAME = lazy(
    r"(?m)^\^?[0-9a-f]{7,40}[ \t](?:[^\s(]{1,200}[ \t]{1,8})?\(([^()\r\n]{2,60}?)[ \t]{1,40}"
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}[ \t]{1,8}\d{1,7}\)"
)


def _spans(text: str, start: int, value: str, one_word: bool = False) -> Iterator[Span]:
    """``value`` (found at ``start``) as a PERSON span without its padding, if it is a name."""
    name = value.strip()
    if person(name, one_word=one_word):
        at = start + value.index(name)
        yield Span(at, at + len(name), "PERSON")


def _address_lists(text: str, low: str) -> Iterator[Span]:
    for m in _HEADER.finditer(text):
        at, end = m.start(1), m.end(1)
        while at < end:
            box = _MAILBOX.match(text, at, end)
            if box is None:
                break
            group = next(g for g in (1, 2, 3) if box.group(g) is not None)
            yield from _spans(text, box.start(group), box.group(group))
            sep = _SEPARATOR.match(text, box.end(), end)
            if sep is None:
                break
            at = sep.end()


def _pasted_headers(text: str, low: str) -> Iterator[Span]:
    for m in _PASTED.finditer(text):
        before = text.rfind("\n", 0, max(0, m.start() - 1)) + 1
        after = m.end() + 1
        if not (_PASTED_NEIGHBOUR.match(text, after) or (before < m.start() and _PASTED_NEIGHBOUR.match(text, before))):
            continue  # a header block has more than one line
        at = m.start(1)
        for part in m.group(1).split(";"):
            yield from _spans(text, at, part)
            at += len(part) + 1


def _lines(text: str, low: str) -> Iterator[Span]:
    for pattern, one_word in ((_ATTRIBUTION, False), (_GREETING, True), (_BLAME, False)):
        for m in pattern.finditer(text):
            yield from _spans(text, m.start(1), m.group(1), one_word)


_PERSON = frozenset({"PERSON"})
register(
    Detector(
        "address-lists", _PERSON, (Hint(_HEADER_HINT, fwd=620),), find=_address_lists,
        when=lambda text, low: ":" in text and ("<" in text or "(" in text),
        examples=("From: Jane Doe <jane@example.com>", 'To: "Ana María López" <ana@example.es>',
                  "Cc: Mary Smith <mary@x.test>, Pete Yu <pete@y.test>", "From: jdoe@example.org (John Doe)",
                  "> from: Anika Roy <anika@x.in>", "commit 3f2a\nAuthor: Grace Hopper <grace@x.mil>\n",
                  "    Signed-off-by: Kari Nordmann <kari@x.no>"),
        not_flagged=("From: noreply <bounce>", "To: all staff <list>", "From: GitHub <noreply>",
                     "From: Mail Delivery System <MAILER-DAEMON@x>",
                     "Author: dependabot[bot] <support>",
                     "# From: the original <implementation>", "To: Undisclosed Recipients <>"),
    ),
    Detector(
        "pasted-mail-headers", _PERSON, (Hint(_PASTED.pattern),), find=_pasted_headers,
        when=lambda text, low: ":" in text,
        examples=("From: Tobias Lund\nSent: Monday, March 3, 2025 9:14 AM\nTo: Ingrid Sol; Jo Kim\nSubject: re",),
        not_flagged=("From: the original implementation\n", "# From: Tobias Lund\nx = 1", "To: Do\nSubject: list"),
    ),
    Detector(
        "attributions-greetings-blame", _PERSON, (Hint(_ATTRIBUTION.pattern), Hint(_GREETING.pattern),
                                                    Hint(_BLAME.pattern)), find=_lines,
        when=lambda text, low: "wrote:" in text or ")" in text or any(w in text for w in ("Dear", "Hi", "Hello", "Hey")),
        examples=("On Mon, 3 Mar 2025 at 09:14, Tobias Lund <tobias@x.se> wrote:", "Dear Ravi Shankar,\n",
                  "Hi Ravi,\n\nthe build is green", "a1b2c3d4 (Kari Nordmann 2025-03-01 12:00:00 +0100 12) return x"),
        not_flagged=("Hi all,\n", "Hello World!", "Hi team,", "On success, the hook wrote:", "Dear reader,"),
    ),
)
