"""Sealed ``requestState`` for the guard's own questions to 2026-07-28 clients.

The guard keeps nothing between the rounds of a stateless exchange: what it needs back (the
call it was about, when it expires, whether it was already approved, the upstream's own
state) rides in the ``requestState`` the client returns, sealed with HMAC-SHA256 under a key
only this process knows. A state is bound to its call (method, target, arguments), expires,
and is accepted once: a replay, or the same state with other arguments, is refused.

Behind a load balancer only the instance that sealed a state can open it (the key, the replay
memory and the clock are that process's), so a named instance (``MCP_GUARD_INSTANCE``) writes
its name into the state, in the clear and under the MAC: ``mcp-guard.s.@NAME.BODY.MAC``. The
balancer sends the retry there (examples/deploy/haproxy.cfg); the bridged calls' handles
(relay/eras.py) carry the same tag.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from typing import Any

from ..protocol import era, jsonrpc
from ..errors import ConfigError, RPCError

PREFIX = "mcp-guard.s."
# How long a person has to answer the guard's question before the state expires.
STATE_TTL_S = 900.0
# Instance names as a load balancer's server names are written, and nothing that could end the tag.
_INSTANCE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def instance_tag(instance: str) -> str:
    """``@NAME.`` for a named instance, else nothing: what starts its states after the prefix.

    Raises ConfigError for a name a load balancer rule could not match exactly."""
    if not instance:
        return ""
    if not _INSTANCE.fullmatch(instance):
        raise ConfigError(f"MCP_GUARD_INSTANCE={instance[:80]!r}: use 1 to 64 of A-Z, a-z, 0-9, '_' and '-'")
    return f"@{instance}."


class Sealer:
    def __init__(self, key: bytes | None = None, instance: str = "") -> None:
        self._key = key or os.urandom(32)
        self._used: dict[str, float] = {}  # nonce -> expiry, so each state is accepted once
        self.tag = instance_tag(instance)

    @staticmethod
    def owns(state: Any) -> bool:
        return isinstance(state, str) and state.startswith(PREFIX)

    def seal(self, binding: str, **fields: Any) -> str:
        payload = {"b": binding, "exp": time.time() + STATE_TTL_S, "n": secrets.token_hex(8), **fields}
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        signed = self.tag + body
        mac = hmac.new(self._key, signed.encode(), hashlib.sha256).hexdigest()
        return era.GuardState(f"{PREFIX}{signed}.{mac}")

    def open(self, state: str, binding: str) -> dict[str, Any]:
        """The sealed fields; RPCError (-32602) when forged, expired, reused or for another call."""
        invalid = RPCError(jsonrpc.INVALID_PARAMS, "Invalid or expired requestState")
        signed, _, mac = state[len(PREFIX):].rpartition(".")
        expected = hmac.new(self._key, signed.encode(), hashlib.sha256).hexdigest()
        body = signed.rpartition(".")[2]  # after the instance tag, when there is one
        if not body or not hmac.compare_digest(mac, expected):
            raise invalid
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            raise invalid from None
        now = time.time()
        if not isinstance(payload, dict) or payload.get("exp", 0) < now or payload.get("b") != binding:
            raise invalid
        nonce = str(payload.get("n"))
        self._used = {n: exp for n, exp in self._used.items() if exp >= now}
        if nonce in self._used:
            raise invalid
        self._used[nonce] = float(payload["exp"])
        return payload
