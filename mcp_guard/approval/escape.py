"""Text from a call, made safe to show a person: every character that could hide, reorder or
rewrite what they read is shown as an escape, and keys that only look like others are named.

The rules are one list for every surface (terminal, web page, chat, the client's question), so a
value cannot be harmless on one and hostile on another. What counts:

- control characters (C0, DEL, C1) and line breaks, ANSI escape sequences among them;
- bidirectional controls (U+202A-U+202E, U+2066-U+2069, marks) that reorder what follows;
- invisible characters: zero-width and format characters, tags, variation selectors, odd spaces,
  blank letters (U+3164...), private-use, unassigned and surrogate code points;
- decomposed text (not in Unicode NFC, or opening with a combining mark): "cafe" + U+0301 is
  drawn like "caf\u00e9" yet is another string, so its combining marks are shown as escapes.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "Escaped", "drawn", "escape", "escape_key", "hidden", "key_lookalike", "one_line", "same_skeleton", "skeleton",
]

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"'}
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and marks that draw nothing, yet are not in a format or space category (Unicode's
# Default_Ignorable_Code_Point marks and letters, the Mongolian and Khitan fillers, Braille blank).
_BLANK = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0\U00016fe4")
# Printable ASCII but the quote and the backslash: shown as itself.
_PLAIN = frozenset(chr(c) for c in range(0x20, 0x7F)) - {"\\", '"'}


def _hidden(char: str) -> bool:
    """Whether ``char`` must be escaped: it draws nothing, or changes how the rest is drawn."""
    if char in _BLANK or "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":
        return True
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp") or (category == "Zs" and char != " ")


def hidden(char: str) -> bool:
    """Whether ``char`` draws nothing or changes how the rest is drawn (controls, format and
    bidi characters, odd spaces, blank letters, variation selectors, unassigned code points)."""
    return _hidden(char)


def _code(char: str) -> str:
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def _kind(char: str) -> str | None:
    """What warning ``char`` earns, or None when it is shown as itself (or as a plain escape)."""
    if char in "\n\r":
        return "line breaks"
    if char == "\x1b":
        return "ANSI escape sequences"
    if char in _BIDI:
        return "bidirectional controls"
    if char in '\t\\"' or not _hidden(char):
        return None
    return "control characters" if unicodedata.category(char) == "Cc" else "invisible characters"


# Characters classified so far (a hostile value repeats the same few): char -> warning kind, and
# the translate tables with and without the quote and backslash escapes.
_KINDS: dict[str, str | None] = {}
_QUOTED: dict[int, str] = {ord(k): v for k, v in _SHORT.items()}
_BARE: dict[int, str] = {ord(k): v for k, v in _SHORT.items() if k not in '\\"'}


def _learn(char: str) -> str | None:
    kind = _KINDS.get(char, "")
    if kind == "":
        kind = _KINDS[char] = _kind(char)
        if char not in _SHORT and (kind is not None or _hidden(char)):
            _QUOTED[ord(char)] = _BARE[ord(char)] = _code(char)
    return kind


@dataclass
class Escaped:
    """Text with its dangerous characters escaped, and what kinds were found (for warnings)."""

    text: str
    found: set[str]


def escape(text: str, quote: bool = True) -> Escaped:
    """``text`` on one line: line breaks, controls, bidi and invisible characters as escapes.

    With ``quote`` a double quote and a backslash are escaped too, so the result can sit between
    quotes and its end cannot be forged. Each distinct character is classified once, then the text
    is translated in one step: a megabyte of hostile characters costs about as much as a copy."""
    found: set[str] = set()
    suspects = set(text) - _PLAIN
    for char in suspects:
        kind = _learn(char)
        if kind is not None:
            found.add(kind)
    if not suspects:
        return Escaped(text, found)
    shown = text.translate(_QUOTED if quote else _BARE)
    marks = _decomposed(text, suspects)
    if marks:
        found.add("decomposed unicode (combining marks)")
        shown = shown.translate(marks)
    return Escaped(shown, found)


def _decomposed(text: str, suspects: set[str]) -> dict[int, str]:
    """Escapes for the combining marks of ``text`` when it is drawn like another string: it is not
    in NFC, or it opens with a mark (which joins whatever is shown before it, a quote or a token)."""
    marks = {ord(c): _code(c) for c in suspects if unicodedata.category(c)[0] == "M"}
    if not marks:
        return {}
    if unicodedata.is_normalized("NFC", text) and ord(text[0]) not in marks:
        return {}
    return marks


def one_line(text: str) -> str:
    """A name or label from a call (tool, server, user) as one safe line, without quotes."""
    return escape(text, quote=False).text


# Letters of other scripts drawn like Latin ones: a small table, enough for keys, not a full
# confusables list (NFKC already folds fullwidth and compatibility forms).
_LOOKALIKE = str.maketrans(
    "аеорсухіјѕһԁԛԝӏАВЕКМНОРСТХІЈЅαονικρυΑΒΕΖΗΙΚΜΝΟΡΤΧΥıɩɑɡ",
    "aeopcyxijshdqwlABEKMHOPCTXIJSaovikpuABEZHIKMNOPTXYiiag",
)
_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


def _skeleton(key: str) -> str:
    folded = unicodedata.normalize("NFKC", key).translate(_LOOKALIKE)
    return "".join(c for c in folded if not _hidden(c))


@functools.cache
def _drawn_as() -> tuple[dict[int, str], list[tuple[str, str]]]:
    """Each character of Unicode's confusables data (UTS #39, through confusable-homoglyphs) to
    one character of its class: the classes join every pair the data calls confusable (``I``,
    ``l``, ``1``, ``|`` and their twins in other scripts are one class; ``a`` and ``b`` never
    meet). Loaded on first use: only deciding who may approve needs it."""
    from confusable_homoglyphs.confusables import confusables_data

    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent.get(c, c) != c:
            parent[c] = parent.get(parent[c], parent[c])
            c = parent[c]
        return c

    # Latin letter pairs drawn as one letter that Unicode's data lists but this package's omits.
    sequences: list[tuple[str, str]] = [("cl", "d"), ("vv", "w"), ("VV", "W")]
    for key, twins in confusables_data.items():
        key = "".join(c for c in key if not _hidden(c))
        for twin in twins:
            other = "".join(c for c in twin.get("c", "") if not _hidden(c))
            if len(key) == 1 and len(other) == 1:
                a, b = root(key), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            elif len(key) == 1 and 1 < len(other) <= 3:
                sequences.append((other, key))  # "rn" drawn as "m"
    # Letters drawn as one ("rn" as "m"): every letter drawn as the same letters is one class.
    first: dict[str, str] = {}
    for many, one in sequences:
        spelt = "".join(root(c) for c in many)
        a, b = root(first.setdefault(spelt, one)), root(one)
        if a != b:
            parent[max(a, b)] = min(a, b)
    table = {ord(c): root(c) for c in parent}
    joined = {spelt: root(one) for spelt, one in first.items()}
    return table, sorted(joined.items(), key=lambda pair: -len(pair[0]))


def _shape(text: str) -> str:
    table, sequences = _drawn_as()
    # The table before NFKC too: NFKC takes some twins elsewhere (lunate sigma, drawn "c", to final sigma).
    visible = "".join(c for c in text.translate(table) if not _hidden(c))
    shape = unicodedata.normalize("NFKC", visible).translate(table)
    for many, one in sequences:
        shape = shape.replace(many, one)
    return shape.strip()


def drawn(text: str) -> frozenset[str]:
    """How ``text`` may be drawn, in any font and case: two names whose ``drawn`` forms meet can
    pass for each other (Armenian ``օ`` or Coptic ``ⲟ`` for ``o``, capital ``I`` for ``l``, ``rn``
    for ``m``, ``0`` for ``O``, invisible characters)."""
    plain = _bare(text)
    variants = {v for t in (text, plain) for v in (t, t.lower(), t.upper(), t.casefold())}
    shapes = {_shape(variant) for variant in variants}
    # Marks a font draws small or not at all (Turkish capital İ lowers to "i" + U+0307): each
    # shape also counts with its letters bare.
    return frozenset(shapes | {_bare(shape) for shape in shapes})


# Letters drawn like a Latin one that the confusables data leaves out (tone six and the Cyrillic
# soft and hard signs are drawn as "b").
_BARE_EXTRA = str.maketrans("ƅƄьЬъЪ", "bbbbbb")
_DECORATED = re.compile(r"^(LATIN|CYRILLIC|GREEK) (SMALL|CAPITAL) LETTER (\w+) WITH ")
# Any other Latin letter is read as the one its name ends with: a small capital (U+1D00 "ᴀ"), a
# turned or reversed letter, a letter in a negative square (U+1F171 "🅱") is drawn as that letter.
_LATIN_NAMED = re.compile(r"\bLATIN\b.*\bLETTER (?:[A-Z]+ )*([A-Z])$")
# What separates the parts of a name without being a letter: "bob smith", "bob-smith", "bob.smith"
# and "bobsmith" are drawn as one person; so are emoji skin-tone modifiers on nothing.
_SEPARATORS = frozenset(" -_.'\u2019\u00b7\u2010\u2011\u2012\u2013\u2014\u2212") | {chr(c) for c in range(0x1F3FB, 0x1F400)}


def _bare(text: str) -> str:
    """``text`` without marks (accents, a stroke through a letter, an enclosing keycap), without
    separators and skin-tone modifiers, and with decorated Latin letters (a hook, stroke or bar,
    a small capital, a letter in a square: ``ƀ``, ``ɓ``, ``ł``, ``ᴀ``, ``🅱``) as their base letter."""
    out = []
    for char in unicodedata.normalize("NFD", text.translate(_BARE_EXTRA)):
        if unicodedata.category(char).startswith("M") or char in _SEPARATORS or char.isspace():
            continue
        if not char.isascii():
            name = unicodedata.name(char, "")
            named = _DECORATED.match(name)
            if named and len(named.group(3)) == 1:
                char = unicodedata.lookup(f"{named.group(1)} {named.group(2)} LETTER {named.group(3)}")
            elif (latin := _LATIN_NAMED.search(name)) is not None:
                char = latin.group(1).lower()
        out.append(char)
    return "".join(out)


def skeleton(text: str) -> str:
    """What ``text`` looks like: NFKC, lookalike letters of other scripts as their Latin twin,
    invisible characters dropped. Two texts with one skeleton are hard to tell apart on a screen."""
    return _skeleton(text)


def key_lookalike(key: str) -> str | None:
    """Why ``key`` may not be what it seems (it is drawn like another key, or mixes alphabets)."""
    skeleton = _skeleton(key)
    scripts = sorted({s for s in (unicodedata.name(c, "").split(" ")[0] for c in key if c.isalpha()) if s in _SCRIPTS})
    if skeleton != key and skeleton.isascii():
        return f'looks like "{one_line(skeleton)}" but is made of other characters'
    if len(scripts) > 1:
        return "mixes " + " and ".join(s.title() for s in scripts) + " letters"
    if skeleton != key:
        return f'is drawn like "{one_line(skeleton)}"'
    return None


def same_skeleton(keys: list[str]) -> dict[str, list[str]]:
    """Keys of one object that are drawn alike, by what they look like."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(_skeleton(key), []).append(key)
    return {shape: found for shape, found in groups.items() if len(found) > 1}


def escape_key(key: str, suspect: bool) -> str:
    """A key for display: as is when plain; a suspect key shows every non-ASCII letter as a code."""
    text = escape(key).text
    if suspect:
        text = "".join(c if c.isascii() else _code(c) for c in text)
    return text
