"""Code is not secret: on the source of popular public projects (read from this environment's
installed packages at test time, never copied into the repository), the detectors find almost
no SECRET. A coding agent reads code through the guard; a placeholder where the code had a name
(`username`, `kwargs.pop(`, `self.session_cookie`) breaks the edit it writes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
from pathlib import Path

import pytest

from mcp_guard.masking import detect

# Popular libraries this project installs anyway (runtime or test dependencies).
PROJECTS = ["httpx", "httpcore", "starlette", "anyio", "h11", "idna", "click", "jinja2", "jsonschema", "_pytest",
            "hypothesis", "pydantic", "yaml", "mcp", "cryptography"]
# At most this many SECRET (or PERSON, or LOCATION) spans per MB of clean source code (issue 15's bar).
FALSE_SECRETS_PER_MB = 1.0


def sources(project: str) -> list[Path]:
    spec = importlib.util.find_spec(project)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(p for root in spec.submodule_search_locations for p in Path(root).rglob("*.py"))


@pytest.fixture(scope="module")
def code_spans() -> tuple[int, list[tuple[str, str, str]]]:
    size, found = 0, []
    for project in PROJECTS:
        for path in sources(project):
            text = path.read_text(encoding="utf-8", errors="replace")
            size += len(text.encode())
            found += [(s.label, path.name, text[s.start:s.end][:40]) for s in detect(text)]
    if size < 5e6:
        pytest.skip("fewer than 5 MB of installed sources to read")
    return size, found


# Popular JavaScript packages in the repository's node_modules (the MCP SDK and inspector, bundlers, validators,
# HTTP stacks): bundled code (`ProgressTokenSchema$1.optional()`, `this.#res`, `!!options.auth`) is code too.
JS_PACKAGES = ["express", "body-parser", "commander", "cors", "qs", "yaml", "ajv", "zod", "undici", "vite",
               "@modelcontextprotocol/sdk", "@modelcontextprotocol/inspector", "mcp-remote"]
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"


@pytest.fixture(scope="module")
def js_secrets() -> tuple[int, list[tuple[str, str]]]:
    size, found = 0, []
    for package in JS_PACKAGES:
        for path in sorted((NODE_MODULES / package).rglob("*.js")) if (NODE_MODULES / package).is_dir() else []:
            if path.name.endswith(".min.js") or path.stat().st_size > 2_000_000:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            size += len(text.encode())
            found += [(path.name, text[s.start:s.end][:40]) for s in detect(text) if s.label == "SECRET"]
    if size < 5e6:
        pytest.skip("fewer than 5 MB of JavaScript in node_modules to read")
    return size, found


def test_the_javascript_of_popular_packages_holds_almost_no_secret(js_secrets: tuple[int, list[tuple[str, str]]]) -> None:
    size, found = js_secrets
    assert len(found) <= FALSE_SECRETS_PER_MB * size / 1e6, (size, found[:20])


@pytest.mark.parametrize("label", ["SECRET", "PERSON", "LOCATION"])
def test_the_source_of_popular_projects_holds_almost_no_secret_name_or_place(
    label: str, code_spans: tuple[int, list[tuple[str, str, str]]]
) -> None:
    size, found = code_spans
    false = [(name, value) for kind, name, value in found if kind == label]
    assert len(false) <= FALSE_SECRETS_PER_MB * size / 1e6, (size, false[:20])


@pytest.mark.parametrize(
    "line",
    [
        "        username, password = request.url.username, request.url.password",
        "            username = kwargs.pop('username')",
        "        self.session_cookie = session_cookie",
        "            allow_credentials=allow_credentials,",
        "    return AuthCredentials(scopes), SimpleUser(username)",
        "        cookies: CookieTypes | None = None,",
        '        token = f"{prefix}{self.token_id}"',
        "        password = os.environ['DB_PASSWORD']",
        "        secret = settings.SECRET_KEY",
        "    client_secret: str | None = Field(default=None)",
        '    :param auth: (optional) Auth tuple to enable Basic/Digest/Custom HTTP Auth.',
        "    Attaches HTTP Basic Authentication to the given Request object.",
        # JavaScript: a bundler's renamed names, private fields, negations, calls with anything in them
        "\t\tprogressToken: ProgressTokenSchema$1.optional(),",
        "  progressToken: ProgressTokenSchema$1",
        "  const envelopeKeys = isPlainObject$1(meta) ? RESERVED : []",
        "  const kept = effectiveScope.trim().split(/\\s+/).filter((token) => token)",
        "  const dangerouslyOmitAuth = !!options.dangerouslyOmitAuth;",
        "      showAuth: !!(selectedServer && selectedServer.x)",
        "   const cookies = this.#res.headers.getSetCookie();",
        "      onClearOAuth: handleClearOAuth,",
        "    credentialEndpointExpectedAudience: openid4vciCredentialEndpointExpectedAudience,",
        'nextLastSignificantToken = "?NonExpressionParenEnd";',
        # A name on the right of `NAME = ` in code, or of an attribute's key
        "    PRIVATE_KEY_CLS = RSAPrivateKeyWithSerialization",
        "    OptionType.COOKIE: CookieOption,",
        # Keys that say where a secret is, not what it is
        '            upstream_token_endpoint="https://discord.com/api/oauth2/token",',
        'var SECRET_STORAGE_DOCS_URL = "https://github.com/modelcontextprotocol/inspector/";',
        "lightningcss_node.wasm --asyncify --pass-arg=asyncify-imports@env.await_promise_sync -Oz",
        # Prose: a docstring describing an argument, a sentence telling what to pass, an escaped ellipsis
        "            client_secret: Auth0 application client secret",
        '                    "Pass burst_capacity=1 for no burst"',
        '        children: "OAuth: authenticating\\u2026" })',
        "  shouldChange('ttl.RefreshToken', 'define the expiration for RefreshToken artifacts');",
        # A page's name in a URL's path is no capability key
        "see https://www.w3.org/TR/2009/WD-css3-flexbox-20090723/#displayorder",
        "https://github.com/ashtuchkin/iconv-lite/wiki/Node-v4-compatibility",
        # A schema's types, a digest named by its key, docstring markup, a URL, a class's name as an argument
        '                    "password": "string?",',
        '            "passphrase": "string[]",',
        '  {"key_sha256": "d2e3a9f1c4b5e6d7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1"}',
        "        cookies: *(optional)* Dictionary of Cookie items to include in the request.",
        "    # Preserve case of keys: https://stackoverflow.com/a/1611877/6400719",
        '    MovedAttribute("HTTPPasswordMgr", "urllib2", "urllib.request"),',
    ],
)
def test_code_on_the_right_of_a_key_word_is_not_a_secret(line: str) -> None:
    assert [(s.label, line[s.start:s.end]) for s in detect(line) if s.label == "SECRET"] == []


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ('DATABASE_PASSWORD=correcthorsebattery', "correcthorsebattery"),
        ('    password = "Tr0ub4dor&3x"', "Tr0ub4dor&3x"),  # the whole quoted value, & and all
        ("  password: hunter22", "hunter22"),
        ('{"api_key": "Zx9QvL2mT8rP4kW7nB3c"}', "Zx9QvL2mT8rP4kW7nB3c"),
        ("client_secret: KRioWNWAlPTqEe", "KRioWNWAlPTqEe"),
        ('{"password": "hunter22\\n"}', "hunter22"),  # JSON's escaped newline is not the password's
        ("DB_PASSWORD=CorrectHorse9", "CorrectHorse9"),  # .env: no space before "="
        ("  DB_PASSWORD: Zx9QvL2mT8rP4kW7nB3c", "Zx9QvL2mT8rP4kW7nB3c"),
        ("login('password', 'correct horse battery staple')", "correct horse battery staple"),
        ("token: Zx9QvL2mT8rP4kW7nB3c  # rotated monthly", "Zx9QvL2mT8rP4kW7nB3c"),
        ("config.set('DB_PASSWORD', 'Tr0ub4dor&3x')", "Tr0ub4dor&3x"),
        ("token=https://example.com/hooks/Ab3dEf9hIj2kLm4nOp6qRs", "Ab3dEf9hIj2kLm4nOp6qRs"),
        ("https://docs.google.com/document/d/1U1RGAehQwRypUTovF1KRlpiOFze0b-_2gc6fAH0KY0k/edit",
         "1U1RGAehQwRypUTovF1KRlpiOFze0b-_2gc6fAH0KY0k"),
    ],
)
def test_literal_values_under_key_words_stay_secrets(line: str, value: str) -> None:
    assert ("SECRET", value) in [(s.label, line[s.start:s.end]) for s in detect(line)]


def _jwt(key: bytes) -> str:
    """An HS256 token for jwt.io's sample claims, built here so no token sits in the repository."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(b'{"sub":"1234567890","name":"John Doe","iat":1516239022}')
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


# Issue 15: what installed packages (./node_modules) hold under key words and in URLs that is no credential.
@pytest.mark.parametrize(
    "line",
    [
        # documentation's example token counts up
        "Example: `token " + "1234567890abcdef" * 2 + "12345678`",
        # patterns: a key inside a regular expression, a character class for tokens, a key's pattern by its name
        'url.replace(/\\bclient_secret=\\w+/g, "client_secret=[REDACTED]")',
        'const TOKEN_STRINGS = "[A-Za-z0-9._~+/-]+=*";',
        "const fnKeyRe = /^(?:\\x1b+)(O|N|\\[|\\[\\[)(?:(\\d+)(?:;(\\d+))?([~^$])|(?:1;)?(\\d+)?([a-zA-Z]))/;",
        # a sentence as a call's second argument
        "  mustChange('features.openid4vci.issueCredential', 'issue and return one or more credentials for a request');",
        "  shouldChange('ttl.ClientCredentials', 'define the expiration for ClientCredentials artifacts');",
        # a link to a documentation page, a bind parameter's name
        '  "Cookie": "/api/Cookies.html#cookie",',
        '    var passwordKey = ":password";',
        # a fixture's stand-ins
        "    nested: { secret: 'value1' }",
        "      { secret: 'hidden1', shared: sharedItem },",
        'Must be in valid uri format like dotenv://:key_1234@dotenvx.com/vault/.env.vault?environment=development',
        # what a key says about the secret, a name with an acronym, an escaped "#", an escaped ":" decoded
        '    cookie.name += ".sig"',
        "  client_secret: noVSCHAR,",
        "    'x:/resource?key=value%23still-query#first%23still-fragment',",
        '    "http://A%3AB@example.com:123/one"',
        # the token every tutorial prints
        '      "' + _jwt(b"your-256-bit-secret") + '"',
        # a form's label, a number with digit groups, a comparison opening a block, a type union
        '   * <label for="password-input">Password:</label>',
        "SECRETS_DIR_MAX_ENTRIES = 10_000  # bounds the walk",
        "                if secrets_dir_size > self.secrets_dir_max_size:",
        "  setHTTPCredentials(httpCredentials: null|{",
    ],
)
def test_stand_ins_patterns_and_sentences_in_package_code_are_not_secrets(line: str) -> None:
    assert [(s.label, line[s.start:s.end]) for s in detect(line) if s.label == "SECRET"] == []


_TOKEN = "Zx9QvL2mT8rP" + "4kW7nB3c"  # made here, not a literal
_HEX = hashlib.sha1(b"a token of 40 hex digits").hexdigest()


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("Authorization: token " + _HEX, _HEX),
        ('{"env": "A=1\\nclient_secret=' + _TOKEN + '"}', _TOKEN),  # a JSON-escaped newline before the key is no \b
        ('const TOKEN = "' + _TOKEN[:6] + "[" + _TOKEN[6:] + ']+";', _TOKEN[:6] + "[" + _TOKEN[6:] + "]+"),
        ("const apiKeyRecord = '" + _TOKEN + "';", _TOKEN),  # "Re" of a longer word names no pattern
        ("define('DB_PASSWORD', 'copper orbit the quartz lantern')", "copper orbit the quartz lantern"),
        ('  "Cookie": "sid=' + _TOKEN + '",', "sid=" + _TOKEN),
        ('    var password = ":' + _TOKEN + '";', ":" + _TOKEN),
        ("    nested: { secret: 'value" + _TOKEN + "' }", "value" + _TOKEN),
        ("dotenv://:key_" + _HEX + "@dotenvx.com/vault/.env.vault", "key_" + _HEX),
        ('    cookie.value = "' + _TOKEN + '"', _TOKEN),
        ("https://example.com?key=" + _TOKEN, _TOKEN),
        ('      "' + _jwt(b"a key of the issuer's own") + '"', _jwt(b"a key of the issuer's own")),
        ('<entry key="db.password">' + _TOKEN + "</entry>", _TOKEN),
        ('PASSWORD = "10_000"', "10_000"),  # quoted, a literal
        ("DB_PASSWORD=" + _TOKEN + ":", _TOKEN + ":"),
        ("password: null|" + _TOKEN, "null|" + _TOKEN),
    ],
)
def test_real_credentials_in_those_contexts_stay_secrets(line: str, value: str) -> None:
    assert value in [line[s.start:s.end] for s in detect(line) if s.label == "SECRET"]
