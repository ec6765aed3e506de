"""What the store keeps passes the detectors first: tool names, error texts, reasons and notes
come from calls (a model, an upstream, a person typing) and may hold a secret; the store keeps
a placeholder in its place, never the raw value."""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["scrub_body", "scrub_text"]

# Values that are digests or identifiers the guard made: never text from a call.
_NOT_TEXT = frozenset({
    "session", "arguments_digest", "result_digest", "preview_sha256", "sha256", "grant", "approval_request",
    "forwarded_record", "spool",
})


def scrub_body(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with every string from a call (tool names, error texts, reasons) passed through
    the detectors: what the store keeps holds placeholders, never a raw secret or personal value."""
    return {k: v if k in _NOT_TEXT or type(v) in _PLAIN else _scrub(v) for k, v in body.items()}


# Values with nothing to scrub (counts, flags, latencies): every record has several.
_PLAIN = frozenset({int, float, bool, type(None)})


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {_scrub(k) if isinstance(k, str) else k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def scrub_text(text: str) -> str:
    """``text`` with what the detectors find replaced by placeholders (cached: names repeat)."""
    if not text:
        return text
    return _scrub_short(text) if len(text) <= 256 else _mask_text(text)


@functools.lru_cache(maxsize=4096)
def _scrub_short(text: str) -> str:
    return _mask_text(text)


def _mask_text(text: str) -> str:
    from .masking.mask import DEFAULT_MASKED, locked_detect
    from .masking.vault import Vault

    spans = [span for span in locked_detect(text) if span.label in DEFAULT_MASKED]
    return Vault().replace(text, spans, "audit") if spans else text
