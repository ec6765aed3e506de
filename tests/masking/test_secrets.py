"""Secret detection by class (issue 15): provider formats, secrets their context names, code and
documentation values that are not secrets. Every case is hand-written from the format's own
documentation; token values are assembled at run time (no whole token sits in this file) and
no test name or failure message prints one."""

from __future__ import annotations

import base64
import random
import string

import pytest

from mcp_guard.masking import detect, fast
from mcp_guard.masking.detectors.providers import github_checksum_ok

_RNG = random.Random(15)
_ALNUM = string.ascii_letters + string.digits


def _run(alphabet: str, n: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def _hex(n: int) -> str:
    return _run("0123456789abcdef", n)


def _upper(n: int) -> str:
    return _run(string.ascii_uppercase + string.digits, n)


def _discord() -> str:
    user_id = base64.urlsafe_b64encode(str(_RNG.randrange(10**17, 10**18)).encode()).decode().rstrip("=")
    return f"{user_id}.{_run(_ALNUM, 6)}.{_run(_ALNUM, 27)}"


# (what the format is, a builder of a fresh value): the prefixes are split so no scanner trips here.
PROVIDER_TOKENS = {
    "vault service token": lambda: "hv" + "s." + _run(_ALNUM, 92),
    "databricks pat": lambda: "da" + "pi" + _hex(32),
    "linear api key": lambda: "lin_" + "api_" + _run(_ALNUM, 40),
    "postman api key": lambda: "PM" + "AK-" + _hex(24) + "-" + _hex(34),
    "new relic user key": lambda: "NR" + "AK-" + _upper(27),
    "figma pat": lambda: "fi" + "gd_" + _run(_ALNUM, 40),
    "dynatrace token": lambda: "dt0" + "c01." + _upper(24) + "." + _upper(64),
    "doppler service token": lambda: "dp" + ".st." + "prd." + _run(_ALNUM, 40),
    "pulumi token": lambda: "pu" + "l-" + _hex(40),
    "grafana service account": lambda: "gl" + "sa_" + _run(_ALNUM, 32) + "_" + _hex(8),
    "gitlab runner token": lambda: "gl" + "rt-" + _run(_ALNUM, 20),
    "square access token": lambda: "sq0" + "atp-" + _run(_ALNUM, 22),
    "age secret key": lambda: "AGE-" + "SECRET-KEY-1" + _run("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58),
    "alibaba access key id": lambda: "LT" + "AI" + _run(_ALNUM, 20),
    "tencent secret id": lambda: "AK" + "ID" + _run(_ALNUM, 32),
    "mailgun key": lambda: "ke" + "y-" + _hex(32),
    "1password secret key": lambda: "A3" + "-" + "-".join([_upper(6), _upper(6)] + [_upper(5) for _ in range(4)]),
    "azure ad client secret": lambda: _run(_ALNUM, 3) + "8" + "Q~" + _run(_ALNUM, 34),
    "telegram bot token": lambda: str(_RNG.randrange(10**8, 10**9)) + ":" + "AA" + _run(_ALNUM, 33),
    "discord bot token": _discord,
}
# How tools hand such values over: bare in prose, in a JSON list without a key word, in .env.
CARRIERS = [
    "Rotate it: {} (expires Friday).",
    '{{"keys": [{{"provider": "x", "value": "{}"}}]}}',
    "EXPORTED_VALUE={}\n",
]


@pytest.mark.parametrize("carrier", CARRIERS, ids=["prose", "json_list", "env"])
@pytest.mark.parametrize("kind", sorted(PROVIDER_TOKENS))
def test_a_provider_token_is_found_whole_by_its_format_alone(kind: str, carrier: str) -> None:
    token = PROVIDER_TOKENS[kind]()
    text = carrier.format(token)
    at = text.index(token)
    found = [(s.start, s.end) for s in detect(text) if s.label == "SECRET"]
    assert any(a <= at and b >= at + len(token) for a, b in found), f"{kind}: not masked whole"


def test_a_discord_token_whose_first_part_is_no_user_id_is_not_one() -> None:
    head = base64.urlsafe_b64encode(b"not-a-snowflake-id").decode().rstrip("=")
    text = f"build N{head[1:]}.{_run(_ALNUM, 6)}.{_run(_ALNUM, 27)} done"
    assert [s for s in detect(text) if s.label == "SECRET"] == []


def test_githubs_checksum_tells_a_real_shaped_token_from_a_made_up_one() -> None:
    body = _run(_ALNUM, 30)
    crc, digits = __import__("zlib").crc32(body.encode()), ""
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    while crc:
        crc, r = divmod(crc, 62)
        digits = alphabet[r] + digits
    good = "gh" + "p_" + body + digits.rjust(6, "0")
    assert github_checksum_ok(good)
    assert not github_checksum_ok(good[:-1] + ("A" if good[-1] != "A" else "B"))


def _password() -> str:
    return _run(string.ascii_lowercase, 6) + str(_RNG.randrange(10, 99)) + "!" + _run(string.ascii_uppercase, 3)


def _passphrase() -> str:
    words = ["copper", "orbit", "quartz", "lantern", "meadow", "falcon", "thistle"]
    return "-".join(_RNG.sample(words, 3)) + "-" + str(_RNG.randrange(1, 9))


# Secrets named by their context, not by a key = value pair: {} is the secret.
CONTEXT_LINES = {
    "mysql -p glued": "  503  mysql -h 10.0.4.2 -u root -p'{}' billing < dump.sql",
    "docker login -p": "docker login -u deployer -p {} registry.example.com",
    "powershell securestring": '$c = New-Object PSCredential("ops", (ConvertTo-SecureString "{}" -AsPlainText -Force))',
    "powershell client secret": "Connect-AzAccount -ServicePrincipal -Tenant t -ClientSecret '{}'",
    "curl -u": "$ curl -u alice:{} https://ci.example.com/api/json",
    "long flag": "vault login --password={} --method=userpass",
    "sql identified by": "CREATE USER 'report'@'%' IDENTIFIED BY '{}';",
    "sql with password": "ALTER ROLE app WITH PASSWORD '{}';",
    "redis monitor auth": '1712826000.123456 [0 10.0.0.5:51234] "AUTH" "{}"',
    "redis-cli -a": "redis-cli -h cache.internal -a {} ping",
    "wp-config define": "define( 'DB_PASSWORD', '{}' );",
    "java setProperty": 'System.setProperty("SMTP_PASSWORD", "{}");',
    "nuget attribute pair": '    <add key="ClearTextPassword" value="{}" />',
    "element on its own line": "<serviceSecret>\n    {}\n</serviceSecret>",
    "makefile ?=": "DEPLOY_PASSWORD ?= {}\n",
    "php .=": '$dbPassword .= "{}";',
    "r <-": 'db_password <- "{}"',
    "prose passphrase": "Sure. The staging DB password is {} and the admin login is ana.",
    "prose symbols": "the backup admin password is {}.\nEscalate to on-call.",
    "yaml passphrase": "smtp:\n  username: ana\n  password: {}\n",
    "jdbc query": "jdbc:mysql://db.internal:3306/ledger?user=ledger&password={}&useSSL=true",
    "netrc": "machine api.example.com login bob password {}\n",
    "xml element": "<password>{}</password>",
}


@pytest.mark.parametrize("shape", sorted(CONTEXT_LINES))
@pytest.mark.parametrize("make", [_password, _passphrase], ids=["password", "passphrase"])
def test_a_secret_named_by_its_context_is_masked_whole(shape: str, make: object) -> None:
    secret = make()  # type: ignore[operator]
    text = CONTEXT_LINES[shape].format(secret)
    at = text.index(secret)
    found = [(s.start, s.end) for s in detect(text) if s.label == "SECRET"]
    assert any(a <= at and b >= at + len(secret) for a, b in found), f"{shape}: not masked whole"


def test_a_quoted_password_starting_with_a_bang_is_still_a_password() -> None:
    secret = "!" + _password()
    assert _covered(f"password = '{secret}'", secret)


def test_a_django_secret_key_is_masked_to_its_closing_quote() -> None:
    secret = "django-insecure-" + _run(string.ascii_lowercase + string.digits + "&^%*$+", 50)
    text = f"DEBUG = False\nSECRET_KEY = '{secret}'\n"
    at = text.index(secret)
    assert any(s.start <= at and s.end >= at + len(secret) for s in detect(text))


def test_a_password_export_masks_its_password_column() -> None:
    rows = [(f"Site{i}", f"https://s{i}.example.org/login", f"user{i}", p) for i, p in
            enumerate([_password(), _passphrase(), _password()])]
    text = "name,url,username,password\n" + "".join(",".join(r) + "\n" for r in rows)
    spans = [text[s.start:s.end] for s in detect(text) if s.label == "SECRET"]
    assert sorted(spans) == sorted(r[3] for r in rows)


NOT_SECRETS = [
    "REDIS_PASSWORD=${REDIS_PASSWORD:?must be set}",
    'secret = "%(secret)s"',
    "password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
    '{"credential_id":"0f8e7d6c-5b4a-4392-8170-6e5d4c3b2a19","key_id":"1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"}',
    "aws configure set aws_secret_access_key " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
    "STRIPE_SECRET_KEY=sk_test_...",
    'return f"{type(self).__name__}(key_id={self.key_id!r}, client_secret=***)"',
    'CACHE_KEY = "user:{user_id}:prefs:v1"',
    "            f\"Passing both targets={targets!r} and target={target!r} is redundant - pass targets=...\"",
    "        password,\n            kdf_rounds=self._kdf_rounds,\n            hmac_hash=self._hmac_hash,\n",
    '    raise RuntimeError("pass allow_input_required=True to receive it")',
    "            password: (bool, optional): Hide the input.",
    '    proxy_url="socks5h://<username>:<password>@proxy-host"',
    "ssh -p 2222 deploy@bastion", "docker run -p 8080:80 nginx", "mkdir -p build", "mysql -u root -p billing",
    "docker login -u ci -p $REGISTRY_TOKEN", "curl -u $USER:$TOKEN https://ci.example.com",
    "define( 'DB_PASSWORD', getenv('WORDPRESS_DB_PASSWORD') );", "the password is required.",
    'parser.add_argument("-p", "--password", help="the password (prompted when omitted)")',
    "    this._passThroughOptions = !!passThrough;",
    '{"dependencies": {\n    "cookie": "^0.7.1",\n    "cookie-signature": "~1.2.1"}}',
    "  auth: options.token || process.env.GITHUB_TOKEN,", "export type JwtSecretAlgorithm = 'HS256'",
    "  resumptionToken: lastEventId,", "  credentials: kEnumerableProperty,", '  lookupCookie: "language",',
    'const usernamePasswordInOptions = "username" in options',
    'const TOKEN = "gh' + 'p_PersonalAccessToken0124' + '0' * 12 + '"',
    "token_type: bearer_access_with_refresh",
    "name,url,username,password\nBank,https://bank.example,ana,\nMail,https://m.example,bo,********\n",
]


@pytest.mark.parametrize("text", NOT_SECRETS, ids=[f"not-secret-{i}" for i in range(len(NOT_SECRETS))])
def test_code_placeholders_and_documented_examples_are_not_secrets(text: str) -> None:
    assert [text[s.start:s.end] for s in detect(text) if s.label == "SECRET"] == []


@pytest.mark.skipif(not fast.AVAILABLE, reason="hyperscan has no wheel for this platform: the pre-pass is off")
def test_the_pre_pass_finds_every_new_secret_class_in_a_long_text() -> None:
    """Many records in one long text: the pre-pass finds exactly what reading it whole finds."""
    parts = [c.format(PROVIDER_TOKENS[k]()) for k in sorted(PROVIDER_TOKENS) for c in CARRIERS]
    parts += [CONTEXT_LINES[k].format(_password()) for k in sorted(CONTEXT_LINES)]
    parts += NOT_SECRETS
    filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit\n" * 30
    text = filler.join(parts)
    assert len(text) > 50_000
    assert detect(text) == detect(text, prefilter=False)
    assert sum(s.label == "SECRET" for s in detect(text)) >= len(PROVIDER_TOKENS) * len(CARRIERS) + len(CONTEXT_LINES)


def _github_token() -> str:
    return "gh" + "p_" + _run(_ALNUM, 36)


def _covered(text: str, secret: str) -> bool:
    """Every character of ``secret`` in ``text`` lies inside some SECRET span."""
    at = text.index(secret)
    spans = [s for s in detect(text) if s.label == "SECRET"]
    return all(any(s.start <= i < s.end for s in spans) for i in range(at, at + len(secret)))


def test_a_token_with_a_zero_width_space_inside_is_masked_whole() -> None:
    token = _github_token()
    hidden = token[:12] + "\u200b" + token[12:]
    assert _covered(f"use {hidden} for the deploy", hidden)


def test_a_token_in_fullwidth_forms_is_masked_whole() -> None:
    token = _github_token()
    wide = "".join(chr(ord(c) + 0xFEE0) for c in token)
    assert _covered(f"token: {wide}", wide)


def test_a_url_encoded_secret_is_masked_and_mapped_back_to_the_encoded_characters() -> None:
    token = _github_token()
    password = _password()
    encoded = "".join(f"%{ord(c):02X}" if c in "!=&" else c for c in f"password={password}")
    text = f"GET /cb?next=%2Fsettings%3Ftoken%3D{token}%26x%3D1&q={encoded} HTTP/1.1"
    assert _covered(text, token)
    secret_part = encoded.split("%3D", 1)[1]
    assert _covered(text, secret_part)


def test_a_url_encoded_space_joins_no_words_into_an_address() -> None:
    assert [s.label for s in detect("https://jo:a%20secret@example.com") if s.label == "EMAIL"] == []


def test_a_secret_in_base64_text_is_masked_in_its_base64_characters() -> None:
    token, password = _github_token(), _password()
    plain = f"user=ana\npassword={password}\ntoken={token}\n"
    blob = base64.b64encode(plain.encode()).decode()
    text = f'{{"config": "{blob}"}}'
    spans = [s for s in detect(text) if s.label == "SECRET"]
    assert spans, "nothing found in the base64"
    at = text.index(blob)
    # Decoding what is left unmasked gives back no byte of either secret.
    kept = "".join("A" if any(s.start <= i < s.end for s in spans) else c for i, c in enumerate(text))
    left = base64.b64decode(kept[at:at + len(blob)])
    assert token.encode() not in left and password.encode() not in left
    assert b"user=ana" in left  # what was no secret stays readable


def test_base64_of_plain_text_and_binary_payloads_are_left_alone() -> None:
    prose = base64.b64encode(b"Release notes: the 2.4 build fixes login on Safari and adds dark mode.").decode()
    image = base64.b64encode(bytes(_RNG.randrange(256) for _ in range(3000))).decode()
    text = f"notes: {prose}\nicon: data:image/png;base64,{image}\n"
    assert [s for s in detect(text) if s.label == "SECRET"] == []


def test_a_url_password_holding_an_at_sign_is_masked_to_the_last_at_before_the_host() -> None:
    password = _run(_ALNUM, 5) + "@" + _run(_ALNUM, 6) + "~q"
    text = f'"Mongo": "mongodb+srv://app:{password}@cluster0.example.mongodb.net/db?retryWrites=true"'
    assert _covered(text, password)
    assert [s.label for s in detect(text) if s.label == "EMAIL"] == []


def test_a_service_account_key_in_a_json_string_is_masked_with_its_final_escaped_newline() -> None:
    body = "\\n".join(_run(_ALNUM + "+/", 64) for _ in range(4))
    key = "-----BEGIN PRIVATE KEY-----\\n" + body + "\\n-----END PRIVATE KEY-----\\n"
    text = '{"type": "service_account", "private_key": "' + key + '", "client_id": "1"}'
    assert _covered(text, key)


def test_a_github_token_with_a_valid_checksum_is_found_even_when_it_reads_like_a_stand_in() -> None:
    body = "x" * 8 + _run(_ALNUM, 22)
    crc, digits = __import__("zlib").crc32(body.encode()), ""
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    while crc:
        crc, r = divmod(crc, 62)
        digits = alphabet[r] + digits
    token = "gh" + "p_" + body + digits.rjust(6, "0")
    assert _covered(f"clone it with {token} today", token)
    fake = "gh" + "p_" + "x" * 36
    assert [s for s in detect(f"clone it with {fake} today") if s.label == "SECRET"] == []


@pytest.mark.parametrize("joiner", ["_", "-", "."])
def test_a_distinctive_token_joined_into_a_name_is_found(joiner: str) -> None:
    tokens = ["AKIA" + "".join(random.choice(string.ascii_uppercase + "234567") for _ in range(16)),
              "ghp_" + "".join(random.choice(string.ascii_letters + string.digits) for _ in range(36))]
    for token in tokens:
        text = f"send{joiner}{token}"
        found = [(s.start, s.end) for s in detect(text) if s.label == "SECRET"]
        assert found == [(5, len(text))], token[:4]


def test_a_token_prefix_glued_to_letters_is_still_not_a_token() -> None:
    text = "myAKIA" + "Q" * 16 + " ughp_" + "a1" * 18
    assert [s for s in detect(text) if s.label == "SECRET"] == []


@pytest.mark.parametrize("password", ["My" + "Secret" + "Pass2024", "Super" + "Secret!9", "pass" + "word-" + "7Kq2", "Change" + "me2025"])
def test_a_url_password_that_only_contains_a_placeholder_word_is_still_a_secret(password: str) -> None:
    text = f"postgres://app:{password}@db.internal:5432/orders"
    assert _covered(text, password)


@pytest.mark.parametrize("password", ["password", "changeme", "a%20secret", "your_password_here", "${DB_PASS}"])
def test_a_url_password_that_is_only_the_word_for_one_is_left_as_documentation(password: str) -> None:
    assert [s.label for s in detect(f"postgres://app:{password}@db.internal/orders") if s.label == "SECRET"] == []


def test_each_value_of_many_distinct_key_value_pairs_is_one_secret() -> None:
    """The benchmark's hostile shape (benchmarks/masking.py): the checks it hurries past still
    let every value through, alone, at its place."""
    values = [f"Zx9QvL2mT8rP{i:08d}" for i in range(1, 300)]  # (0: eight zeros, a stand-in's)
    text = " ".join(f"api_key{i}={value}" for i, value in enumerate(values))
    for prefilter in (True, False):
        assert [(s.text(text), s.label) for s in detect(text, prefilter=prefilter)] == [(v, "SECRET") for v in values]
