"""The two MCP protocol eras and the field-level translation between them.

Handshake era (2024-11-05 .. 2025-11-25): ``initialize`` opens a connection; a server may send
requests to the client in the middle of a call. Modern era (2026-07-28): no handshake, every
request carries an envelope in ``_meta``; a server that needs input returns an input-required
result and the client retries. These helpers only reshape dicts; the relay decides when.
"""

from __future__ import annotations

from typing import Any

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]
MODERN = "2026-07-28"
MODERN_VERSIONS = (MODERN,)

LEGACY = "legacy"

NS = "io.modelcontextprotocol/"
PROTOCOL_KEY = NS + "protocolVersion"
CLIENT_INFO_KEY = NS + "clientInfo"
CLIENT_CAPS_KEY = NS + "clientCapabilities"
LOG_LEVEL_KEY = NS + "logLevel"
SERVER_INFO_KEY = NS + "serverInfo"
SUBSCRIPTION_ID_KEY = NS + "subscriptionId"

# Results a 2026-07-28 client expects to carry cache hints.
CACHEABLE = frozenset(
    {"tools/list", "resources/list", "resources/templates/list", "prompts/list", "resources/read", "server/discover"}
)
# Methods whose result may be input-required (2026-07-28), and which a client retries.
INPUT_REQUIRED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})

CLIENT_REQUESTS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "subscriptions/listen",
    }
)
CLIENT_NOTIFICATIONS = frozenset(
    {"notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed"}
)
SERVER_REQUESTS = frozenset({"ping", "sampling/createMessage", "elicitation/create", "roots/list"})
SERVER_NOTIFICATIONS = frozenset(
    {
        "notifications/cancelled",
        "notifications/progress",
        "notifications/message",
        "notifications/resources/updated",
        "notifications/resources/list_changed",
        "notifications/tools/list_changed",
        "notifications/prompts/list_changed",
        "notifications/elicitation/complete",
        "notifications/subscriptions/acknowledged",
    }
)
LIST_CHANGED = {
    "notifications/tools/list_changed": "toolsListChanged",
    "notifications/resources/list_changed": "resourcesListChanged",
    "notifications/prompts/list_changed": "promptsListChanged",
}


def request_version(params: Any) -> str | None:
    """The protocol version a modern request declares in its envelope, if any."""
    if isinstance(params, dict):
        meta = params.get("_meta")
        if isinstance(meta, dict):
            version = meta.get(PROTOCOL_KEY)
            if isinstance(version, str):
                return version
    return None


def split_meta(params: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Take the envelope keys and the progress token out of ``params['_meta']``.

    Returns ``(taken, params)``: ``taken`` holds the removed keys; ``params`` is a shallow copy
    without them (``_meta`` dropped when nothing else is left in it).
    """
    if not params:
        return {}, params
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return {}, params
    taken = {k: v for k, v in meta.items() if k.startswith(NS) or k == "progressToken"}
    if not taken:
        return {}, params
    out = dict(params)
    rest = {k: v for k, v in meta.items() if k not in taken}
    if rest:
        out["_meta"] = rest
    else:
        del out["_meta"]
    return taken, out


def with_meta(params: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with ``extra`` merged into its ``_meta``."""
    out = dict(params or {})
    meta = dict(out.get("_meta") or {})
    meta.update(extra)
    out["_meta"] = meta
    return out


def without_tasks(capabilities: Any) -> dict[str, Any]:
    """Capabilities minus ``tasks``: task-augmented calls would carry output around the pipeline."""
    if not isinstance(capabilities, dict):
        return {}
    return {k: v for k, v in capabilities.items() if k != "tasks"}


def modernize_result(method: str, result: Any) -> Any:
    """Add the fields a 2026-07-28 client requires to a result from a handshake-era server."""
    if not isinstance(result, dict):
        return result
    if "resultType" in result and (method not in CACHEABLE or "cacheScope" in result):
        return result
    out = dict(result)
    out.setdefault("resultType", "complete")
    if method in CACHEABLE:
        out.setdefault("cacheScope", "private")
        out.setdefault("ttlMs", 0)
    return out


def make_private(result: Any) -> None:
    """Mark a cacheable result (in place) as this caller's alone: no cache may serve it to another.

    What passed the pipeline depends on who asked (tools the policy hides, values masked with the
    caller's own vault), whatever scope the upstream gave it."""
    if isinstance(result, dict) and result.get("cacheScope", "private") != "private":
        result["cacheScope"] = "private"


class GuardState(str):
    """A ``requestState`` the guard made itself (a sealed state, a bridged call's handle). The
    egress passes only these unmasked: a JSON parser never builds one, so whatever an upstream
    or a client wrote under that name is data like any other."""

    __slots__ = ()


def is_input_required(result: Any) -> bool:
    return isinstance(result, dict) and result.get("resultType") == "input_required"
