"""Secrets: provider token formats, webhook URLs, private keys, credentials in HTTP headers,
and values under a secret-sounding key (``password = ...``, ``"api_key": "..."``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from urllib.parse import unquote

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, literal_union, register
from .providers import github_checksum_ok
from .values import (
    code, entropy_at_least, looks_secret, named, no_value, not_a_secret, passphrase, passwordish, prose, pw_key, said_password,
)

__all__ = ["number_secret_for_key", "secret_for_key", "secret_in_tree", "secret_tree_key", "secretish"]

# Token families, each found only where its literal prefix occurs (a cheap `in` test first).
_TOKEN_FAMILIES: list[tuple[tuple[str, ...], re.Pattern[str]]] = [
    (("AKIA", "ASIA", "ABIA", "ACCA", "AROA", "AIDA"), lazy(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[A-Z0-9]{16}(?![\w-])")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), lazy(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36,251}+(?![\w-])")),
    (("github_pat_",), lazy(r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,244}+(?![\w-])")),
    (("glpat-",), lazy(r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,64}+(?![\w-])")),
    (("xox",), lazy(r"(?<![A-Za-z0-9])xox[abposre]-[A-Za-z0-9-]{10,250}+(?![\w-])")),
    (("xapp-",), lazy(r"(?<![A-Za-z0-9])xapp-\d-[A-Za-z0-9-]{10,250}+(?![\w-])")),
    (("_live_", "_test_"), lazy(r"(?<![A-Za-z0-9])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,247}+(?![\w-])")),
    (("whsec_",), lazy(r"(?<![A-Za-z0-9])whsec_[A-Za-z0-9]{24,64}+(?![\w-])")),
    (("sk-",), lazy(r"(?<![\w-])sk-(?:ant-(?:api|admin)\d{2}-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}+(?![\w-])")),
    (("AIza",), lazy(r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}(?![\w-])")),
    (("ya29.",), lazy(r"(?<![A-Za-z0-9])ya29\.[0-9A-Za-z_-]{20,500}+(?![\w-])")),
    (("SG.",), lazy(r"(?<![A-Za-z0-9])SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![\w-])")),
    (("npm_",), lazy(r"(?<![A-Za-z0-9])npm_[A-Za-z0-9]{36}(?![\w-])")),
    (("pypi-AgE",), lazy(r"(?<![A-Za-z0-9])pypi-AgE[A-Za-z0-9_-]{50,300}+(?![\w-])")),
    (("hf_",), lazy(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,40}+(?![\w-])")),
    (("dop_v1_",), lazy(r"(?<![A-Za-z0-9])dop_v1_[a-f0-9]{64}(?![\w-])")),
    (("shpat_", "shpca_", "shppa_", "shpss_"), lazy(r"(?<![A-Za-z0-9])shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![\w-])")),
    (("AC",), lazy(r"(?<![\w-])AC[a-f0-9]{32}(?![\w-])")),
    (("SK",), lazy(r"(?<![\w-])SK[a-f0-9]{32}(?![\w-])")),
    (("eyJ",), lazy(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,4096}+\.eyJ[A-Za-z0-9_-]{8,8192}+\.[A-Za-z0-9_-]{8,4096}+(?![\w-])")),
]
_WORD_CHAR = lazy(r"[\w-]")
# A distinctive prefix may follow a joiner (``send_AKIA...``, ``x-ghp_...``): only a letter or digit glues it.
_ALNUM = lazy(r"[A-Za-z0-9]")

_SLACK_HOOK = lazy(
    r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"
    r"|https://(?:discord(?:app)?\.com)/api/webhooks/\d{5,25}/[A-Za-z0-9_-]{30,100}"
)
_BEARER = lazy(r"(?i)\b(?:bearer|token)\s+([A-Za-z0-9._~+/-]{20,2048}=*)")
_BASIC = lazy(r"(?i)\bbasic\s+([A-Za-z0-9+/]{12,1024}={0,2})(?![\w+/=])")
_PEM_BEGIN = lazy(r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY( BLOCK)?-----")
# key = value, "key": "value", key: value, where the key holds one of these words; the rest is
# matched from the word on.
# Matched on the lowercased text: a case-insensitive scan of every position costs ~5x more.
_KEY_WORD_RE = lazy(
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth(?!or)(?:[_-]?key)?"
    r"|credentials?|session[_-]?(?:id|key)|signing[_-]?key|salt|cookie|(?:account|shared[_-]?access|master|encryption|license|client|secret)[_-]?key"
    r"|key|pw"
)
# key = value, key: value, key := value (Go, make), key => value, <key>value</key>; and, looser,
# a value after spaces ("password s3cr3t" in .netrc, "aws_secret_access_key AbC..." on a command
# line, "the password is ..." in prose), which must then look like a secret by itself.
# The separators: =, :, :=, =>, >, and make's ?= += ::= :::=, PHP's .=, R's <-.
_SEP = r"(?::{1,3}=|[?+.]=|=>|<-|[:=>])"
_KV_SEPARATOR = lazy(r"[A-Za-z0-9_.-]{0,40}[\"']?[ \t]{0,8}" + _SEP + r"[ \t]{0,8}(?:\"|')?")
_KV_LOOSE = lazy(r"[A-Za-z0-9_-]{0,40}[\"']?(?:[ \t]{1,8}(?:is|was|of)[ \t]{1,8}|[ \t]{1,8})[\"']?")
_KV_VALUE = lazy(r"[^\s\"',;&<>{}\[\]]{4,512}")
# Of the keys whose values start inside one run of value characters ("key=key=key=..."), only
# the first few are read: each reading costs up to the run's length, so the text costs a few
# times its length, however many keys hostile text packs into a run.
_KEYS_PER_RUN = 8
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


_DIGIT = lazy(r"\d")


def secretish(key: str, value: str) -> bool:
    if no_value(value.rstrip(":")) or value.startswith("<") and value.endswith(">") or " " in value and prose(value):
        return False  # ("Password:" is a form's label)
    if passwordish(key):
        return len(value) >= 4 and not value.isalpha() or len(value) >= 8
    if len(value) < 16 or " " in value:
        return False  # a token, key or id has no space; a sentence does ('ttl.RefreshToken', 'define the ...')
    classes = (value != value.upper()) + (value != value.lower()) + (_DIGIT.search(value) is not None)
    return classes >= 2 and entropy_at_least(value, 3.0)


# Documentation's stand-ins for a token: AWS's ...EXAMPLE key ids, runs of x, X, 0 or *.
_EXAMPLE_TOKEN = lazy(r"(?i)example|x{8}|0{8}|\*{4}|\.{3}")


# Tokens published as everyone's example, by their SHA-256 (so that none sits here as written): jwt.io's
# HS256 sample ("John Doe", iat 1516239022), copied into countless tests and docs.
_PUBLISHED_TOKENS = frozenset({"7f75367e7881255134e1375e723d1dea8ad5f6a4fdb79d938df1f1754a830606"})


# Where a family's prefix sits in its token: Stripe's "_live_" follows "sk", "rk" or "pk".
_PREFIX_AT = {"_live_": 2, "_test_": 2}
# Each family's pattern with its prefixes and where they sit.
_FAMILY_PREFIXES = [(pattern, prefixes, _PREFIX_AT.get(prefixes[0], 0)) for prefixes, pattern in _TOKEN_FAMILIES]
_ANY_PREFIX = lazy(literal_union(prefix for prefixes, _ in _TOKEN_FAMILIES for prefix in prefixes))
# Failed tries of one family after which its next match is searched for instead.
_MISSES_BEFORE_SEARCH = 8


def _token_matches(text: str) -> Iterator[re.Match[str]]:
    """What each family's pattern.finditer(text) gives, but each pattern is only tried where its
    prefix is (found with str.find): every pattern opens with a lookbehind, which keeps Python's
    re from skipping ahead to its literal, so twenty whole-text scans cost more than the rest of
    dense text's detectors. A family whose prefix keeps failing (``xoxb-xoxb-...``) is then
    searched for from there on, in C: its next match says which of its places to skip."""
    if _ANY_PREFIX.search(text) is None:
        return  # most texts hold no prefix at all: one search says so, not one find per prefix
    for pattern, prefixes, offset in _FAMILY_PREFIXES:
        yield from _family_matches(text, pattern, prefixes, offset)


def _family_matches(text: str, pattern: re.Pattern[str], prefixes: tuple[str, ...], offset: int) -> Iterator[re.Match[str]]:
    places = {prefix: at for prefix in prefixes if (at := text.find(prefix)) >= 0}  # each prefix's next place
    end = misses = 0  # where the last match ended; tries that failed in a row
    ahead: re.Match[str] | None = None  # a match the search found beyond the place it started at
    while places:
        prefix = min(places, key=places.__getitem__)
        at = places[prefix]
        start = at - offset
        if start >= end:
            if ahead is not None:
                m = ahead if ahead.start() == start else None
            elif misses < _MISSES_BEFORE_SEARCH:
                m = pattern.match(text, start)
                misses = 0 if m is not None else misses + 1
            else:
                ahead = m = pattern.search(text, start)
                if m is None:
                    return
                m = m if m.start() == start else None
            if m is not None:
                end, ahead = m.end(), None
                yield m
        # This prefix's next place: none starts a match before the last one's end, or before a match found ahead.
        following = text.find(prefix, max(at + 1, end + offset, ahead.start() + offset if ahead is not None else 0))
        if following < 0:
            del places[prefix]
        else:
            places[prefix] = following


def _tokens(text: str, low: str) -> Iterator[Span]:
    for m in _token_matches(text):
        glue = _ALNUM if m.re.pattern.startswith("(?<![A-Za-z0-9])") else _WORD_CHAR
        if m.start() and glue.match(text, m.start() - 1):
            continue  # glued to a longer word
        if _EXAMPLE_TOKEN.search(text, m.start() + 3, m.end()) and not github_checksum_ok(m.group()):
            continue  # a stand-in ("ghp_xxxx..."), unless GitHub's own checksum says it is real
        if m.group().startswith("eyJ") and hashlib.sha256(m.group().encode()).hexdigest() in _PUBLISHED_TOKENS:
            continue  # a token every tutorial prints
        yield Span(m.start(), m.end(), "SECRET")


def _webhooks(text: str, low: str) -> Iterator[Span]:
    return (Span(m.start(), m.end(), "SECRET") for m in _SLACK_HOOK.finditer(text))


def _bearer_tokens(text: str, low: str) -> Iterator[Span]:
    for m in _BEARER.finditer(text):
        value = m.group(1)
        # A token mixes digits and letters; "token authentication_middleware" is prose or code.
        if _COUNTING.search(value) is not None:
            continue  # documentation's example counts (token 1234567890abcdef...); a random token never does
        if _DIGIT.search(value) is not None and value.lower() != value.upper() and entropy_at_least(value, 3.0):
            yield Span(m.start(1), m.end(1), "SECRET")


_COUNTING = lazy(r"0123456789|1234567890")


def _basic_credentials(text: str, low: str) -> Iterator[Span]:
    """``Basic <base64 of user:password>``: it must decode, and to something with a colon
    ("HTTP Basic authentication" is prose)."""
    for m in _BASIC.finditer(text):
        value = m.group(1)
        try:
            decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if b":" in decoded:
            yield Span(m.start(1), m.end(1), "SECRET")


class _Read:
    """How far _key_values has read: a secret it found ends at ``done_until``; the run of value
    characters from ``start`` to ``end`` has had ``count`` keys' values read in it."""

    __slots__ = ("count", "done_until", "end", "start")

    def __init__(self) -> None:
        self.done_until = self.start = self.end = -1
        self.count = 0


def _key_words(text: str, low: str, read: _Read) -> Iterator[tuple[int, int, int]]:
    """Each key word in ``text`` (start, end), after where its key begins: up to 40 key
    characters before it. Words that ``read`` already rules out are passed over before any
    work on them: "key=key=key=..." holds a word every four characters.
    A run of key characters is walked back once, however many key words it holds (where the
    walk starts inside a run does not change where it stops, so words passed over need none)."""
    run_start = run_end = -1
    for word in _KEY_WORD_RE.finditer(low):
        at = word.start()
        if at < read.done_until or (read.start <= at < read.end and read.count >= _KEYS_PER_RUN):
            continue  # what _key_values would pass over: its key begins before `at`, or its run is read
        if not _whole_word(text, at, word.end()):
            continue
        if at >= run_end:  # a new run: find how far back it goes (at most 40) and where it ends
            run_start = at
            while run_start > 0 and at - run_start < 40 and text[run_start - 1] in _KEY_CHARS:
                run_start -= 1
            tail = _KEY_RUN.match(text, at)
            run_end = tail.end() if tail is not None else word.end()
            if at - run_start >= 40:
                run_start = -1  # longer than 40: every key below begins at `at - 40`
        yield max(run_start, at - 40, 0), at, word.end()


_KEY_RUN = lazy(r"[A-Za-z0-9_.-]+")


def _whole_word(text: str, start: int, end: int) -> bool:
    """A key word is a word of its key (db_password, apiKey, DB_PASSWORD, passwords), not part
    of another word (bypass, author, tokenizer, cookiejar, passage)."""
    if start > 0 and text[start].islower() and text[start - 1].isalpha():
        return False
    if end < len(text) and text[end] in "sS":
        end += 1
    return end >= len(text) or not text[end].islower()


def _key_values(text: str, low: str) -> Iterator[Span]:
    read = _Read()
    for begin, word_start, word_end in _key_words(text, low, read):
        if begin < read.done_until or (read.start <= word_start < read.end and read.count >= _KEYS_PER_RUN):
            continue  # a key inside a value run already read as often as it may be
        separator = _KV_SEPARATOR.match(text, word_end)
        if separator is not None and _about_a_secret(text, word_end):
            continue  # the key says what kind of secret, not which one: jwtSecretAlgorithm, token_type, password_length
        loose = separator is None
        if loose:
            separator = _KV_LOOSE.match(text, word_end)
            if separator is None:
                continue
        at = separator.end()
        if read.start <= at < read.end:
            read.count += 1
            if read.count > _KEYS_PER_RUN:
                continue
        quoted = text[at - 1] in "\"'"
        m = _quoted_value(text, at) if quoted else None
        m = m or _KV_VALUE.match(text, at)
        if m is None:
            continue
        if not read.start <= at < read.end:
            read.start, read.end, read.count = at, m.end(), 1
        key, value = text[begin:at], m.group()
        if "\\" in value:
            value = _ESCAPED_END.sub("", value)  # a JSON string's "\\n" ends the value
        if len(value) < 4 or _where_key(key):
            continue  # too short once its escapes are off; a key that says where the secret is (token_endpoint)
        if begin >= 2 and text[begin - 2 : begin] == "${":
            continue  # a shell default inside a variable (${DB_PASSWORD:?must be set}) is no value
        if loose:  # prose: the sentence's full stop is not the secret's
            value = value.rstrip(".,;:!?)")
            if _ASSIGNMENT.match(value) is not None:
                continue  # "pass burst_capacity=1": an argument a sentence tells to pass
            if not (looks_secret(value) or _SAID.search(key) and said_password(value)):
                continue
        if word_end - word_start == 3 and low[word_start:word_end] == "key" and _DIGIT.search(unquote(value)) is None:
            continue  # a bare "key" is any key ({"key": "theme"}): its value is a secret only if token-like (%23 is no digit)
        if text.startswith("\\b", begin - 1) and _REGEX_MARK.search(value) is not None:
            continue  # a key inside a regular expression (/\bclient_secret=\w+/): what follows is the pattern
        if not quoted and value[0] == "!" and _BANG_NAME.fullmatch(value) and named(value.lstrip("!")):
            continue  # a YAML tag (password: !vault |) or a negation in code (!!passThrough)
        if value[0] in "(@" or "{" in value and "}" in value:
            continue  # a call's arguments, a host after userinfo, a template's field (user:{user_id})
        if len(value) == 36 and _UUID.fullmatch(value) and _ID_KEY.search(key):
            continue  # a credential's id (credential_id, key_id) names it; it is not the secret
        if not quoted and _DESCRIBED.match(text, m.end()) is not None and _DESCRIBED_KEY.search(key) is not None:
            continue  # a docstring's "client_secret: Auth0 application client secret" describes the key
        if quoted and _SAID.search(key) is None and _SECRET_WORD.search(key) is None and named(value.lstrip("?:#@")):
            continue  # a cookie's, salt's or credential's name ("lookupCookie": "language"), not its value
        if not secretish(key, value) or not_a_secret(key, value):
            continue
        if not quoted and code(key, value) and not (passwordish(key) and passphrase(value)):
            continue  # code's name, call or attribute (password = self.password), but for a passphrase
        read.done_until = m.start() + len(value)
        yield Span(m.start(), m.start() + len(value), "SECRET")


# The words after which a sentence gives a password itself ("the DB password is ..."); a bare
# "pass" is a verb too ("pass targets=...").
_SAID = lazy(r"(?i)pass(?:word|wd|phrase)|pwd")
# A key that goes on, after its key word, with a word saying what it tells about the secret.
_ABOUT_A_SECRET = lazy(
    r"(?i)[_.-]?(?:algorithm|alg|type|kind|length|len|format|mode|policy|prefix|header|field|name|path|file|url|uri|ttl"
    r"|regexp?|regex|re|pattern|matcher"
    r"|expiry|expires(?:_?(?:at|in))?|lifetime|count|size|version|scheme|location|env|var|hint|label|arg|endpoint"
    r"|sha\d*|md5|hash|digest|checksum|fingerprint)"
    r"(?-i:(?![a-z]))"
)


def _about_a_secret(text: str, at: int) -> bool:
    """_ABOUT_A_SECRET at ``at``, which needs a letter there or after one joiner: most keys go on
    with a separator or a digit, and are told apart without the pattern's case-folded words."""
    head = text[at : at + 2]
    if not head or not (head[0].isalpha() or head[0] in "_.-" and head[1:].isalpha()):
        return False
    return _ABOUT_A_SECRET.match(text, at) is not None


_SECRET_WORD = lazy(r"(?i)secret")
# JSON's escapes at a value's end: "hunter22\\n" holds the password hunter22.
_ESCAPED_END = lazy(r"(?:\\u[0-9A-Fa-f]{4}|\\[nrt])+$")
# A key whose last word says where a secret is kept or asked for, not what it is: a URL, an
# endpoint, a link (SECRET_STORAGE_DOCS_URL, upstream_token_endpoint, tokenUrl).
_WHERE_KEY = lazy(r"(?:[_.-]|(?<=[a-z])(?=[A-Z]))(?i:url|uri|endpoint|href|link)[\"']?[ \t]*\S{1,3}[ \t]*[\"']?$")
_WHERE_WORD = lazy(r"ur[li]|endpoint|href|link")  # its words, on an ASCII key's lowercase form


def _where_key(key: str) -> bool:
    if key.isascii() and _WHERE_WORD.search(key.lower()) is None:
        return False  # none of its words: the search for where one ends the key is not needed
    return _WHERE_KEY.search(key) is not None
_ASSIGNMENT = lazy(r"[A-Za-z_][\w.-]*=")
_REGEX_MARK = lazy(r"\\[wdsSWD]|[\[(|+*?]")
# After a value, the rest of a sentence (two words on): the line describes the key, as a
# docstring's argument list does, where a configuration line ends at its value. Bounded (26
# characters at most): the pre-pass's zones hold 64 past a value, and must see what the whole text shows.
_DESCRIBED = lazy(r"[ \t]{1,4}[a-z]{2,16}[ \t]{1,4}[a-z]{2}")
_DESCRIBED_KEY = lazy(r":[ \t]*$")
_BANG_NAME = lazy(r"!{1,2}[A-Za-z_][\w.]*")
# A quoted value runs to its closing quote: a Django SECRET_KEY holds & ^ % * $ +.
_KV_QUOTED = lazy(r"[^\s\"'\\]{4,512}")
# The start of a value in the key-values hints: a quoted one (_KV_QUOTED) or a bare one (_KV_VALUE).
_HINT_VALUE = r"(?:[\"'][^\s\"'\\]{{{n}}}|[^\s\"',;&<>{{}}\[\]]{{{n}}})"
_ID_KEY = lazy(r"(?i)(?:[_-]id|[a-z]Id|ID)[\"']?[ \t]*[:=]")
_UUID = lazy(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _quoted_value(text: str, at: int) -> re.Match[str] | None:
    m = _KV_QUOTED.match(text, at)
    if m is None or m.end() >= len(text) or text[m.end()] != text[at - 1]:
        return None
    return m


_SECRET_KEY = lazy(
    r"(?i)pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth(?!or)(?:[_-]?key)?"
    r"|credentials?|session[_-]?(?:id|key)|signing[_-]?key|salt|cookie|(?:account|shared[_-]?access|master|encryption|license|client)[_-]?key"
)


# A key whose few digits are a secret: a card's security code, a PIN, a one-time code.
_CODE_KEY = lazy(
    r"(?i)(?:(?:card|atm|debit|sim|security|verification|access|one_?time|mfa|2fa|sms)_?)?"
    r"(?:pin|cvv2?|cvc2?|cid|otp|passcode|security_?code|pin_?code|verification_?code)"
)


def secret_for_key(key: str, value: str) -> bool:
    """Whether ``value``, stored under ``key`` (a JSON key, an env name), is a secret."""
    if 3 <= len(value) <= 12 and value.isdigit() and value.isascii() and _CODE_KEY.fullmatch(key.replace("-", "_")):
        return True
    by_key = _SECRET_KEY.search(key) is not None or pw_key(key)
    if not by_key:
        return False
    if _named_secret(key, value.strip()):
        return True
    return 4 <= len(value) <= 4096 and " " not in value.strip() and secretish(key, value)


# The last word of a key that names exactly one secret: any value under it is that secret, whatever
# it looks like (a value under a key that merely holds such a word must also look like one).
_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pw", "passphrase"})
_SECRET_WORDS = frozenset({
    "token", "apikey", "secret", "jwt", "bearer", "credential", "credentials", "cred", "creds", "auth", "sessionid",
    "secretkey", "privatekey", "accesskey", "clientsecret",
})
_JOINED = {("api", "key"): "apikey", ("session", "id"): "sessionid", ("secret", "key"): "secretkey",
           ("private", "key"): "privatekey", ("access", "key"): "accesskey", ("client", "secret"): "clientsecret"}


def _last_word(key: str) -> str:
    """A key's last word, lowercased, two-word names joined (x-api-key: apikey; sessionId: sessionid)."""
    words = _KEY_WORD.findall(key[-64:])
    if not words:
        return ""
    last = words[-1].lower()
    if len(words) >= 2:
        return _JOINED.get((words[-2].lower(), last), last)
    return last


# Keys under which a whole object or list is secrets ({"secrets": {"db": ...}}, {"api_keys": [...]},
# {"password": {"current": ...}}), and the keys inside one that describe, not hold (a schema's).
_SECRET_TREE_WORDS = _PASSWORD_WORDS | _SECRET_WORDS | {
    "passwords", "secrets", "tokens", "apikeys", "passphrases", "secretkeys", "privatekeys", "accesskeys", "keys",
}
_DESCRIBING_KEYS = frozenset({
    "type", "description", "title", "format", "pattern", "enum", "default", "examples", "example", "$ref", "$schema",
    "required", "minLength", "maxLength", "name", "kind", "id", "created", "created_at", "updated_at", "expires_at",
    "expires", "expiry", "expires_in", "scope", "scopes", "status", "algorithm", "alg", "token_type", "url", "uri",
})


def secret_tree_key(key: str) -> bool:
    """Whether an object or list under ``key`` holds secrets in every value (``secrets``, ``tokens``,
    ``api_keys``, ``password``): a bare "keys" only with another word (``ssh_keys``, not ``keys``)."""
    last = _last_word(key)
    if last == "keys":
        return len(_KEY_WORD.findall(key[-64:])) >= 2 and _last_word(key[:-4].rstrip("_-. ")) in ("api", "ssh", "secret")
    if last not in _SECRET_TREE_WORDS or not _NOT_NUMBER_SECRET_WORDS.isdisjoint(w.lower() for w in _KEY_WORD.findall(key)):
        return False  # max_tokens, token_count: counts
    return _SECRET_KEY.search(key) is not None or pw_key(key) or last == "jwt"


def secret_in_tree(tree_key: str, key: str, value: str) -> bool:
    """Whether ``value``, under ``key`` inside a tree of secrets under ``tree_key``, is one of its
    secrets, not what describes one (its type, name, dates). Under a tree of tokens or keys a
    value also holds a letter and a digit: a tokenizer's {"tokens": ["tokenization"]} is words."""
    if key in _DESCRIBING_KEYS:
        return False
    value = value.strip()
    if not _one_word(value) or _stands_for_none(value):
        return False
    return passwordish(tree_key) or _DIGIT.search(value) is not None and any(c.isalpha() for c in value)


def _one_word(value: str) -> bool:
    """Eight characters to 4 KB with no white space: a token's, a key's shape."""
    return 8 <= len(value) <= 4096 and not any(c.isspace() for c in value)


def _stands_for_none(value: str) -> bool:
    """A placeholder, a variable, a schema's type, or documentation's example token."""
    return no_value(value) or _EXAMPLE_TOKEN.search(value) is not None


def _named_secret(key: str, value: str) -> bool:
    """Whether ``value`` is the secret its key names by its last word (``api_key``, ``x-api-key``,
    ``access_token``, ``password``): then it need not look like a token ("Tr0ub4dor&84", "1686019379",
    a passphrase with spaces), but not a stand-in for one (``<YOUR_TOKEN>``, ``${TOKEN}``, ``xxxxxxxx``)."""
    last = _last_word(key)
    if last in _PASSWORD_WORDS:
        fits = 4 <= len(value) <= 256 and "\n" not in value  # a passphrase may hold spaces
    else:
        fits = last in _SECRET_WORDS and _one_word(value)
    return fits and not _stands_for_none(value) and not not_a_secret(key, value)


# A key whose last word names one secret (a token, a password), not a count of them (max_tokens,
# token_count) nor a pager's place (next_page_token): a number under it is the secret, as a
# one-time token or a numeric password is.
_NUMBER_SECRET_WORDS = _PASSWORD_WORDS | {"token", "passcode", "secret", "apikey"}
_NOT_NUMBER_SECRET_WORDS = frozenset({"page", "cursor", "next", "continuation", "sync", "resume", "count", "max", "min"})
_KEY_WORD = lazy(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def number_secret_for_key(key: str, number: int) -> bool:
    """Whether an integer of four digits or more under ``key`` is a secret by its key
    (``{"token": 84213377}``, ``{"db_pw": 20240917}``)."""
    if not 0 < len(key) <= 64 or len(str(abs(number))) < 4:
        return False
    words = {word.lower() for word in _KEY_WORD.findall(key)}
    return _last_word(key) in _NUMBER_SECRET_WORDS and _NOT_NUMBER_SECRET_WORDS.isdisjoint(words)


# A key's body: after line breaks (or JSON's escaped ones) and any "Name: value" header lines,
# base64.
_PEM_BODY = lazy(r"(?:\s|\\[rn]){1,8}(?:[A-Za-z-]{1,20}: [^\n\\]{1,200}(?:\s|\\[rn]){1,8}){0,4}[A-Za-z0-9+/]{16}")


def _pem_blocks(text: str) -> Iterator[Span]:
    """A block runs from its BEGIN line to its END line (at most 16 KB on), or 4 KB without one.
    Where an END line was looked for and is missing, it is not looked for there again: text
    of nothing but BEGIN lines costs one pass, not 16 KB per line."""
    missing_until: dict[str, int] = {}  # end marker -> how far it is known to be absent
    for m in _PEM_BEGIN.finditer(text):
        if _PEM_BODY.match(text, m.end()) is None:
            continue  # the marker as a constant in code or prose, not a key
        end_marker = f"-----END {m.group(1)}PRIVATE KEY{m.group(2) or ''}-----"
        limit = m.end() + 16384
        searched = missing_until.get(end_marker, -1)
        end = -1
        if searched < limit:
            end = text.find(end_marker, max(m.end(), searched - len(end_marker) + 1), limit)
            if end < 0:
                missing_until[end_marker] = min(limit, len(text))
        stop = end + len(end_marker) if end >= 0 else min(len(text), m.end() + 4096)
        if text.startswith("\\n", stop) and text.startswith(('"', "'"), stop + 2):
            stop += 2  # a key in a JSON string (a service-account file) ends with its escaped newline
        yield Span(m.start(), stop, "SECRET")


# A container's environment in a manifest: the value under a name that says it is a secret.
_ENV_ENTRY = lazy(
    r"name:[ \t]*[\"']?([A-Za-z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)"
    r"[A-Za-z0-9_]*)[\"']?[ \t]*\r?\n[ \t]*value:[ \t]*[\"']?([^\s\"']{4,512})"
)


def _env_entries(text: str, low: str) -> Iterator[Span]:
    for m in _ENV_ENTRY.finditer(text):
        if not no_value(m.group(2)) and not not_a_secret(m.group(1), m.group(2)):
            yield Span(m.start(2), m.end(2), "SECRET")


_SECRET = frozenset({"SECRET"})
register(
    Detector(
        "token-formats", _SECRET, tuple(Hint(p.pattern) for _, p in _TOKEN_FAMILIES), find=_tokens,
        examples=("id " + "AK" + "IA" + "Q7Z3" * 4, "GITHUB_TOKEN=" + "gh" + "p_" + "16C7e42F292c6912E7710c838347Ae178B4a"),
        not_flagged=(
            "task-1234 sk-short ghp_short", "AC" + "g" * 32, "AK" + "IA" + "IOSFODNN7EXAMPLE",
            "gh" + "p_" + "x" * 36, "xo" + "xb-" + "x" * 30, "sk-" + "proj-" + "X" * 40,
        ),
    ),
    Detector(
        "webhook-urls", _SECRET, (Hint(r"hooks.slack.com/services/", back=16, fwd=128), Hint(r"/api/webhooks/", back=32, fwd=160)),
        find=_webhooks, when=lambda text, low: "hooks.slack.com" in text or "/api/webhooks/" in text,
    ),
    Detector(
        "private-keys", _SECRET, (Hint(r"PRIVATE KEY", back=64, fwd=16_384 + 128),),
        find=lambda text, low: _pem_blocks(text), when=lambda text, low: "PRIVATE KEY" in text,
        examples=(
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
            '{"key": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMx\\n-----END RSA PRIVATE KEY-----"}',
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n"
            "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMx\n-----END RSA PRIVATE KEY-----",
        ),
        not_flagged=(
            '_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"',
            "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
            "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----",
        ),
    ),
    Detector(
        "bearer-tokens", _SECRET, (Hint(_BEARER.pattern, som=True),), find=_bearer_tokens,
        when=lambda text, low: "bearer" in low or "token " in low,
        context_keys=("authorization: bearer", "token"),
    ),
    Detector(
        "basic-credentials", _SECRET, (Hint(_BASIC.pattern, som=True),), find=_basic_credentials,
        when=lambda text, low: "basic " in low,
        context_keys=("authorization: basic",),
        examples=("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",),
        not_flagged=("uses HTTP Basic authentication.",),
    ),
    Detector(
        "env-entries", _SECRET, (Hint(_ENV_ENTRY.pattern),), find=_env_entries, when=lambda text, low: "value:" in text,
        context_keys=("name: *_PASSWORD", "name: *_KEY", "name: *_TOKEN", "name: *_SECRET"),
        examples=("        - name: DB_PASSWORD\n          value: hunter2hunter",),
        not_flagged=("        - name: DB_PASSWORD\n          value: ${DB_PASSWORD}", "- name: LOG_LEVEL\n  value: debug99"),
    ),
    Detector(
        "key-values", _SECRET,
        (
            # The words of _KEY_WORD_RE, a key of up to 40 more characters, a separator, then a
            # value as long as _secretish could call secret for that kind of key; or, with spaces
            # only between (_KV_LOOSE), a value of eight characters or more.
            Hint(
                r"(?i)(?:pass|pw|secret|private|credential|signing|cookie|salt)[A-Za-z0-9_.-]{0,40}[\"']?[ \t]{0,8}"
                r"(?::{1,3}=|[?+.]=|=>|<-|[:=>])[ \t]{0,8}" + _HINT_VALUE.format(n=4),
                back=200, fwd=520,
            ),
            Hint(
                r"(?i)(?:token|key|auth|session)[A-Za-z0-9_.-]{0,40}[\"']?[ \t]{0,8}(?::{1,3}=|[?+.]=|=>|<-|[:=>])[ \t]{0,8}"
                + _HINT_VALUE.format(n=16),
                back=200, fwd=520,
            ),
            Hint(
                r"(?i)(?:pass|pw|secret|private|credential|signing|cookie|salt|token|key|auth|session)[A-Za-z0-9_.-]{0,40}"
                r"[\"']?[ \t]{1,8}(?:(?:is|was|of)[ \t]{1,8})?" + _HINT_VALUE.format(n=4),
                back=200, fwd=520,
            ),
        ),
        find=_key_values,
        context_keys=("password", "secret", "token", "api_key", "access_key", "private_key", "credentials", "cookie"),
        examples=(
            '{"password": "hunter22"}', "client_secret: 8f14e45fceea167a5a36dedd4bea2543",
            "the staging DB password is Zx9Qv!L2mT8", "machine api.example.com login bob password s3cr3tPa55",
            "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYzK3Y9",
            "<secret>Zx9QvL2mT8rP4kW7</secret>", "DB_PASS := Zx9QvL2mT8rP", "[DEBUG] Using Key=Zx9QvL2mT8rP4kW7nB3c",
            "Connect-AzAccount -ClientSecret 'Zx9Qv~L2mT8rP4kW7nB3c'", "DB_PW=t4lkT0me", "mysql -u app --pw Zx9QvL2m!",
        ),
        not_flagged=(
            "password_min_length=12 token_count=5000", "password: ******** api_key: ${API_KEY}",
            "username, password = request.url.username, request.url.password",
            "password = to_bytes(password)", "token = b64encode(userpass).decode()", "cookies: CookieTypes | None = None",
            "self.session_cookie = session_cookie", "session_cookie=self.session_cookie", "username = kwargs.pop('u')",
            "allow_credentials = allow_credentials", "CookiesType: TypeAlias = RequestsCookieJar",
            ":param cookies: (optional) Dictionary", "password = os.environ['DB_PASSWORD']",
            "token = os.getenv('TOKEN')", "secret = settings.SECRET_KEY",
            "the password is required", "1 pass is sufficient.", "if pass_arg is _PassArg.environment:",
            "multiple cookies existed.", '{"key": "theme_dark"}', 'META_KEY = "io.example.protocol/subscriptionId"',
            "stepwise=t4lkT0me", "PWM_CHANNEL=t4lkT0me2", "pw = self.pw",
        ),
    ),
)
