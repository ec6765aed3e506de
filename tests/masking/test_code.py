"""Code is not secret: on the source of popular public projects (read from this environment's
installed packages at test time, never copied into the repository), the detectors find almost
no SECRET. A coding agent reads code through the guard; a placeholder where the code had a name
(`username`, `kwargs.pop(`, `self.session_cookie`) breaks the edit it writes."""

from __future__ import annotations

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
