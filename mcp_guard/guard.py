"""Assembling a guard: upstream specs and hooks in, a ready :class:`~mcp_guard.relay.hub.Hub` out."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .pipeline import Hook, Pipeline
from .relay.hub import Hub
from .relay.lines import DEFAULT_MAX_MESSAGE_BYTES
from .relay.upstream import DEFAULT_REQUEST_TIMEOUT_S, Upstream

__all__ = ["UpstreamSpec", "build_hub", "load_hook"]


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
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S  # seconds an upstream may take per request


def build_hub(
    specs: Sequence[UpstreamSpec],
    hooks: Sequence[Hook] = (),
    allow_methods: Sequence[str] = (),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Hub:
    hub = Hub(pipeline=Pipeline(hooks), allow_methods=allow_methods)
    for spec in specs:
        transport: Any
        if spec.url is not None:
            from .relay.http import HttpTransport  # httpx only when an HTTP upstream is configured

            transport = HttpTransport(spec.name, spec.url, dict(spec.headers), max_message_bytes=max_message_bytes)
        else:
            from .relay.stdio import StdioTransport

            assert spec.command is not None
            transport = StdioTransport(
                spec.name, spec.command, spec.args, spec.env, spec.cwd, max_message_bytes=max_message_bytes
            )
        hub.add(Upstream(spec.name, transport, hub, protocol=spec.protocol, request_timeout=spec.request_timeout))
    return hub


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
