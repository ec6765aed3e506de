"""Provider token formats beyond the common ones of secrets.py: each provider's documented
prefix and body, and a validator where the format carries one (Discord's user id, GitHub's
CRC32, age's bech32 alphabet). A format's own shape is enough: no key word needs to stand
before the value ("the Databricks PAT is dapi...", a bare value in a JSON list).

Formats are written here from the providers' documentation of their token layouts; a family
is tried only where its literal prefix occurs (one search for all prefixes), so clean text
costs one pass whatever the number of families."""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Callable, Iterator

from ..patterns import lazy
from ..spans import Span
from . import Detector, Hint, literal_union, register

__all__ = ["github_checksum_ok"]

_B = r"(?<![\w-])"  # not glued to a longer word on the left
_E = r"(?![\w-])"  # nor on the right

# (prefixes whose presence makes the family worth trying, pattern). Bodies are each format's
# documented alphabet and length; where a provider documents a range, the range.
_FAMILIES: list[tuple[tuple[str, ...], str]] = [
    (("hvs.", "hvb.", "hvr."), r"hv[sbr]\.[A-Za-z0-9_-]{90,400}+"),  # HashiCorp Vault service/batch/recovery
    (("dapi",), r"dapi[a-f0-9]{32}(?:-\d)?"),  # Databricks personal access token
    (("lin_api_",), r"lin_api_[A-Za-z0-9]{40}"),  # Linear
    (("PMAK-",), r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"),  # Postman
    (("NRAK-", "NRJS-", "NRII-"), r"NR(?:AK-[A-Z0-9]{27}|JS-[a-f0-9]{19}|II-[A-Za-z0-9_-]{32})"),  # New Relic
    (("figd_", "figo_"), r"fig[do]_[A-Za-z0-9_-]{40}"),  # Figma
    (("dt0c01.",), r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}"),  # Dynatrace
    (("dp.",), r"dp\.(?:st|ct|sa|scim|audit|pt)\.(?:[a-z0-9_-]{2,35}\.)?[A-Za-z0-9]{40,44}"),  # Doppler
    (("pul-",), r"pul-[a-f0-9]{40}"),  # Pulumi
    (("glsa_", "glc_"), r"gl(?:sa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|c_[A-Za-z0-9+/]{32,400}+={0,2})"),  # Grafana
    (("glrt-", "gldt-", "glptt-", "glcbt-", "glft-", "glimt-", "glsoat-", "gloas-", "GR1348941"),
     r"(?:gl(?:rt|dt|ptt|cbt|ft|imt|soat|oas)-|GR1348941)[A-Za-z0-9_-]{20,64}+"),  # GitLab, beyond glpat-
    (("sq0atp-", "sq0csp-", "EAAA"),  # Square
     r"sq0atp-[A-Za-z0-9_-]{22}|sq0csp-[A-Za-z0-9_-]{43}|EAAA[A-Za-z0-9_-]{60}"),
    (("AGE-SECRET-KEY-1",), r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),  # age
    (("LTAI",), r"LTAI[A-Za-z0-9]{20}"),  # Alibaba Cloud access key id
    (("AKID",), r"AKID[A-Za-z0-9]{32}"),  # Tencent Cloud SecretId
    (("key-",), r"key-[a-f0-9]{32}"),  # Mailgun (legacy API key)
    (("ATATT3",), r"ATATT3[A-Za-z0-9_=-]{180,200}+"),  # Atlassian API token
    (("ops_eyJ",), r"ops_eyJ[A-Za-z0-9+/=_-]{200,2000}+"),  # 1Password service-account token
    (("A3-",),  # 1Password secret key
     r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"),
    (("HRKU-",), r"HRKU-[A-Za-z0-9_-]{60}"),  # Heroku
    (("sntrys_eyJ", "sntryu_"), r"sntrys_eyJ[A-Za-z0-9+/=_-]{60,400}+|sntryu_[a-f0-9]{64}"),  # Sentry
    (("sbp_",), r"sbp_[a-f0-9]{40}"),  # Supabase
    (("pscale_",), r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,64}+"),  # PlanetScale
    (("r8_",), r"r8_[A-Za-z0-9]{37}"),  # Replicate
    (("gsk_",), r"gsk_[A-Za-z0-9]{52}"),  # Groq
    (("xai-",), r"xai-[A-Za-z0-9]{70,90}+"),  # xAI
    (("pplx-",), r"pplx-[A-Za-z0-9]{48}"),  # Perplexity
    (("dckr_pat_", "dckr_oat_"), r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,40}+"),  # Docker Hub
    (("rubygems_",), r"rubygems_[a-f0-9]{48}"),  # RubyGems
    (("oy2",), r"oy2[a-z0-9]{43}"),  # NuGet
    (("bkua_",), r"bkua_[a-f0-9]{40}"),  # Buildkite
    (("CFPAT-",), r"CFPAT-[A-Za-z0-9_-]{43}"),  # Contentful
    (("xkeysib-",), r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),  # Brevo (Sendinblue)
    (("FLWSECK-", "FLWSECK_TEST-"), r"FLWSECK(?:_TEST)?-[a-f0-9]{32}-X"),  # Flutterwave
    (("shippo_",), r"shippo_(?:live|test)_[a-f0-9]{40}"),  # Shippo
    (("doo_v1_", "dor_v1_"), r"do[or]_v1_[a-f0-9]{64}"),  # DigitalOcean OAuth and refresh
    (("atlasv1.",), r"[a-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}+"),  # Terraform Cloud
    (("ntn_", "secret_"), r"ntn_[A-Za-z0-9]{46}|secret_[A-Za-z0-9]{43}"),  # Notion
    (("rdme_",), r"rdme_[a-z0-9]{70}"),  # ReadMe
    (("pnu_",), r"pnu_[A-Za-z0-9]{36}"),  # Prefect
    (("xoxe",), r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9]{140,170}+"),  # Slack config/refresh tokens
    (("sk.eyJ", "pk.eyJ"), r"[sp]k\.eyJ[A-Za-z0-9_-]{20,400}+\.[A-Za-z0-9_-]{20,400}+"),  # Mapbox
]

# Documentation's stand-ins: runs of one character, "EXAMPLE", "..." (as in secrets.py).
_EXAMPLE = lazy(r"(?i)example|(.)\1{7}|\.{3}")


def _compiled() -> list[tuple[tuple[str, ...], re.Pattern[str]]]:
    out = []
    for prefixes, body in _FAMILIES:
        out.append((prefixes, lazy(f"{_B}(?:{body}){_E}")))
    return out


_PREFIXED = _compiled()
_PATTERN_OF = {prefix: pattern for prefixes, pattern in _PREFIXED for prefix in prefixes}
_ANY_PREFIX = lazy(literal_union(_PATTERN_OF))  # a trie: dense text meets this at every position


def _prefixed(text: str, low: str) -> Iterator[Span]:
    for pattern in {_PATTERN_OF[m.group()] for m in _ANY_PREFIX.finditer(text)}:
        for m in pattern.finditer(text):
            if _EXAMPLE.search(text, m.start() + 4, m.end()) is None:
                yield Span(m.start(), m.end(), "SECRET")


# Formats without a literal prefix, each with its validator.
# Discord bot token: base64url of the bot's numeric user id, a timestamp, an HMAC.
_DISCORD = lazy(r"(?<![\w.-])[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}(?![\w.-])")
# Azure AD (Entra) client secret: three characters, a digit, "Q~", then 31 to 34 more.
_AZURE_AD = lazy(r"(?<![\w~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![\w~.-])")
# Telegram bot token: the bot's numeric id, a colon, 35 characters starting "AA".
_TELEGRAM = lazy(r"(?<![\w:])\d{8,10}:AA[A-Za-z0-9_-]{33}(?![\w-])")


def _discord_ok(token: str) -> bool:
    """The first part decodes to a Discord snowflake: 17 to 20 decimal digits."""
    head = token.split(".", 1)[0]
    try:
        user_id = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
    except (binascii.Error, ValueError):
        return False
    return user_id.isdigit() and 17 <= len(user_id) <= 20


def _mixed(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.isupper() for c in token) and any(c.islower() for c in token)


def _found(pattern: re.Pattern[str], ok: Callable[[str], bool]) -> Callable[[str, str], Iterator[Span]]:
    def find(text: str, low: str) -> Iterator[Span]:
        for m in pattern.finditer(text):
            if ok(m.group()) and _EXAMPLE.search(m.group()) is None:
                yield Span(m.start(), m.end(), "SECRET")

    return find


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def github_checksum_ok(token: str) -> bool:
    """GitHub's new-format tokens (ghp_, gho_, ghu_, ghs_, ghr_) end in six base62 characters
    holding the CRC32 of the 30 before them: a made-up token of the right shape fails it."""
    body = token[4:]
    if len(body) != 36:
        return False
    crc = zlib.crc32(body[:30].encode())
    digits = ""
    while crc:
        crc, r = divmod(crc, 62)
        digits = _BASE62[r] + digits
    return digits.rjust(6, "0") == body[30:]


_SECRET = frozenset({"SECRET"})
register(
    Detector(
        "provider-formats", _SECRET, tuple(Hint(p.pattern) for _, p in _PREFIXED), find=_prefixed,
        examples=(
            "the Databricks PAT is " + "da" + "pi" + "3f9a" * 8,
            '{"provider": "linear", "value": "' + "lin_" + "api_" + "Qw7Er9Ty2Ui4Op6As8Df" * 2 + '"}',
            "DT_API_TOKEN=" + "dt0c01." + "AB12CD34EF56GH78IJ90KL12" + "." + "QR34ST56UV78WX90" * 4,
            "age identity: " + "AGE-SECRET-" + "KEY-1" + "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
            + "QPZRY9X8GF2TVDW0S3JN54KHCE",
            "op secret key " + "A3" + "-ABC123-DEF456-GHI78-JKL90-MNO12-PQR34",
        ),
        not_flagged=(
            "key-value store", "dapi" + "x" * 32, "the pul-request template", "LTAI" + "EXAMPLEKEY" * 2,
            "secret_santa_list_for_the_office_party_2024",
        ),
    ),
    Detector(
        "discord-bot-tokens", _SECRET, (Hint(_DISCORD.pattern),), find=_found(_DISCORD, _discord_ok),
        when=lambda text, low: "." in text,
        examples=(
            "bot token: " + base64.urlsafe_b64encode(b"759533618471190528").decode().rstrip("=")
            + ".GhT4kP.Zq8rW2xN5vB7mL1cJ9dF3hS6tY0uI4oE2aR8",
        ),
        not_flagged=("Mozilla.Firefox.Nightly_Build_Version_Number_Here_Long",),
    ),
    Detector(
        "azure-ad-client-secrets", _SECRET, (Hint(_AZURE_AD.pattern),), find=_found(_AZURE_AD, _mixed),
        when=lambda text, low: "Q~" in text,
        examples=("AZURE_CLIENT_SECRET=" + "Zk3" + "8Q~" + "pL2mN9xV4bC7dF1gH5jK8lQ0wE3rT6yU",),
    ),
    Detector(
        "telegram-bot-tokens", _SECRET, (Hint(_TELEGRAM.pattern),), find=_found(_TELEGRAM, lambda t: True),
        when=lambda text, low: ":AA" in text,
        examples=("bot " + "123456789" + ":AA" + "Hq7Lm2Zx9Pw4Rt6Yb8Nc3Vd5Kf1Gj0Sa2",),
    ),
)
