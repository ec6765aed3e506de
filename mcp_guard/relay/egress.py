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
from typing import Any, Protocol

from ..protocol import jsonrpc
from ..errors import RPCError
from ..masking.mask import Masker
from ..masking.outbound import THREAD_CHARS, Masked, has_strings, mask_message, off_loop, weight_over
from ..pipeline import Pipeline

logger = logging.getLogger(__name__)

__all__ = ["Egress"]

WITHHELD = "mcp-guard could not check this message for sensitive data, so it was withheld"


class _Outbound(Protocol):
    """What a hook offers to mask messages toward the client (the masking hook does)."""

    serial: Any

    def outbound_masker(self, session_id: str, origin: str) -> Masker | None: ...


class Egress:
    def __init__(self, pipeline: Pipeline, default_origin: Callable[[], str]) -> None:
        # Duck-typed, so the relay does not depend on a concrete hook.
        self._hook: _Outbound | None = next((h for h in pipeline.hooks if hasattr(h, "outbound_masker")), None)
        self._default_origin = default_origin

    async def outbound(self, session_id: str, message: jsonrpc.Message, origin: str | None) -> jsonrpc.Message | None:
        """``message`` as the client may see it; ``None`` when it must not be sent at all."""
        hook = self._hook
        if hook is None or not _carries(message):
            return message
        where = origin if origin is not None else self._default_origin()
        masker = hook.outbound_masker(session_id, where)
        if masker is None:
            return message
        heavy = weight_over(_parts(message), THREAD_CHARS)
        try:
            return await off_loop(hook.serial, heavy, mask_message, masker, message, where)
        except Exception:  # never BaseException: cancellation must pass through
            logger.exception("masking a message toward the client failed")
            return _refused(message)


def _parts(message: jsonrpc.Message) -> list[Any]:
    result = message.get("result")
    return [None if isinstance(result, Masked) else result, message.get("error"), message.get("params")]


def _carries(message: jsonrpc.Message) -> bool:
    """Whether anything in ``message`` could hold data (a ping's answer, ``{}``, cannot)."""
    return any(has_strings(part) for part in _parts(message) if part is not None)


def _refused(message: jsonrpc.Message) -> jsonrpc.Message | None:
    if "method" not in message:  # a response: the caller gets an error instead
        return jsonrpc.error(message.get("id"), jsonrpc.INTERNAL_ERROR, WITHHELD)
    if "id" in message:  # a request toward the client: the upstream that asked gets the error
        raise RPCError(jsonrpc.INTERNAL_ERROR, WITHHELD)
    return None
