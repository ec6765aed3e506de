"""Financial and national identifiers: payment cards, US social security numbers, IBANs."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, RunCheck, register

# -- CREDIT_CARD ---------------------------------------------------------------------------------

_CARD = lazy(r"(?<![\w.+-])\d(?:[ -]?\d){11,18}(?![\w-]|\.\d)")
# Maestro also issues 12-digit cards; a 12-digit number is taken for one only written in groups.
_MAESTRO_12 = lazy(r"(?:5[06-8]|6\d)\d\d([ -])\d{4}\1\d{4}")
# Issuer ranges (the first digits) and the lengths each network issues: a number of another
# length is not that network's card, however its digits add up.
_CARD_NETWORKS: list[tuple[re.Pattern[str], frozenset[int]]] = [
    (lazy(r"4"), frozenset({13, 16, 19})),                                          # Visa
    (lazy(r"5[1-5]|2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), frozenset({16})),    # Mastercard
    (lazy(r"3[47]"), frozenset({15})),                                              # American Express
    (lazy(r"3(?:0[0-5]|09|6|8|9)"), frozenset({14, 16, 17, 18, 19})),                  # Diners Club
    (lazy(r"6(?:011|4[4-9]|5)"), frozenset({16, 17, 18, 19})),                      # Discover
    (lazy(r"35(?:2[89]|[3-8]\d)"), frozenset({16, 17, 18, 19})),                    # JCB
    (lazy(r"62"), frozenset({16, 17, 18, 19})),                                     # UnionPay
    (lazy(r"220[0-4]"), frozenset({16, 17, 18, 19})),                               # Mir
    (lazy(r"5[06-8]|6[37]|639"), frozenset({12, 13, 14, 15, 16, 17, 18, 19})),       # Maestro
    (lazy(r"60|65|81|82|508"), frozenset({16})),                                    # RuPay
]


def _card_network(digits: str) -> bool:
    return any(prefix.match(digits) and len(digits) in lengths for prefix, lengths in _CARD_NETWORKS)


_DOUBLED = str.maketrans("0123456789", "0246813579")  # a digit doubled, its two digits added


def _luhn(digits: str) -> bool:
    backwards = digits[::-1]
    return (sum(map(int, backwards[0::2])) + sum(map(int, backwards[1::2].translate(_DOUBLED)))) % 10 == 0


def _cards(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        raw = m.group()
        if " " in raw and "-" in raw:
            continue  # mixed separators: not how a card number is written
        digits = raw.replace(" ", "").replace("-", "")
        # Cheapest first: a run of one digit repeated ("1 1 1 1 ...") is no card.
        if len(digits) == 12 and _MAESTRO_12.fullmatch(raw) is None:
            continue
        if len(set(digits)) > 1 and 12 <= len(digits) <= 19 and _card_network(digits) and _luhn(digits):
            yield Span(m.start(), m.end(), "CREDIT_CARD")


# -- US_SSN --------------------------------------------------------------------------------------

_SSN = lazy(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_BARE = lazy(r"(?i)\b(?:ssn|social security(?: number| no\.?)?|soc\.? sec\.?)\W{0,5}(\d{9})\b")


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


def _ssns(text: str) -> Iterator[Span]:
    for m in _SSN.finditer(text):
        if _ssn_valid(m.group(1), m.group(3), m.group(4)):
            yield Span(m.start(), m.end(), "US_SSN")


def _bare_ssns(text: str, low: str) -> Iterator[Span]:
    for m in _SSN_BARE.finditer(text):
        digits = m.group(1)
        if _ssn_valid(digits[:3], digits[3:5], digits[5:]):
            yield Span(m.start(1), m.end(1), "US_SSN")


# -- IBAN ----------------------------------------------------------------------------------------

# Country, check digits, then up to 30 characters in groups of any size, spaced or dashed.
_IBAN = lazy(r"[A-Z](?<![A-Za-z0-9_][A-Z])[A-Z]\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
_IBAN_SEPARATORS = str.maketrans("", "", " -")
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def _ibans(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        compact = raw.translate(_IBAN_SEPARATORS)
        want = _IBAN_LENGTHS.get(compact[:2])
        if want is None:
            continue
        if len(compact) > want:  # the pattern ran on into the next word: trim to the country's length
            keep, count = 0, 0
            for i, ch in enumerate(raw):
                if ch not in " -":
                    count += 1
                if count == want:
                    keep = i + 1
                    break
            raw, compact = raw[:keep], compact[:want]
        if len(compact) != want:
            continue
        rearranged = compact[4:] + compact[:4]
        number = "".join(str(int(c, 36)) for c in rearranged)
        if int(number) % 97 == 1:
            yield Span(m.start(), m.start() + len(raw), "IBAN")


register(
    Detector(
        "card", frozenset({"CREDIT_CARD"}), (Hint(_CARD.pattern, run=True),),
        run=RunCheck(lambda digits, seg: digits >= 12, _cards),  # a run may hold several numbers
        examples=("card 4111-1111-1111-1111.", "amex 3782 822463 10005", "unionpay 6200 0000 0000 0005",
                  "cards 4111 1111 1111 1111 5555 5555 5555 4444",
                  "maestro 6759 6498 2648"),
        not_flagged=("order 1234567890123 weighs 12.5 kg", "id 23167720941145", "4111-1111 1111-1111",
                     "ts 675964982648"),
    ),
    Detector(
        "ssn", frozenset({"US_SSN"}), (Hint(_SSN.pattern, run=True),),
        run=RunCheck(lambda digits, seg: digits >= 9, _ssns),
        examples=("ssn 123-45-6789",),
        not_flagged=("000-12-3456", "666-12-3456", "900-12-3456"),
    ),
    Detector(
        "ssn-in-context", frozenset({"US_SSN"}), (Hint(_SSN_BARE.pattern),), find=_bare_ssns,
        when=lambda text, low: "ssn" in low or "social sec" in low or "soc" in low,
        context_keys=("ssn", "social security number"),
        examples=("SSN: 123456789",),
    ),
    Detector(
        "iban", frozenset({"IBAN"}), (Hint(_IBAN.pattern),), find=lambda text, low: _ibans(text),
        examples=("pay to DE89 3704 0044 0532 0130 00 now", "GB82WEST12345698765432",
                  "iban FR76-3000-6000-0112-3456-7890-189", "IBAN DE89 370 400 440 532 013 000."),
        not_flagged=("DE89 3704 0044 0532 0130 01", "ISBN 978 3 16 148410 0"),
    ),
)
