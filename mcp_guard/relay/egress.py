"""One egress: every message a session sends toward its client passes here, whatever its route.

Results, errors, notifications (logging, progress, resource updates, list changes), requests an
upstream puts to the client (sampling, elicitation), listings with their descriptions and
schemas, ``initialize`` and ``server/discover`` answers: all are masked by the pipeline's
masking hook before they are written (see :mod:`mcp_guard.masking.outbound`). A result the
pipeline already masked whole is not walked again. When masking itself fails the message is not
sent: a response becomes an error, a notification is dropped, a request toward the client fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ..protocol import jsonrpc
from ..errors import RPCError
from ..pipeline import Pipeline

logger = logging.getLogger(__name__)

__all__ = ["Egress"]

WITHHELD = "mcp-guard could not check this message for sensitive data, so it was withheld"


class _Outbound(Protocol):
    """A hook that masks messages toward the client (the masking hook is one)."""

    async def outbound(self, session_id: str, message: jsonrpc.Message, origin: str) -> jsonrpc.Message: ...


class Egress:
    def __init__(self, pipeline: Pipeline, default_origin: Callable[[], str]) -> None:
        # Duck-typed, so the relay imports neither a concrete hook nor the detectors.
        self._hooks: list[_Outbound] = [h for h in pipeline.hooks if hasattr(h, "outbound")]  # type: ignore[misc]
        self._default_origin = default_origin

    async def outbound(self, session_id: str, message: jsonrpc.Message, origin: str | None) -> jsonrpc.Message | None:
        """``message`` as the client may see it; ``None`` when it must not be sent at all."""
        if not self._hooks:
            return message
        where = origin if origin is not None else self._default_origin()
        try:
            for hook in self._hooks:
                message = await hook.outbound(session_id, message, where)
        except Exception:  # never BaseException: cancellation must pass through
            logger.exception("masking a message toward the client failed")
            return _refused(message)
        return message


def _refused(message: jsonrpc.Message) -> jsonrpc.Message | None:
    if "method" not in message:  # a response: the caller gets an error instead
        return jsonrpc.error(message.get("id"), jsonrpc.INTERNAL_ERROR, WITHHELD)
    if "id" in message:  # a request toward the client: the upstream that asked gets the error
        raise RPCError(jsonrpc.INTERNAL_ERROR, WITHHELD)
    return None
