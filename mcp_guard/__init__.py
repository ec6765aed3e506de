"""mcp-guard: a tool-call firewall for the Model Context Protocol."""

from .errors import ConfigError, GuardError, RPCError, UpstreamError
from .pipeline import Call, Hook, Pipeline, Verdict

__version__ = "0.1.0"

__all__ = ["Call", "ConfigError", "GuardError", "Hook", "Pipeline", "RPCError", "UpstreamError", "Verdict", "__version__"]
