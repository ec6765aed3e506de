"""The masking engine: detectors (detect), the vault of placeholders (vault), and the walkers
and operators that mask MCP payloads (mask)."""

from .detect import LABELS, Span, detect

__all__ = ["LABELS", "Span", "detect"]
