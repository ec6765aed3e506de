"""Errors shown to a person; ``str(exc)`` is the whole message.

::

    GuardError
     +-- ConfigError      bad settings or config file; names the file and field
     +-- UpstreamError    an upstream server died, hung, or broke the protocol
     +-- RPCError         a JSON-RPC error to hand back to the peer as is

A denial is not an exception: hooks set a verdict on the call (see ``pipeline``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["GuardError", "ConfigError", "UpstreamError", "RPCError"]


class GuardError(Exception):
    """Base for errors shown to a person."""


class ConfigError(GuardError):
    """The configuration cannot be used; the message names the file and field."""


class UpstreamError(GuardError):
    """An upstream server is not running, hung up, or broke the protocol."""


class RPCError(GuardError):
    """A JSON-RPC error object, raised where a request fails and relayed to the caller."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    @classmethod
    def from_error(cls, error: Any) -> RPCError:
        if not isinstance(error, dict):
            return cls(-32603, f"malformed error object from upstream: {error!r:.200}")
        code = error.get("code")
        return cls(code if isinstance(code, int) else -32603, str(error.get("message", "")), error.get("data"))
