"""SSRF-safe fetching of authorization-server metadata, JWKS and introspection answers.

The URLs fetched here come partly from documents an issuer serves (``jwks_uri``,
``introspection_endpoint``, redirect targets), so each one is checked as if hostile: HTTPS only
(plain HTTP only on loopback, and loopback only when the configured issuer is itself loopback);
the host is resolved once, every address it resolves to is checked (private, link-local, cloud
metadata, IPv4-mapped and other special forms refused unless allowed), and the connection goes
to that checked address, so a second DNS answer cannot swap it (DNS rebinding). Every redirect
hop goes through the same checks; size and time are bounded.
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
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return _embedded(ipaddress.ip_address(host)).is_loopback
    except ValueError:
        return False


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
    address = _embedded(ipaddress.ip_address(raw.split("%", 1)[0]))
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return None if policy.allow_loopback else "a loopback address (allowed only for a loopback issuer)"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "not a unicast address"
    if address.is_link_local:
        return None if policy.allow_private else "a link-local address"
    if address.is_private or not address.is_global:
        return None if policy.allow_private else "a private address"
    return None


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


async def fetch_json(
    url: str, policy: FetchPolicy, *, form: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
    max_bytes: int = MAX_BYTES, timeout_s: float = FETCH_TIMEOUT_S,
) -> dict[str, Any]:
    """GET (or POST ``form``) ``url`` and return its JSON object; raises DiscoveryError."""
    try:
        with anyio.fail_after(timeout_s):
            return await _fetch(url, policy, form, auth, max_bytes)
    except TimeoutError as exc:
        raise DiscoveryError(f"{url}: no answer within {timeout_s:.0f} s") from exc


async def _fetch(
    url: str, policy: FetchPolicy, form: dict[str, str] | None, auth: tuple[str, str] | None, max_bytes: int,
) -> dict[str, Any]:
    # trust_env=False: no proxy from the environment may see (or redirect) these requests.
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=_tls()) as http:
        for _ in range(MAX_REDIRECTS + 1):
            status, location, body = await _one_hop(http, url, policy, form, auth, max_bytes)
            if status in (301, 302, 303, 307, 308) and location:
                if form is not None:
                    raise DiscoveryError(f"{url}: redirected a POST; not followed")
                url = urljoin(url, location)
                continue
            if status != 200:
                raise DiscoveryError(f"{url}: HTTP {status}")
            try:
                document = json.loads(body)
            except ValueError as exc:
                raise DiscoveryError(f"{url}: not JSON") from exc
            if not isinstance(document, dict):
                raise DiscoveryError(f"{url}: not a JSON object")
            return document
    raise DiscoveryError(f"{url}: more than {MAX_REDIRECTS} redirects")


async def _one_hop(
    http: httpx.AsyncClient, url: str, policy: FetchPolicy, form: dict[str, str] | None,
    auth: tuple[str, str] | None, max_bytes: int,
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
    if auth is not None:
        request.headers["Authorization"] = basic_auth(*auth)
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
