"""Assembling a guard: upstream specs and hooks in, one :class:`Guard` out, and a hub per client.

What client sessions share lives in the :class:`Guard`: the pipeline (whose hooks keep their
per-session state under each session's key), the sealer of ``requestState``, the bridged calls
parked between a 2026-07-28 client's rounds, and the upstreams an operator declared
``"isolation": "shared"``. Everything else is built per client session by :meth:`Guard.hub`:
its own upstream processes and HTTP upstream sessions, started with *that* client's
capabilities, so one caller's server-to-client requests, notifications and vault can never
reach another.

Lifecycle: :meth:`Guard.run` owns the shared upstreams; each hub's :meth:`~Hub.run` owns its own
upstreams and stops them (EOF, SIGTERM, SIGKILL, bounded) when its session ends.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc

from . import settings
from .protocol import era, jsonrpc
from .errors import ConfigError, RPCError
from .pipeline import Hook, Pipeline
from .relay.hub import Hub
from .relay.lines import DEFAULT_MAX_MESSAGE_BYTES
from .relay import transports
from .relay.state import Sealer
from .relay.upstream import DEFAULT_REQUEST_TIMEOUT_S, ClientFacts, Upstream

__all__ = ["Guard", "UpstreamSpec", "build_hub", "load_hook"]

logger = logging.getLogger(__name__)

# Distinct capability sets that get a stateless hub of their own (2026-07-28 over HTTP). The
# key is made of a few known flags (see _caps_key), so there are at most 2**5 of them anyway.
MAX_STATELESS_HUBS = 32


@dataclass(frozen=True)
class UpstreamSpec:
    """How to reach one upstream: a command (stdio) or a URL (streamable HTTP)."""

    name: str
    command: str | None = None
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    protocol: str = "auto"
    # "session": one upstream process / HTTP session per client session (the default);
    # "shared": one for all, for servers an operator declares stateless.
    isolation: Literal["session", "shared"] = "session"
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S  # seconds an upstream may take per request


class Guard:
    """The state every client session shares, and the factory of each session's hub.

    :meth:`open` is the composition root: it opens the one store of the settings' home, and
    builds the audit, the grants, the policy and every hook of the chain on it."""

    @classmethod
    def open(
        cls,
        chosen: settings.Settings,
        specs: Sequence[UpstreamSpec],
        *,
        policy: str | None,
        extra_hooks: Sequence[Hook] = (),
        allow_methods: Sequence[str] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        metrics: Any = None,
    ) -> Guard:
        """A guard under ``policy`` (a file; ``None`` relays without checks).

        Raises ConfigError when the policy cannot be loaded or the store cannot keep the audit:
        a guard that cannot check or record calls does not start."""
        if policy is None:
            return cls(specs, Pipeline(extra_hooks), allow_methods, max_message_bytes, chosen.instance)
        from .audit import Audit
        from .grants import Grants
        from .hooks import default_hooks
        from .hooks.policy import PolicySource
        from .store import StoreError, open_store

        try:
            store = open_store(chosen.store_url)
            audit = Audit(store)
        except StoreError as exc:
            raise ConfigError(f"{exc}. Fix MCP_GUARD_HOME, or run with --no-policy to relay without checks.") from exc
        try:
            source = PolicySource.from_file(policy)
        except ConfigError as exc:
            audit.append("policy.rejected", {"path": policy, "error": str(exc)[:2000]})
            raise
        audit.append("policy.loaded", {"path": policy, "sha256": _digest(policy), "rules": len(source.policy.rules)})
        spool = audit.start_spool()
        if metrics is not None:
            metrics.spool = spool
        source.listeners.append(lambda event, detail: audit.record(event, {"path": policy, **detail}))
        grants = Grants(store)
        grants.recover()  # session grants of guards that crashed end now: their sessions are gone
        hooks = default_hooks(source, grants, extra_hooks, audit, metrics)
        guard = cls(specs, Pipeline(hooks), allow_methods, max_message_bytes, chosen.instance)
        guard._audit = audit
        return guard

    def close(self) -> None:
        """Seal the audit and stop its writer (at exit)."""
        if self._audit is not None:
            self._audit.close()

    def __init__(
        self,
        specs: Sequence[UpstreamSpec],
        pipeline: Pipeline | None = None,
        allow_methods: Sequence[str] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        instance: str = "",
    ) -> None:
        self.specs = tuple(specs)
        self.pipeline = pipeline or Pipeline()
        self.allow_methods = tuple(allow_methods)
        self.max_message_bytes = max_message_bytes
        self.sealer = Sealer(instance=instance)  # raises ConfigError for a bad instance name
        self.parked: dict[str, Any] = {}  # bridged calls waiting for a 2026 client's retry, by handle
        self._shared: dict[str, Upstream] = {}
        self._fanout = _Fanout()
        self._stateless: dict[str, Hub] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._audit: Any = None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Own the shared upstreams and the stateless hubs until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for spec in self.specs:
                if spec.isolation == "shared":
                    up = self._shared[spec.name] = _upstream(spec, self._fanout, self.max_message_bytes)
                    up.shared = True
                    await tg.start(up.run)
            task_status.started()
            await anyio.sleep_forever()

    def hub(self) -> Hub:
        """A hub for one client session: its own upstreams, the shared ones, the guard's pipeline."""
        hub = self._new_hub()
        for spec in self.specs:
            shared = self._shared.get(spec.name)
            if shared is not None:
                hub.add(shared, owned=False)
                self._fanout.hubs.add(hub)
            else:
                hub.add(_upstream(spec, hub, self.max_message_bytes))
        return hub

    def solo(self) -> Hub:
        """The hub of a guard with one client for its whole life (``run``): it owns every upstream."""
        hub = self._new_hub()
        for spec in self.specs:
            hub.add(_upstream(spec, hub, self.max_message_bytes))
        return hub

    def _new_hub(self) -> Hub:
        return Hub(pipeline=self.pipeline, allow_methods=self.allow_methods, sealer=self.sealer, parked=self.parked)

    def forget(self, hub: Hub) -> None:
        """A session's hub is done: shared upstreams stop routing to it."""
        self._fanout.hubs.discard(hub)

    async def stateless_hub(self, facts: ClientFacts) -> Hub:
        """The hub for 2026-07-28 exchanges that declare these capabilities (started on first use).

        Such exchanges have no session; handshake-era upstreams behind them are set up once per
        capability set, so a caller is never offered tools that need what it did not declare."""
        key = _caps_key(facts.capabilities)
        hub = self._stateless.get(key)
        if hub is None:
            if len(self._stateless) >= MAX_STATELESS_HUBS or self._tg is None:
                raise RuntimeError("no stateless hub can be started")  # cannot happen: keys are bounded
            hub = self._stateless[key] = self.hub()
            for up in hub.owned:
                up.shared = True  # serves every exchange of this capability set
            specs = {spec.name: spec for spec in self.specs}
            hub.spawn = lambda name: _upstream(specs[name], hub, self.max_message_bytes)
            await self._tg.start(hub.run)
        return hub


class _Fanout:
    """The handler of a shared upstream, which serves every session at once.

    Nothing ties its requests toward the client or its log lines to one caller (a stdio server
    cannot say which call it asks for, and a job of an earlier call may ask during another's), so
    those are refused or dropped, never guessed. Progress is tied by token below this; list
    changes and resource updates carry no data and go to every hub, each of which sends them
    only to the sessions that subscribed."""

    def __init__(self) -> None:
        self.hubs: set[Hub] = set()

    async def on_upstream_request(self, upstream: Upstream, method: str, params: Any) -> Any:
        if method == "ping":
            return {}
        raise RPCError(
            jsonrpc.METHOD_NOT_FOUND,
            f"mcp-guard cannot tie this {method} to one client of the shared server {upstream.name!r}, "
            "so it is not relayed",
        )

    async def on_upstream_notification(self, upstream: Upstream, method: str, params: Any) -> None:
        if method in era.LIST_CHANGED or method == "notifications/resources/updated":
            for hub in list(self.hubs):
                await hub.on_upstream_notification(upstream, method, params)
            return
        logger.info("dropped %s from shared server %s: not tied to one client", method, upstream.name)


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _caps_key(capabilities: Any) -> str:
    caps = capabilities if isinstance(capabilities, dict) else {}
    flags = [name for name in ("sampling", "roots") if caps.get(name) is not None]
    elicitation = caps.get("elicitation")
    if isinstance(elicitation, dict):
        flags.append("elicitation")
        flags.extend(f"elicitation.{mode}" for mode in ("form", "url") if mode in elicitation)
    return json.dumps(flags)


def _upstream(spec: UpstreamSpec, handler: Any, max_message_bytes: int) -> Upstream:
    transport = transports.for_spec(spec, max_message_bytes)
    return Upstream(spec.name, transport, handler, protocol=spec.protocol, request_timeout=spec.request_timeout)


def build_hub(
    specs: Sequence[UpstreamSpec],
    hooks: Sequence[Hook] = (),
    allow_methods: Sequence[str] = (),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Hub:
    """The hub of a one-client guard (``run``, ``doctor``), owning every upstream."""
    return Guard(specs, Pipeline(hooks), allow_methods, max_message_bytes).solo()


def load_hook(reference: str) -> Hook:
    """Instantiate a hook from ``"package.module:ClassName"``."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"hook {reference!r}: expected 'package.module:ClassName'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"hook {reference!r} cannot be loaded: {exc}") from exc
    hook = target() if isinstance(target, type) else target
    if not isinstance(hook, Hook):
        raise ConfigError(f"hook {reference!r} is not a mcp_guard.pipeline.Hook")
    return hook
