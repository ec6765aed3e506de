"""Secrets that their context names, where no ``key = value`` pair stands: command-line flags
(``mysql -p'...'``, ``docker login -p ...``, ``curl -u user:pass``, ``--password=...``,
PowerShell's ``-ClientSecret '...'`` and ``ConvertTo-SecureString "..."``), SQL that sets a
password (``IDENTIFIED BY '...'``, ``WITH PASSWORD '...'``), Redis ``AUTH``, a call whose first
argument names a secret (PHP's ``define('DB_PASSWORD', '...')``, Java's
``setProperty("API_KEY", "...")``), XML attribute pairs (``key="ClearTextPassword"
value="..."``), an element's value on its own line, and the password column of a CSV export.

Each pattern has bounded repetitions; every value still passes the checks of secrets.py
(placeholders, variables and code are not secrets)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, register
from .secrets import secretish
from .values import not_a_secret

__all__ = ["plausible_password"]

_NOT_A_VALUE = lazy(
    r"(?i)^(?:\*+|x{3,}|\.{3,}|null|none|nil|true|false|undefined|redacted|changeme|change-me|example|string"
    r"|required|optional|password|secret|token|\$\{[^}]*\}|\$\(?[A-Za-z_][A-Za-z0-9_]*\)?|%[A-Za-z_]+%|<[^>]*>"
    r"|\{\{[^}]*\}\}|%\([^)]*\)[sdr]|\{[A-Za-z_]*\}|\?+)$"
)


def plausible_password(value: str, key: str = "password") -> bool:
    """A literal that could be a password: four characters or more, not a variable, template,
    placeholder or run of stars, and not all one kind of thing a command line also holds there
    (a port number, a flag)."""
    if len(value) < 4 or _NOT_A_VALUE.match(value) or value.startswith(("-", "$", "%")):
        return False
    if _PORTS.fullmatch(value):
        return False  # "-p 8080", "-p 8080:80": ports, not passwords
    return secretish(key, value) and not not_a_secret(key, value)


_PORTS = lazy(r"[\d:./-]+")
_CLASS_NAME = lazy(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*")


# A value on a command line: quoted (anything but the quote), or bare (no spaces or quotes).
_Q = r"""(?:'(?P<sq>[^'\n]{1,256})'|"(?P<dq>[^"\n]{1,256})"|(?P<bare>[^\s'"`;|&<>()]{1,256}))"""
_QUOTED = r"""(?:'(?P<sq>[^'\n]{1,512})'|"(?P<dq>[^"\n]{1,512})")"""

_PATTERNS: dict[str, re.Pattern[str]] = {
    # mysql, mysqldump, mariadb: the password glued to -p (a space after -p means "ask me").
    "mysql-p": lazy(r"(?<![\w-])-p" + _Q.replace("{1,256}", "{4,256}")),
    # -p or --password after a user on the same command (docker login, psql wrappers, ftp).
    "flag-password": lazy(
        r"(?<![\w-])(?:-p|--pass(?:word|wd)?|--(?:[a-z]+-)?(?:token|secret|api-?key|access-key|client-secret))"
        r"(?:[ \t]{1,4}|=)" + _Q
    ),
    # PowerShell parameters and SecureString conversions.
    "powershell": lazy(
        r"(?:-(?:client)?secret|-password|-token|-apikey|-accesskey|convertto-securestring(?:[ \t]{1,4}-string)?)"
        r"[ \t]{1,4}" + _QUOTED
    ),
    # curl -u user:password, --user user:password.
    "curl-user": lazy(r"""(?<![\w-])(?:-u|--user)[ \t]{1,4}['"]?[^\s:'"]{1,64}:(?P<bare>[^\s'"@]{1,256})"""),
    # SQL: CREATE/ALTER USER ... IDENTIFIED BY '...', WITH [ENCRYPTED] PASSWORD '...'.
    "sql": lazy(
        r"\b(?:identified[ \t]{1,4}by|with[ \t]{1,4}(?:encrypted[ \t]{1,4})?password)[ \t]{1,4}" + _QUOTED
    ),
    # Redis: AUTH in a MONITOR line ("AUTH" "..."), in redis-cli, or a command of its own.
    "redis-auth": lazy(
        r"""(?:"AUTH"[ \t]{1,4}(?:"[^"\n]{1,64}"[ \t]{1,4})?"(?P<dq>[^"\n]{1,256})"""
        r'"|(?<![^\n])[ \t]{0,8}AUTH[ \t]{1,4}'
        r"""(?P<bare>[^\s]{1,256})(?![^\r\n]))"""
    ),
    "redis-cli": lazy(r"redis-cli\b[^\n]{0,200}?[ \t]-a[ \t]{1,4}" + _Q),
    # A call whose first argument names a secret: define('DB_PASSWORD', '...'), setProperty(...).
    "named-argument": lazy(
        r"""\([ \t]{0,4}['"](?P<key>[\w.-]{0,40}"""
        r"""(?:pass(?:word|wd)?|secret|token|api_?key|_key|_salt|credentials?)[\w.-]{0,20})['"]"""
        r"""[ \t]{0,4},[ \t]{0,4}""" + _QUOTED
    ),
    # A password in a URL's userinfo that holds "@" unencoded (mongodb+srv://app:p@ss@host), up to
    # the last "@" before the host: the URL detectors (network.py) stop at the first, which leaves
    # the rest of the password to read as an address.
    "url-userinfo": lazy(
        r"""\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@'"]{0,64}:(?P<bare>[^\s'"/@]{1,64}@[^\s'"/]{1,128})"""
        r"""@(?=[a-z0-9][a-z0-9.-]{0,253}(?:[:/?#'"]|\s|$))"""
    ),
    # XML attribute pairs: <add key="ClearTextPassword" value="..." />, <entry name=".." value="..">.
    "xml-attributes": lazy(
        r"""\b(?:key|name)[ \t]{0,4}=[ \t]{0,4}"""
        r""""(?P<key>[\w.:-]{0,40}(?:pass(?:word|wd)?|secret|token|api_?key|access_?key))"[ \t]{1,8}"""
        r"""value[ \t]{0,4}=[ \t]{0,4}"(?P<dq>[^"\n]{1,512})\""""
    ),
    # An element holding a secret, its value on a line of its own.
    "xml-element": lazy(
        r"""<(?P<key>[\w.:-]{0,40}(?:pass(?:word|wd)?|secret|token|api_?key|access_?key)[\w.:-]{0,20})>"""
        r"""[ \t]*\r?\n[ \t]{0,40}"""
        r"""(?P<bare>[^\s<>]{4,512})[ \t]*\r?\n[ \t]{0,40}</"""
    ),
}
_WANTS: dict[str, tuple[str, ...]] = {  # cheap tests: a pattern runs only where its words are
    "mysql-p": ("-p",), "flag-password": ("-p", "--"), "powershell": ("-", "ConvertTo"), "curl-user": ("-u",),
    "sql": ("identified", "password"), "redis-auth": ("AUTH",), "redis-cli": ("redis-cli",),
    "named-argument": ("(",), "url-userinfo": ("://",), "xml-attributes": ("value",), "xml-element": ("<",),
}
_MYSQL = lazy(r"(?i)\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b")
_LOGIN = lazy(r"(?i)\blogin\b|(?<![\w-])(?:-u|--user(?:name)?)\b")


def _not_after_login(line: str) -> bool:
    """mysql's "-p NAME" names a database (the password is asked for); after a login or a user
    elsewhere (docker login -u x -p y) it is the password."""
    return _LOGIN.search(line) is None or _MYSQL.search(line) is not None


_COMMAND_LINES = frozenset({"mysql-p", "flag-password", "curl-user", "redis-auth", "redis-cli"})


def _value(m: re.Match[str]) -> tuple[int, int] | None:
    for group in ("sq", "dq", "bare"):
        if group in m.re.groupindex and m.group(group) is not None:
            return m.start(group), m.end(group)
    return None


def _line_before(text: str, at: int) -> str:
    start = text.rfind("\n", max(0, at - 400), at) + 1
    return text[start:at]


# Patterns written in lowercase and matched on the lowercased text (a case-insensitive scan costs
# several times more); the others are case-sensitive (mysql's -P is a port, -p a password).
_ON_LOW = frozenset(
    {"flag-password", "powershell", "sql", "named-argument", "url-userinfo", "xml-attributes", "xml-element"}
)


def _hint(name: str, pattern: re.Pattern[str]) -> Hint:
    source = pattern.pattern
    if name in _VALUE_LAST:  # the value cut to its first characters: see _VALUE
        source = _VALUE.sub(lambda m: f"{m.group(2)}{{{m.group(3)}}}", source)
    loose = _NAMED_GROUP.sub("(?:", source)
    return Hint(("(?i)" + loose) if name in _ON_LOW else loose, som=True, fwd=520)


# A value group ending its pattern, and its closing quote. The pre-pass looks for its first
# characters only (the zone reaches 520 past them, over the rest of the longest value): a
# repeat of a class with up to 512 characters to go makes Hyperscan track the start of each
# possible match (som) at every character, which halved the speed of the whole scan.
_VALUE = lazy(r"""\(\?P<(sq|dq|bare)>(\[[^\]]*\])\{(\d+),\d+\}\)(['"]?)""")
_VALUE_LAST = frozenset({"mysql-p", "flag-password", "powershell", "curl-user", "sql", "redis-cli"})


def _context_secrets(text: str, low: str) -> Iterator[Span]:
    for name, pattern in _PATTERNS.items():
        source = low if name in _ON_LOW else text
        if not any(w.lower() in low if name in _ON_LOW else w in text for w in _WANTS[name]):
            continue
        for m in pattern.finditer(source):
            where = _value(m)
            if where is None:
                continue
            start, end = where
            value = text[start:end]
            if name == "mysql-p" and not _MYSQL.search(_line_before(text, m.start())):
                continue  # -pNAME elsewhere is a path, a profile, a port
            spaced_p = name == "flag-password" and m.group()[:3] in ("-p ", "-p\t")
            if spaced_p and _not_after_login(_line_before(text, m.start())):
                continue  # "-p NAME" is a password after a login or a user; elsewhere a path, a port, a database
            key = m.group("key") if "key" in m.re.groupindex and m.group("key") else "password"
            if name == "named-argument" and _CLASS_NAME.fullmatch(text, m.start("key"), m.end("key")):
                continue  # a class's name (MovedAttribute("HTTPPasswordMgr", "urllib2")), not a setting's key
            if name in _COMMAND_LINES and m.group("bare") is not None:  # a bare value ends before punctuation
                value = value.rstrip(".,)")
                end = start + len(value)
            if plausible_password(value, key):
                yield Span(start, end, "SECRET")


# A CSV or TSV export with a password column (password managers, browsers' autofill): the cells
# of that column, in the lines that follow the header and have as many cells.
_PASSWORD_CELL = lazy(r"(?i)^\"?(?:login_)?(?:password|passwd|pwd)\"?$")
# Where the pre-pass looks: a password cell between separators (what _csv_passwords accepts).
_HEADER_HINT = r'(?i)(?:^|[\n,\t;])"?(?:login_)?(?:password|passwd|pwd)"?(?:$|[\r\n,\t;])'
_CELL = lazy(r'(?:^|[\n,\t;])"?(?:login_)?(?:password|passwd|pwd)"?(?=$|[\r\n,\t;])')  # on lowercase
_HEADER_CELL = lazy(r"[A-Za-z][\w ./()-]{0,40}")
_MAX_ROWS = 10_000
_CSV_REACH = 65_536  # rows read after a header (the pre-pass's zone reaches as far)


def _cells(line: str, sep: str) -> list[tuple[int, int]] | None:
    """Cell bounds of one line, with double-quoted cells ("a,b"); None when quotes are unbalanced."""
    out: list[tuple[int, int]] = []
    at, n = 0, len(line)
    while at <= n:
        if at < n and line[at] == '"':
            close = line.find('"', at + 1)
            while close >= 0 and close + 1 < n and line[close + 1] == '"':
                close = line.find('"', close + 2)
            if close < 0:
                return None
            out.append((at + 1, close))
            at = close + 1
            if at < n and line[at] != sep:
                return None
            at += 1
        else:
            stop = line.find(sep, at)
            stop = n if stop < 0 else stop
            out.append((at, stop))
            at = stop + 1
    return out


def _header_lines(text: str, low: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line holding a password cell between separators, once per line."""
    last = -1
    for cell in _CELL.finditer(low):
        at = cell.start() + (low[cell.start()] in "\n,\t;")
        start = text.rfind("\n", 0, at) + 1
        if start == last or at - start > 400:
            continue
        stop = text.find("\n", at, at + 401)
        if stop < 0:
            stop = len(text) if len(text) - at <= 400 else -1
        if stop >= 0:
            last = start
            yield start, stop


def _csv_passwords(text: str, low: str) -> Iterator[Span]:
    read_until = -1  # rows already read as some table's: a header among them starts no new one
    for start, stop in _header_lines(text, low):
        if start < read_until:
            continue
        line = text[start:stop].rstrip("\r")
        sep = "\t" if "\t" in line else "," if "," in line else ";" if ";" in line else ""
        if not sep:
            continue
        cells = _cells(line, sep)
        if cells is None:
            continue
        names = [line[a:b] for a, b in cells]
        if len(names) < 3 or not all(_HEADER_CELL.fullmatch(c) for c in names):
            continue  # a header names its columns: three or more, each a short name (not code's "password,")
        column = next((i for i, c in enumerate(names) if _PASSWORD_CELL.match(c)), None)
        if column is None:
            continue
        at = stop + 1
        limit = min(len(text), at + _CSV_REACH)
        for _ in range(_MAX_ROWS):
            if at >= limit:
                break
            stop = text.find("\n", at)
            stop = len(text) if stop < 0 else stop
            row = _cells(text[at:stop].rstrip("\r"), sep)
            if row is None or len(row) != len(names):
                break  # the table ended
            a, b = row[column]
            value = text[at + a : at + b]
            if value == value.strip() and plausible_password(value) and " " not in value:
                yield Span(at + a, at + b, "SECRET")
            at = stop + 1
        read_until = at


_NAMED_GROUP = lazy(r"\(\?P<\w+>")  # Hyperscan has no named groups
_SECRET = frozenset({"SECRET"})
register(
    Detector(
        "context-secrets", _SECRET, tuple(_hint(name, p) for name, p in _PATTERNS.items()),
        find=_context_secrets,
        context_keys=(
            "-p", "--password", "-ClientSecret", "ConvertTo-SecureString", "IDENTIFIED BY", "AUTH", "define(",
        ),
        examples=(
            "mysql -h db.internal -u root -p'Zx9Qv!L2mT8' billing < dump.sql",
            "docker login -u deployer -p Rq7vLm2pXz9 registry.example.com",
            '$c = New-Object PSCredential("ops", (ConvertTo-SecureString "Rq7vLm2pXz9" -AsPlainText -Force))',
            "Connect-AzAccount -ServicePrincipal -ClientSecret 'Zx9Qv~L2mT8rP4kW7nB3c'",
            "curl -u alice:Rq7vLm2pXz9 https://ci.example.com/api/json",
            "CREATE USER 'report'@'%' IDENTIFIED BY 'granite-lantern-42';",
            "ALTER USER app WITH PASSWORD 'Rq7vLm2pXz9';",
            '1712826000.123456 [0 10.0.0.5:51234] "AUTH" "river-quartz-7"',
            "MONGO_URL=mongodb+srv://app:Rq7v@Lm2pXz9@cluster0.example.net/db",
            "define( 'DB_PASSWORD', 'velvet-copper-copper-4' );",
            '<add key="ClearTextPassword" value="Hs0bnTXxH$q2" />',
            "<awsSecretToken>\n    Qm9vR2xhc3NQYW5lbHNPbkZpcmVXb3JrczEyMzQ\n</awsSecretToken>",
        ),
        not_flagged=(
            "ssh -p 2222 deploy@host", "docker run -p 8080:80 nginx", "mkdir -p /var/lib/app",
            "mysql -u root -p billing", "mysql -u root -p$MYSQL_PWD", "curl -u $USER:$TOKEN https://x",
            "ALTER USER app WITH PASSWORD '${APP_PASSWORD}';", "define( 'DB_PASSWORD', getenv('DB_PASSWORD') );",
            '<add key="ClearTextPassword" value="%NUGET_PASSWORD%" />', "psql --password -U app",
            'dsn = f"postgres://{user}:{password}@{host}/app"', "https://user:<password>@host.example/x",
            "pip install -p ./packages", "git push -p", "redis-cli -a $REDIS_PASSWORD ping",
        ),
    ),
    Detector(
        "csv-password-columns", _SECRET, (Hint(_HEADER_HINT, back=420, fwd=_CSV_REACH + 420),),
        find=_csv_passwords, when=lambda text, low: "pass" in low or "pwd" in low,
        context_keys=("password column",),
        examples=("name,url,username,password\nBank,https://bank.example,ana@example.org,pvqw91bq48!IFX\n",),
        not_flagged=(
            "name,url,username,password\nBank,https://bank.example,ana,\nMail,https://m.example,bo,********\n",
        ),
    ),
)
