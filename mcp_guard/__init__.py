"""mcp-guard: a tool-call firewall for the Model Context Protocol."""

from typing import Any

from .errors import ConfigError, GuardError, RPCError, UpstreamError

__version__ = "0.1.0"

__all__ = ["Call", "ConfigError", "GuardError", "Hook", "Pipeline", "RPCError", "UpstreamError", "Verdict", "__version__"]


def __getattr__(name: str) -> Any:
    # The pipeline is imported on first use, so `mcp-guard run` can start its upstream first.
    if name in ("Call", "Hook", "Pipeline", "Verdict"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'mcp_guard' has no attribute {name!r}")
