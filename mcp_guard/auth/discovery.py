"""SSRF-safe fetching of authorization-server metadata, JWKS, introspection and token answers.

The URLs fetched here come partly from documents an issuer serves (``jwks_uri``,
``introspection_endpoint``, redirect targets), so each one is checked as if hostile: HTTPS only
(plain HTTP only on loopback, and loopback only when the configured issuer is itself loopback);
the host is resolved once, every address it resolves to is checked (private, link-local, cloud
metadata, IPv4-mapped and other special forms refused unless allowed), and the connection goes
to that checked address, so a second DNS answer cannot swap it (DNS rebinding). Every redirect
hop goes through the same checks; size and time are bounded. A request that carries credentials
(a client secret, a bearer token, a form) is never redirected: the next hop would receive them.

Both sides use this: the callers' token checks (``serve --auth oidc``) and the review page's
sign-in (web/oidc_rp.py), each with the FetchPolicy of its own issuer.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import anyio
import httpx

from ..errors import GuardError

logger = logging.getLogger(__name__)

# Metadata and JWKS documents are a few KiB; an issuer sending megabytes is broken or hostile.
MAX_BYTES = 256 * 1024
# One fetch, all redirect hops included; a slow issuer must not hold a caller's request for long.
FETCH_TIMEOUT_S = 5.0
MAX_REDIRECTS = 3
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})
# Cloud instance-metadata services: never an issuer, whatever --allow-private-issuer says.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
# Prefixes that embed an IPv4 address in an IPv6 one: checked as the IPv4 address they carry.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DiscoveryError(GuardError):
    """A metadata, JWKS or introspection fetch was refused or failed; the message says which URL and why."""


@dataclass(frozen=True)
class FetchPolicy:
    """Where fetches may go: ``allow_loopback`` only for a loopback issuer, ``allow_private`` on request."""

    allow_loopback: bool = False
    allow_private: bool = False

    @classmethod
    def for_issuer(cls, issuer: str, allow_private: bool = False) -> FetchPolicy:
        return cls(allow_loopback=is_loopback_url(issuer), allow_private=allow_private)


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def is_loopback_host(host: str) -> bool:
    """``localhost``, or a literal loopback address (also as ::ffff:127.x, which stays on this machine).

    This one answers "may this be trusted as local" (plain HTTP, ``--auth none``), so it is narrow:
    NAT64 and 6to4 forms that embed 127.x go to a gateway off this machine, and are not loopback here
    (address_problem refuses them as the loopback they claim to be)."""
    host = host.lower().strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _embedded(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, 64:ff9b::a.b.c.d, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_problem(raw: str, policy: FetchPolicy) -> str | None:
    """Why a resolved address may not be fetched from, or None when it may."""
    given = raw.split("%", 1)[0]
    address = _embedded(ipaddress.ip_address(given))
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        if not is_loopback_host(given):
            return "loopback behind an address translation (NAT64 or 6to4)"
        return None if policy.allow_loopback else "a loopback address (allowed only for a loopback issuer)"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "not a unicast address"
    if address.is_link_local:
        return None if policy.allow_private else "a link-local address"
    if address.is_private or not address.is_global:
        return None if policy.allow_private else "a private address"
    return None


def check_url(url: str, policy: FetchPolicy) -> str:
    """``url`` when its form may be fetched and its host, where it is a literal address, passes;
    DiscoveryError otherwise. For endpoints a document names that a browser goes to (authorization,
    end of session), and for a configured issuer at start; a host name is checked when it is resolved."""
    _checked_literal(url, policy)
    return url


async def check_resolved(url: str, policy: FetchPolicy) -> str:
    """``url`` when a fetch from it would pass now: check_url, then every address its host resolves to."""
    host, port = _checked_literal(url, policy)
    await _resolve(url, host, port, policy)
    return url


def _checked_literal(url: str, policy: FetchPolicy) -> tuple[str, int]:
    """``url``'s host and port once its form passes and, where the host is a literal address, that address."""
    _, host, port = _check_url(url, policy)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return host, port
    problem = address_problem(str(literal), policy)
    if problem is not None:
        raise DiscoveryError(f"{url}: {host} is {problem}; not used")
    return host, port


def _check_url(url: str, policy: FetchPolicy) -> tuple[str, str, int]:
    try:
        return _checked_parts(url, policy)
    except ValueError as exc:  # a bad port, an unclosed IPv6 bracket: issuer documents are not trusted input
        raise DiscoveryError(f"{url[:200]}: not a usable URL ({exc})") from exc


def _checked_parts(url: str, policy: FetchPolicy) -> tuple[str, str, int]:
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise DiscoveryError(f"{url}: only https URLs are fetched")
    if parts.username or parts.password:
        raise DiscoveryError(f"{url}: a URL with credentials in it is not fetched")
    if parts.scheme == "http" and not (policy.allow_loopback and is_loopback_url(url)):
        raise DiscoveryError(f"{url}: plain http is allowed only on loopback, for a loopback issuer")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, host, port


async def _resolve(url: str, host: str, port: int, policy: FetchPolicy) -> str:
    """One checked address for ``host``: every address it resolves to must pass, or none is used."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise DiscoveryError(f"{url}: {host} does not resolve ({exc})") from exc
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            raise DiscoveryError(f"{url}: {host} resolves to {address}, {problem}; not fetched")
    if not addresses:
        raise DiscoveryError(f"{url}: {host} has no address")
    return addresses[0]


async def discover(issuer: str, policy: FetchPolicy, *, openid_only: bool = False) -> dict[str, Any]:
    """RFC 8414 metadata (then OIDC discovery), whose ``issuer`` must be exactly the configured one.

    ``openid_only``: OIDC discovery alone, for a relying party, which needs the OpenID endpoints."""
    base = issuer.rstrip("/")
    scheme, _, rest = base.partition("://")
    host, slash, path = rest.partition("/")
    candidates = [f"{base}/.well-known/openid-configuration"]
    if not openid_only:
        candidates.insert(0, f"{scheme}://{host}/.well-known/oauth-authorization-server{slash}{path}")
    problems = []
    for url in candidates:
        try:
            document = await fetch_json(url, policy)
        except DiscoveryError as exc:
            problems.append(str(exc))
            continue
        if document.get("issuer") != issuer:
            # RFC 8414 3.3: a document for another issuer is a mix-up attack or a misconfiguration.
            raise DiscoveryError(f"{url}: names the issuer {str(document.get('issuer'))[:200]!r}, not {issuer!r}")
        return document
    raise DiscoveryError("; ".join(problems))


@functools.cache
def _tls() -> ssl.SSLContext:
    """The system's trust store, plus $SSL_CERT_FILE when set (an organisation's own CA)."""
    context = ssl.create_default_context()
    extra = os.environ.get("SSL_CERT_FILE")
    if extra:
        context.load_verify_locations(cafile=extra)
    return context


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 section 2.3.1: both parts form-encoded before base64."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered: its status, and its body when that is a JSON object (else None)."""

    status: int
    document: dict[str, Any] | None


async def fetch_json(
    url: str, policy: FetchPolicy, *, form: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
    max_bytes: int = MAX_BYTES, timeout_s: float = FETCH_TIMEOUT_S,
) -> dict[str, Any]:
    """GET (or POST ``form``) ``url`` and return its JSON object; raises DiscoveryError."""
    answer = await _fetch_timed(url, policy, form, _authorization(auth, None), max_bytes, timeout_s)
    if answer.status != 200:
        raise DiscoveryError(f"{url}: HTTP {answer.status}")
    if answer.document is None:
        raise DiscoveryError(f"{url}: not a JSON object")
    return answer.document


async def fetch_answer(
    url: str, policy: FetchPolicy, *, form: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
    bearer: str | None = None, max_bytes: int = MAX_BYTES, timeout_s: float = FETCH_TIMEOUT_S,
) -> Answer:
    """Like fetch_json, but any status is returned (a token endpoint's 400 says why in its body).

    ``auth`` sends HTTP Basic client credentials, ``bearer`` an access token; DiscoveryError only
    when no answer could be had safely (a refused URL or hop, a timeout, an oversized body)."""
    return await _fetch_timed(url, policy, form, _authorization(auth, bearer), max_bytes, timeout_s)


def _authorization(auth: tuple[str, str] | None, bearer: str | None) -> str | None:
    if auth is not None:
        return basic_auth(*auth)
    return f"Bearer {bearer}" if bearer is not None else None


async def _fetch_timed(
    url: str, policy: FetchPolicy, form: dict[str, str] | None, authorization: str | None, max_bytes: int,
    timeout_s: float,
) -> Answer:
    try:
        with anyio.fail_after(timeout_s):
            return await _fetch(url, policy, form, authorization, max_bytes)
    except TimeoutError as exc:
        raise DiscoveryError(f"{url}: no answer within {timeout_s:.0f} s") from exc


async def _fetch(
    url: str, policy: FetchPolicy, form: dict[str, str] | None, authorization: str | None, max_bytes: int,
) -> Answer:
    # trust_env=False: no proxy from the environment may see (or redirect) these requests.
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=_tls()) as http:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = await _one_hop(http, url, policy, form, authorization, max_bytes)
            if status in (301, 302, 303, 307, 308) and location:
                if form is not None or authorization is not None:
                    # The next hop would get the form or the credentials: it is nobody we checked.
                    raise DiscoveryError(f"{url}: redirected a request carrying credentials; not followed")
                url = urljoin(url, location)
                continue
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            return Answer(status, document if isinstance(document, dict) else None)
    raise DiscoveryError(f"{url}: more than {MAX_REDIRECTS} redirects")


async def _one_hop(
    http: httpx.AsyncClient, url: str, policy: FetchPolicy, form: dict[str, str] | None,
    authorization: str | None, max_bytes: int,
) -> tuple[int, str | None, bytes]:
    scheme, host, port = _check_url(url, policy)
    address = await _resolve(url, host, port, policy)
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    target = parts._replace(netloc=f"{literal}:{port}").geturl()
    # Connect to the checked address; Host and TLS SNI (and so certificate checks) keep the name.
    headers = {"Host": parts.netloc, "Accept": "application/json", "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    method = "POST" if form is not None else "GET"
    request = http.build_request(method, target, headers=headers, data=form, extensions=extensions)
    if authorization is not None:
        request.headers["Authorization"] = authorization
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise DiscoveryError(f"{url}: {type(exc).__name__}: {exc}") from exc
    try:
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise DiscoveryError(f"{url}: answer over {max_bytes} bytes")
    finally:
        await response.aclose()
    return response.status_code, response.headers.get("location"), bytes(body)
