"""What a value under a key word is: code (a name, a call, an attribute chain), a placeholder,
a path, or something that looks like a secret by itself. Shared by the secret detectors."""

from __future__ import annotations

import math
import re

from ..patterns import lazy

__all__ = [
    "code", "entropy", "entropy_at_least", "looks_secret", "named", "no_value", "not_a_secret", "passphrase", "passwordish",
    "prose", "pw_key", "said_password", "stand_in",
]

_DIGIT = lazy(r"\d")

_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 4097)]  # values are at most 4096 long


def entropy(value: str) -> float:
    """Shannon entropy in bits per character, from a table: it runs on every candidate value.
    Each distinct character is counted by str.count (fsum's sum is exact, whatever the order)."""
    value = value[:4096]
    n = len(value)
    if not n:
        return 0.0
    return math.log2(n) - math.fsum(map(_C_LOG_C.__getitem__, map(value.count, set(value)))) / n


# Far wider than the float error of entropy() (~1e-15), far narrower than any gap the bounds leave.
_BOUND_MARGIN = 1e-9


def entropy_at_least(value: str, bits: float) -> bool:
    """``entropy(value) >= bits``, told where it can be from the number of distinct characters
    alone, without counting each: ``k`` of them give at most log2(k) bits a character, and at
    least what one character repeated ``n - k + 1`` times and the others once give."""
    value = value[:4096]
    n = len(value)
    if not n:
        return bits <= 0.0
    k = len(set(value))
    if math.log2(k) < bits - _BOUND_MARGIN:
        return False
    if math.log2(n) - _C_LOG_C[n - k + 1] / n > bits + _BOUND_MARGIN:
        return True
    return entropy(value) >= bits


_PASSWORDISH_WORDS = r"pass|pwd|secret|private|credential|signing|cookie|salt"
_PASSWORDISH = lazy("(?i)" + _PASSWORDISH_WORDS)
# On an ASCII key's lowercase form, the same words without (?i): Python's re cannot skip ahead to a
# case-insensitive alternation's letters, and tries each at every position (a key is ASCII but for
# a key word the lowercasing folded, ſ for s).
_PASSWORDISH_LOW = lazy(_PASSWORDISH_WORDS)


# "pw" as a word of its own (pw, db_pw, userPw, DB_PW): too short to look for inside other words
# (stepwise, PWM, upward).
_PW_WORD = lazy(r"(?<![A-Za-z])pw(?![a-z])|(?<![A-Z])Pw(?![a-z])|(?<![A-Z])PW(?![A-Za-z])")


def pw_key(key: str) -> bool:
    """Whether ``key`` names a password by the abbreviation "pw" (``pw``, ``db_pw``, ``userPw``)."""
    return ("pw" in key or "Pw" in key or "PW" in key) and _PW_WORD.search(key) is not None


def passwordish(key: str) -> bool:
    """Whether ``key`` names a password-like secret (a password, a private key, a cookie, a salt)."""
    found = _PASSWORDISH_LOW.search(key.lower()) if key.isascii() else _PASSWORDISH.search(key)
    return found is not None or pw_key(key)


# Values that stand for none: a placeholder, a schema's type, a template or variable, a form's label.
_NOT_A_VALUE = lazy(
    r"(?i)^(?:\*+|x{3,}|\.{3,}|null|none|nil|true|false|yes|no|undefined|redacted|changeme|example"
    r"|(?:string|number|boolean|bool|int|integer|float|double|binary|bytes|object|array|any)(?:\[\])?\??"  # a schema's types
    r"|required|optional|password|secret|token|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|%[A-Z_]+%|<[^>]*>|\{\{[^}]*\}\}"
    r"|%\([^)]*\)[sdr])$"
)


# What a match of _NOT_A_VALUE starts with, lowercased (its words, x, *, ., $, %, <, {).
_NOT_A_VALUE_FIRST = frozenset("*x.ntfyurcesbidoap$%<{")


def no_value(value: str) -> bool:
    """Whether ``value`` stands for none (null, a schema's type, a template): _NOT_A_VALUE, tried
    only where the first character can begin a match (a non-ASCII one may be a folded letter, ſ for s)."""
    first = value[:1]
    if first.lower() not in _NOT_A_VALUE_FIRST and first.isascii():
        return False
    return _NOT_A_VALUE.match(value) is not None


# What code writes, unquoted, on the right of `password =` or `token:`: a name, an attribute
# chain, a call, a subscript, a type. A quoted value is a literal (and may be a secret); so is
# an unquoted one under an ENV_STYLE key (.env files, shell), unless it is a call or attribute.
# JavaScript's names may hold "$" (a bundler's isPlainObject$1) and a class's own fields start
# with "#" (this.#res); after a name's opening bracket, whatever follows is the call's.
_NAME = r"#?[A-Za-z_$][A-Za-z0-9_$]*"
_CALL_OR_ATTRIBUTE = lazy(rf"!*\(?{_NAME}(?:\.{_NAME})*[(\[)].*|!*\(?{_NAME}(?:\.{_NAME})+\)*|!+\(*{_NAME}\)*")
# Each of its branches holds one of these: a value with none is no call or attribute chain.
_CALL_MARK = lazy(r"[(\[).!]")
_IDENTIFIER = lazy(r"_*[A-Za-z][A-Za-z0-9_-]*\)*")
_PART_SEPARATORS = lazy(r"[_-]+")
# The words of a name in snake_case, camelCase or CamelCase (an acronym is one word): a name's
# words have three letters or more; random letters ("KRioWNWAlPT") do not split like that.
_NAME_WORD = lazy(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Two of those words made of digits: each maximal run of digits is one of them (the letters'
# words never take a digit), so one search tells what counting the words would.
_TWO_NUMBERS = lazy(r"\d\D+\d")


_CONSONANT_RUN = lazy(r"[b-df-hj-np-tv-xz]{5,}|^[b-df-hj-np-tv-xz]{4}")


def _pronounceable(word: str) -> bool:
    """A word of a name has vowels and no long run of consonants (ctx, cls and msg are short
    enough to need none); random letters seldom do both."""
    if len(word) >= 5 and not any(c in "aeiou" for c in word):
        return False
    if len(word) == 4 and not any(c in "aeiouy" for c in word):
        return False
    return _CONSONANT_RUN.search(word) is None


# Short words that names are made of (lastEventId, toJson, isOk); random letters are seldom these.
_SHORT_WORDS = frozenset(
    {"id", "io", "ui", "db", "os", "at", "by", "to", "of", "in", "on", "is", "or", "no", "ok", "ip", "do", "up", "as"}
)


_HUNGARIAN = lazy(r"^[a-z](?=[A-Z][a-z]{2})")
# A word and an acronym after it (toJSON, isURL, noVSCHAR): more capitals than a camel-case name has.
_ACRONYM_AFTER = lazy(r"([a-z]{2,8})[A-Z]{2,8}")


def _word_then_acronym(part: str) -> bool:
    m = _ACRONYM_AFTER.fullmatch(part) if "a" <= part[:1] <= "z" else None
    if m is None:
        return False
    word = m.group(1)
    return word in _SHORT_WORDS or len(word) >= 3 and _pronounceable(word) and any(c in "aeiouy" for c in word)
# What a bundler appends to a name it renamed to keep apart from another (ProgressTokenSchema$1).
_BUNDLER_SUFFIX = lazy(r"\$\d{1,3}$")


def named(value: str) -> bool:
    """Whether ``value`` is a name: parts split by "_" or "-", each lowercase (any length) or
    in camel case whose words with lowercase letters have three or more (OAuthProvider,
    DHPrivateKey, Ed25519PrivateKey); random letters (KRioWNWAlPT) have shorter ones."""
    if "$" in value:
        value = _BUNDLER_SUFFIX.sub("", value)
    if _IDENTIFIER.fullmatch(value) is None:
        return False
    if "a" <= value[:1] <= "z":
        value = _HUNGARIAN.sub("", value)  # kEnumerableProperty, mState: a one-letter kind before the name
    if "_" in value or "-" in value:
        parts = [p for p in _PART_SEPARATORS.split(value.rstrip(")")) if p]
    else:  # one part: the split's work is not needed (a random token has no separator)
        whole = value.rstrip(")")
        parts = [whole] if whole else []
    if not parts:
        return False
    for part in parts:
        if part.islower() and part.isalpha():
            continue
        if _word_then_acronym(part):
            continue
        if _TWO_NUMBERS.search(part) is not None:
            return False  # two runs of digits, two of the words below: no name has them, a random token does
        words = _NAME_WORD.findall(part)
        letters = [c for c in part if c.isalpha()]
        if not part.isupper() and sum(c.isupper() for c in letters) * 2 > len(letters):
            return False  # CamelCase has a capital per word, not one letter in two
        for i, w in enumerate(words):
            short = not w.isupper() and not w.isdigit() and len(w) < 3 and w.lower() not in _SHORT_WORDS
            if short and not (i == 0 and w.istitle() and len(words) > 1 and words[1].isdigit()):  # Ed25519
                return False
            if not w.isupper() and not w.isdigit() and not _pronounceable(w.lower()):
                return False
            if not w.isupper() and not w.isdigit() and not any(c in "aeiouy" for c in w.lower()):
                return False  # in camel case every word has a vowel (Lkt, csk are no words)
            if i and w[0].islower() and not words[i - 1].isdigit():
                return False  # only the first word of camelCase starts in lowercase (zoxdYFwqi), or goes on after a digit (openid4vci)
            if len(w) == 1 and w.isupper() and 0 < i < len(words) - 1 and not words[i + 1].istitle():
                return False  # a lone capital inside a name (LWQAquwbeG8), but for OAuth's O
    return not (len(parts) == 1 and any(c.isdigit() for c in value) and sum(c.isupper() for c in value) < 2)
# An environment variable's name as .env files, shells and compose files write it: the whole key,
# with no space before "=" (code's `PRIVATE_KEY_CLS = RSAPrivateKey` and `OptionType.COOKIE:` are names).
_ENV_KEY = lazy(r"[\"']?[A-Z][A-Z0-9_]*[\"']?(?:=|[ \t]*:)")


# Operators only code writes inside a value: a || b, a && b, a?.b, (x) => y, process.env.X.
_OPERATORS = lazy(r"\|\||&&|\?\.|=>|process\.env\.")


# A literal code writes that no password is: a hex constant (0x02), a number closing a call (255)),
# an ABNF rule (%x21, *cookie-octet).
_CODE_LITERAL = lazy(
    r"0x[0-9A-Fa-f]{1,16}[),;\]]*|\d{1,12}[)\]]+[),;]*|%x[0-9A-Fa-f]{1,8}(?:-[0-9A-Fa-f]{1,8})?|\d{1,3}(?:_\d{3}){1,4}[),;]*"
)


def _code_literal(value: str) -> bool:
    """_CODE_LITERAL, whose every branch starts with a digit or a "%"."""
    return (value[:1] == "%" or value[:1].isdigit()) and _CODE_LITERAL.fullmatch(value) is not None


# A type union of TypeScript's (httpCredentials: null|{...}): types, not a literal.
_TYPE_UNION = lazy(r"(?:(?:null|undefined|string|number|boolean|object|any|unknown|never|void)\|){1,4}")


def code(key: str, value: str) -> bool:
    if _OPERATORS.search(value) is not None or _code_literal(value):
        return True
    if value[0] in "*=" and (len(value) == 1 or named(value[1:]) or value[1] in ".="):
        return True  # ABNF's *rule, a comparison's = or >=.8
    if _CALL_MARK.search(value) is not None and _CALL_OR_ATTRIBUTE.fullmatch(value.removesuffix(":")) \
            or "|" in value and _TYPE_UNION.fullmatch(value):
        return True  # (a Python block's colon after a comparison: "if size > self.max_size:")
    return _ENV_KEY.match(key) is None and named(value)


def looks_secret(value: str) -> bool:
    """A value with no separator before it must look like a secret by itself: eight or more
    characters mixing letters and digits, and no name ("password reset", "1 pass is enough")."""
    if len(value) < 8 or not any(c.isalpha() for c in value) or _DIGIT.search(value) is None or named(value):
        return False
    return entropy_at_least(value, 2.5)


# Words joined by hyphens, as diceware-style generators write them ("copper-orbit-quartz-7"):
# code has no hyphen in a name, so under a password key this is a literal.
_PASSPHRASE = lazy(
    r"[A-Za-z]{3,12}(?:[-.][A-Za-z]{3,12}){1,7}(?:[-.]?\d{1,4})?[!#$%&*?@^~]?|[A-Za-z]{3,12}(?:-[A-Za-z]{3,12}){2,7}"
)


def passphrase(value: str) -> bool:
    return _PASSPHRASE.fullmatch(value) is not None and ("-" in value or "." in value)


# Words a sentence holds and a passphrase's random words seldom do (two of them in five words or more).
_FUNCTION_WORDS = frozenset(
    {"the", "a", "an", "and", "or", "for", "to", "of", "in", "on", "with", "is", "are", "be", "this", "that", "from", "by",
     "as", "if", "when", "not", "it", "its", "one", "more"}
)


def prose(value: str) -> bool:
    """A sentence ("issue and return one or more credentials for a request"), not a passphrase:
    five words or more, two of them words that sentences are made of."""
    words = value.split()
    return len(words) >= 5 and sum(w.lower() in _FUNCTION_WORDS for w in words) >= 2


_SYMBOL = lazy(r"[!#$%&*?@^~]")


_CODE_MARK = lazy(r"[=()\[\]{}<>,;`]")


def said_password(value: str) -> bool:
    """What a sentence gives as a password ("the DB password is ..."): a passphrase, or eight
    characters or more with a digit or a symbol that is not a name."""
    if passphrase(value) and (any(c.isdigit() for c in value) or value.count("-") >= 2):
        return True
    if len(value) < 8 or not any(c.isalpha() for c in value) or named(value) or _CODE_MARK.search(value):
        return False
    return _DIGIT.search(value) is not None or _SYMBOL.search(value) is not None


_LETTERS = lazy(r"[^a-z0-9]")
# Words a placeholder is made of, or another credential field's name ("username" in options).
_PLACEHOLDER_WORDS = ("secret", "password", "passwd", "token", "apikey", "api_key", "api-key", "changeit", "username")
_PLACEHOLDER_WORD = lazy("|".join(map(re.escape, _PLACEHOLDER_WORDS)))  # one search for any of them
_PLACEHOLDER = lazy(r":?[A-Za-z0-9_.-]+")  # ":password" is a bind parameter's name
# A stand-in's word with a number or none ("value1", "hidden2", "key_1234"): a fixture's value, not a credential.
_STAND_IN = lazy(r"(?i)(?:value|hidden|dummy|fake|sample|placeholder|mock|key)[_-]?\d{0,4}")
_STAND_IN_LONGEST = len("placeholder") + 1 + 4


def stand_in(value: str) -> bool:
    return len(value) <= _STAND_IN_LONGEST and _STAND_IN.fullmatch(value) is not None


# A character class with a range and a quantifier ("[A-Za-z0-9._~+/-]+"): a pattern for tokens, not one.
_CHAR_CLASS = lazy(r"\[\^?[^\]\s]{0,24}(?:a-z|A-Z|0-9)[^\]\s]{0,24}\][+*?{]")
# A link to a document page, relative or rooted ("/api/Cookies.html#cookie"): a name, not a credential.
_DOC_LINK = lazy(r"(?i)\.{0,2}/?(?:[\w.-]{1,64}/){0,8}[\w-]{1,64}\.(?:html?|md|mdx|rst|txt)(?:#[\w.-]{0,64})?")
_PATH = lazy(r"[~.]?/[\w./-]*")
_NAME_JOINS = lazy(r"[./:]")
_MASKED_ALREADY = lazy(r"[*xX•#]+(?:[/.:_ -]+[*xX•#]+)*")
_MASK_CHARS = frozenset("*xX•#")  # what _MASKED_ALREADY's value starts with


def _joined(value: str) -> bool:
    """Whether _NAME_JOINS has anything to split ``value`` at."""
    return "." in value or "/" in value or ":" in value


_REPEATED = lazy(r"(.)\1{7}")
_EMPHASIS = lazy(r"\*{1,2}\(?[a-z]+\)?\*{1,2}")
_VERSION = lazy(r"[\^~<>=v]{0,2}\d{1,6}(?:\.\d{1,6}){1,3}(?:[-+][\w.]{1,40})?")


def not_a_secret(key: str, value: str) -> bool:
    """Values that say what they are, quoted or not: the key's own name again (a constant's
    spelling, ``session_cookie = session_cookie``), a placeholder that names the secret it
    stands for ("my-client-secret", "your_api_key"), a path (PWD='/tmp')."""
    low, key_low = value.lower(), key.lower()
    plain = value.isascii() and value.isalnum()  # letters and digits: nothing for _LETTERS to drop, _PLACEHOLDER's shape
    spelled = low if plain else _LETTERS.sub("", low)
    if 4 <= len(spelled) <= len(key_low) and _LETTERS.sub("", key_low).endswith(spelled):  # (longer: no suffix of it)
        return True
    if (plain or _PLACEHOLDER.fullmatch(value)) and _PLACEHOLDER_WORD.search(low) and sum(c.isdigit() for c in value) <= 4:
        return True
    if value[:1] in _MASK_CHARS and _MASKED_ALREADY.fullmatch(value) or stand_in(value):  # "****/**/**", "xxxx-xxxx", "value1"
        return True
    if "[" in value and _CHAR_CLASS.search(value) or "." in value and _DOC_LINK.fullmatch(value):
        return True
    if "`" in value or "*" in value and _EMPHASIS.fullmatch(value):  # markup: `code`, :class:`Name`, *(optional)*
        return True
    if "://" in value and "@" not in value:
        return True  # a URL without userinfo: the URL detector reads it (and a key in its path or query)
    if "EXAMPLE" in value or "..." in value or not (value.isalnum() or any(c.isalnum() for c in value)) \
            or _REPEATED.search(value):
        return True  # documentation's stand-ins (AWS's ...EXAMPLEKEY, sk_test_..., ghp_...00000000), "***)"
    if "." in value and _VERSION.fullmatch(value):
        return True  # a dependency's version range ("cookie": "^0.7.1" in a lock file)
    parts = _NAME_JOINS.split(value) if _joined(value) else [value]
    if len(parts) > 1 and all(named(p) for p in parts):  # "context.eval_ctx", "io.example/subscriptionId"
        return True
    return "/" in value and _PATH.fullmatch(value) is not None and value.lower() == value  # paths are lowercase; base64 is not


