"""What upstream servers send toward the client: their requests and notifications, routed.

A message from an upstream reaches only the client session it belongs to (see :meth:`owner`):
the session whose call is in flight on that upstream, or, with none in flight, the one session
an unshared upstream serves. A request that cannot be tied to exactly one session is refused
and a notification dropped, never guessed. Requests the pipeline inspects (sampling,
elicitation) pass it on their way; everything sent toward the client also passes the egress.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from ..errors import RPCError
from ..pipeline import INTERCEPTED, Call
from ..protocol import era, jsonrpc

if TYPE_CHECKING:
    from .eras import BridgedCall
    from .hub import Hub
    from .session import Session
    from .upstream import ClientFacts, Inflight, Upstream

logger = logging.getLogger(__name__)

__all__ = ["TowardClient"]

DENIED = -32012
# How long a server's request outside any call waits for a probing client to pick its era.
SETTLE_WAIT_S = 10.0


class TowardClient:
    """The upstreams' handler for one hub (the :class:`~mcp_guard.relay.upstream.UpstreamHandler`)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def on_upstream_request(self, up: Upstream, method: str, params: Any) -> Any:
        result = await self._relay_request(up, method, params)
        if method == "roots/list":
            # The server now works in these roots: the policy resolves relative paths against them.
            self.hub.router.learn_roots(up, result)
        return result

    async def _relay_request(self, up: Upstream, method: str, params: Any) -> Any:
        if method == "ping":
            return {}
        if method not in era.SERVER_REQUESTS and not self.hub.method_allowed(method):
            raise RPCError(jsonrpc.METHOD_NOT_FOUND, f"mcp-guard does not relay {method!r} toward the client")
        owner = self.owner(up)
        if owner is None:
            raise RPCError(
                jsonrpc.METHOD_NOT_FOUND,
                f"mcp-guard cannot tie this {method} from {up.name!r} to exactly one client session, so it is not relayed",
            )
        session, inflight = owner
        if inflight is not None and inflight.bridge is not None:
            return await self._ask_bridged(inflight.bridge, up, method, params)
        if inflight is None:
            await self._settled(session, up, method)
        if session.closed:
            raise RPCError(jsonrpc.METHOD_NOT_FOUND, f"no client connected that can answer {method}")
        if session.era == era.MODERN:
            raise RPCError(
                jsonrpc.METHOD_NOT_FOUND, f"the client speaks {era.MODERN} and can only be asked during a call"
            )
        related = inflight.client_id if inflight is not None else None
        return await self.ask_client(session, up, method, params, related, session.facts)

    def owner(self, up: Upstream) -> tuple[Session, Inflight | None] | None:
        """The one client session (and call) a message from ``up`` belongs to, or None.

        Never for an upstream that serves several sessions (``shared``): there nothing ties a
        message to one of them. Otherwise the calls in flight decide: if they all belong to one
        session, it is that session's (its newest call, as a stdio server cannot say which);
        with none in flight, the hub's one live session."""
        calls = [i for i in up.inflight if not i.session.closed]
        owners = {id(i.session) for i in calls}
        if up.shared:
            # It serves several sessions, and a stdio server cannot say which call it asks for or
            # logs about: even one call in flight may not be the one (a job of an earlier call).
            return None
        if len(owners) == 1:
            return calls[-1].session, calls[-1]
        if owners:
            return None
        live = [s for s in self.hub.sessions if not s.closed]
        return (live[0], None) if len(live) == 1 else None

    async def _ask_bridged(self, call: BridgedCall, up: Upstream, method: str, params: Any) -> Any:
        if method in INTERCEPTED and self.hub.pipeline.active:
            params = await self._check_toward_client(call.session_key, up, method, params, call.user)
        return await call.ask(method, params)

    async def ask_client(
        self,
        session: Session,
        up: Upstream,
        method: str,
        params: Any,
        related: jsonrpc.RequestId | None,
        facts: ClientFacts,
    ) -> Any:
        """Put an upstream's question to a handshake-era client, through the pipeline."""
        capability = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}.get(method)
        if capability is not None and not session.can(capability, facts):
            raise RPCError(jsonrpc.METHOD_NOT_FOUND, f"the client does not support {capability}")
        if method in INTERCEPTED and self.hub.pipeline.active:
            params = await self._check_toward_client(session.key, up, method, params, session.user)
        # A person may take long over sampling or elicitation; a client's software should not
        # over roots or ping, and the upstream's own deadlines pause while it is asked.
        timeout = None if method in ("sampling/createMessage", "elicitation/create") else up.request_timeout
        try:
            return await session.request_client(method, params, related, timeout=timeout, origin=up.name)
        except TimeoutError:
            raise RPCError(jsonrpc.UPSTREAM_TIMEOUT, f"the client did not answer {method} within {timeout:g} s") from None

    async def _check_toward_client(self, session_id: str, up: Upstream, method: str, params: Any, user: str) -> Any:
        call = Call(method, up.name, dict(params or {}), session_id=session_id, user=user, toward_client=True)
        await self.hub.pipeline.run_request(call)
        if call.verdict is not None:
            raise RPCError(DENIED, f"mcp-guard: {call.verdict.reason}")
        return call.params

    async def _settled(self, session: Session, up: Upstream, method: str) -> None:
        """Outside any call, wait until the client has said which era it speaks.

        A server asks (``roots/list``) right after its handshake, which a client's
        ``server/discover`` probe may have set off before the client's own ``initialize``.
        """
        if not session.settled.is_set():
            logger.info("upstream %s asked %s before the client finished its handshake; waiting for it", up.name, method)
            with anyio.move_on_after(SETTLE_WAIT_S):
                await session.settled.wait()

    async def on_upstream_notification(self, up: Upstream, method: str, params: Any) -> None:
        if isinstance(params, dict) and isinstance(params.get("_meta"), dict) and era.SUBSCRIPTION_ID_KEY in params["_meta"]:
            # From the guard's own listen stream toward a 2026 upstream: the id means nothing downstream.
            _, params = era.split_meta(params)
        if method == "notifications/subscriptions/acknowledged":
            return
        if method == "notifications/message":
            owner = self.owner(up)  # a log line may carry anything: only its own session sees it
            if owner is not None:
                session, inflight = owner
                if session.era == era.LEGACY or session.log_opt_in:
                    related = inflight.client_id if inflight is not None else None
                    await session.send_safely(jsonrpc.notification(method, params), related, up.name)
        elif method in era.LIST_CHANGED:
            if method == "notifications/tools/list_changed":
                self.hub.router.forget_tools(up)
            flag = era.LIST_CHANGED[method]
            for session in list(self.hub.sessions):
                if session.era == era.LEGACY:
                    await session.send_safely(jsonrpc.notification(method, params), origin=up.name)
                for listen_id, granted in list(session.listens.items()):
                    if granted.get(flag):
                        await session.send_safely(jsonrpc.notification(method, _stamp(params, listen_id)), listen_id, up.name)
        elif method == "notifications/resources/updated":
            uri = params.get("uri") if isinstance(params, dict) else None
            for session in list(self.hub.sessions):
                if uri in session.subscriptions:
                    await session.send_safely(jsonrpc.notification(method, params), origin=up.name)
                for listen_id, granted in list(session.listens.items()):
                    if uri in (granted.get("resourceSubscriptions") or ()):
                        await session.send_safely(jsonrpc.notification(method, _stamp(params, listen_id)), listen_id, up.name)
        elif method == "notifications/elicitation/complete" or self.hub.method_allowed(method):
            owner = self.owner(up)
            if owner is not None and (owner[0].era == era.LEGACY or method != "notifications/elicitation/complete"):
                await owner[0].send_safely(jsonrpc.notification(method, params), origin=up.name)
        else:
            logger.info("dropped notification %s from %s: not a known MCP method and not allowlisted", method, up.name)


def _stamp(params: Any, listen_id: jsonrpc.RequestId) -> dict[str, Any]:
    return era.with_meta(params if isinstance(params, dict) else None, {era.SUBSCRIPTION_ID_KEY: listen_id})
