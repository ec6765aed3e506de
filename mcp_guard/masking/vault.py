"""The vault: the only holder of raw sensitive values, in memory, for one client session.

Each distinct value gets one typed placeholder (``<EMAIL_1>``), the same every time it shows
up, and remembers which upstream servers it came from. A placeholder in a later call's
arguments is put back only toward one of those servers (or along a flow the policy allows);
toward any other server it stays a placeholder, so data read from one tool cannot be sent to
another by a model that was talked into it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .detect import Span

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]{1,20})_(\d{1,9})>")

__all__ = ["PLACEHOLDER", "Vault"]


class Vault:
    def __init__(self, flows: Iterable[tuple[str, str, frozenset[str] | None]] = ()) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, tuple[str, set[str]]] = {}
        self._counters: dict[str, int] = {}
        # (from server, to server, labels or None for all) that may carry values across.
        self._flows = list(flows)

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def placeholder(self, label: str, value: str, origin: str) -> str:
        key = (label, value)
        found = self._by_value.get(key)
        if found is None:
            number = self._counters.get(label, 0) + 1
            self._counters[label] = number
            found = f"<{label}_{number}>"
            self._by_value[key] = found
            self._by_placeholder[found] = (value, {origin})
        else:
            self._by_placeholder[found][1].add(origin)
        return found

    def replace(self, text: str, spans: Iterable[Span], origin: str) -> str:
        """``text`` with each span (in order, not overlapping) replaced by its placeholder."""
        out, last = [], 0
        for span in spans:
            out.append(text[last : span.start])
            out.append(self.placeholder(span.label, text[span.start : span.end], origin))
            last = span.end
        out.append(text[last:])
        return "".join(out)

    def allowed(self, placeholder: str, target: str) -> bool:
        entry = self._by_placeholder.get(placeholder)
        if entry is None:
            return False
        origins = entry[1]
        if target in origins:
            return True
        label = placeholder[1:].rsplit("_", 1)[0]
        return any(src in origins and dst == target and (labels is None or label in labels) for src, dst, labels in self._flows)

    def rehydrate_text(self, text: str, target: str) -> tuple[str, int, int]:
        """``text`` with the placeholders ``target`` may see put back; (text, put back, kept)."""
        if "<" not in text:
            return text, 0, 0
        restored = kept = 0

        def swap(m: re.Match[str]) -> str:
            nonlocal restored, kept
            token = m.group(0)
            if self.allowed(token, target):
                restored += 1
                return self._by_placeholder[token][0]
            if token in self._by_placeholder:
                kept += 1
            return token

        return PLACEHOLDER.sub(swap, text), restored, kept

    def rehydrate(self, value: Any, target: str) -> tuple[Any, int, int]:
        """The same, through nested JSON values (dict keys are left alone)."""
        if isinstance(value, str):
            return self.rehydrate_text(value, target)
        if isinstance(value, dict):
            out, r, k = {}, 0, 0
            for key, item in value.items():
                out[key], r1, k1 = self.rehydrate(item, target)
                r, k = r + r1, k + k1
            return out, r, k
        if isinstance(value, list):
            items, r, k = [], 0, 0
            for item in value:
                new, r1, k1 = self.rehydrate(item, target)
                items.append(new)
                r, k = r + r1, k + k1
            return items, r, k
        return value, 0, 0
