"""The vault: the only holder of raw sensitive values, in memory, for one client session.

Each distinct value gets one typed placeholder (``<EMAIL_1>``), the same every time it shows
up, and remembers which upstream servers it came from. A placeholder in a later call's
arguments is put back only toward one of those servers (or along a flow the policy allows);
toward any other server it stays a placeholder, so data read from one tool cannot be sent to
another by a model that was talked into it.

The vault also finds its own values again (:meth:`Vault.find`): a value the model only ever saw
as a placeholder must not come back raw by another route (written through its origin server and
read back, echoed in a URI). One compiled pattern over the known values, shaped as a prefix tree
so a scan costs about the length of the text, is rebuilt only when the vault has grown. Masking
may run in a worker thread: changes to the maps happen under a lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from .detect import Span

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]{1,20})_(\d{1,9})>")

__all__ = ["PLACEHOLDER", "Vault"]

# Values shorter than this are not searched for again: they would match everywhere.
MIN_FIND = 4
# Bounds on what one vault searches for: a hostile upstream that floods the vault with distinct
# values must not make every later message slow. Values past these are still masked when the
# detectors find them; they are only not searched for verbatim.
MAX_FIND_VALUES = 5000
MAX_FIND_CHARS = 200_000
MAX_FIND_VALUE = 20_000
# Distinct values one session's vault keeps. Past it a new value is still masked, as a
# placeholder numbered 0 that stands for no value and is never put back: a hostile upstream
# cannot grow a session's memory without bound.
MAX_VALUES = 100_000
# Spans Vault.replace turns into placeholders under one taking of the lock.
_REPLACE_BATCH = 1024


class Vault:
    max_values = MAX_VALUES

    def __init__(self, flows: Iterable[tuple[str, str, frozenset[str] | None]] = ()) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        # placeholder -> (value, its origin, or the set of them once there are several). A pair of
        # strings is one object the garbage collector stops watching; a set per value, tens of
        # thousands of them after one large result, made every full collection longer.
        self._by_placeholder: dict[str, tuple[str, str | frozenset[str]]] = {}
        self._counters: dict[str, int] = {}
        # (from server, to server, labels or None for all) that may carry values across.
        self._flows = list(flows)
        self._lock = threading.Lock()
        self._finder: _Finder | None = None

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def placeholder(self, label: str, value: str, origin: str) -> str:
        with self._lock:
            return self._placeholder(label, value, origin)

    def _placeholder(self, label: str, value: str, origin: str) -> str:
        """placeholder(), with the lock held by the caller."""
        found = self._by_value.get((label, value))
        if found is not None:
            kept, origins = self._by_placeholder[found]
            if origins != origin and (isinstance(origins, str) or origin not in origins):
                self._by_placeholder[found] = (kept, _origin_set(origins) | {origin})
            return found
        if len(self._by_value) >= self.max_values:
            return f"<{label}_0>"  # full: masked, but not kept, so never restored
        number = self._counters.get(label, 0) + 1
        self._counters[label] = number
        found = f"<{label}_{number}>"
        self._by_value[(label, value)] = found
        self._by_placeholder[found] = (value, origin)
        return found

    def find(self, text: str) -> list[Span]:
        """Where values already in the vault occur in ``text`` (leftmost, longest, in order)."""
        return self.finder().find(text)

    def finder(self) -> _Finder:
        """The search over the vault's values as they are now (rebuilt only if it has grown).

        One masking job takes one finder and keeps it: values the job itself adds are found by
        the detectors that found them, and rebuilding after each would cost quadratic time."""
        finder = self._finder
        if finder is not None and finder.full:
            finder.size = len(self._by_value)  # past the bounds: later values are not added
        elif finder is None or finder.size != len(self._by_value):
            finder = self._finder = _Finder(self._snapshot())
        return finder

    def _snapshot(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._by_value)

    def replace(self, text: str, spans: Iterable[Span], origin: str) -> str:
        """``text`` with each span (in order) replaced by its placeholder; a span inside one
        replaced before it (a secret inside a URL masked whole) is already hidden by it."""
        spans = spans if isinstance(spans, list) else list(spans)
        out, last = [], 0
        placeholder = self._placeholder
        for lo in range(0, len(spans), _REPLACE_BATCH):
            # The lock is taken once a batch of spans, not once a span, and let go between batches.
            with self._lock:
                for span in spans[lo : lo + _REPLACE_BATCH]:
                    if span.start < last:
                        continue
                    out.append(text[last : span.start])
                    out.append(placeholder(span.label, text[span.start : span.end], origin))
                    last = span.end
        out.append(text[last:])
        return "".join(out)

    def allowed(self, placeholder: str, target: str) -> bool:
        entry = self._by_placeholder.get(placeholder)
        if entry is None:
            return False
        origins = _origin_set(entry[1])
        if target in origins:
            return True
        label = placeholder[1:].rsplit("_", 1)[0]
        return any(src in origins and dst == target and (labels is None or label in labels) for src, dst, labels in self._flows)

    def origins(self, placeholder: str) -> tuple[str, ...] | None:
        """The servers the value behind ``placeholder`` came from, or None if it is not ours."""
        entry = self._by_placeholder.get(placeholder)
        return tuple(sorted(_origin_set(entry[1]))) if entry is not None else None

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


def _origin_set(origins: str | frozenset[str]) -> frozenset[str]:
    return frozenset((origins,)) if isinstance(origins, str) else origins


class _Finder:
    """One compiled pattern for the vault's values at one size (a prefix tree as a regex)."""

    def __init__(self, entries: list[tuple[str, str]]) -> None:
        self.size = len(entries)
        self.labels: dict[str, str] = {}
        self.full = False
        total = 0
        for label, value in entries:
            if len(self.labels) >= MAX_FIND_VALUES or total + len(value) > MAX_FIND_CHARS:
                self.full = True
                break
            if MIN_FIND <= len(value) <= MAX_FIND_VALUE and value not in self.labels:
                self.labels[value] = label
                total += len(value)
        self.pattern = _compile(list(self.labels)) if self.labels else None

    def find(self, text: str) -> list[Span]:
        if self.pattern is None or len(text) < MIN_FIND:
            return []
        return [Span(m.start(), m.end(), self.labels[m.group()]) for m in self.pattern.finditer(text)]


def _compile(values: list[str]) -> re.Pattern[str]:
    try:
        return re.compile(_tree_pattern(values))
    except (RecursionError, re.error, OverflowError):
        # A hostile chain of values, each a prefix of the next, nests too deep for a tree:
        # a flat alternation, longest first, finds the same values, only more slowly.
        return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))


def _tree_pattern(values: list[str]) -> str:
    """A regex matching exactly ``values``, longest match first, with shared prefixes factored."""
    root: dict[str, Any] = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[""] = True
    return _node_pattern(root)


def _node_pattern(node: dict[str, Any]) -> str:
    branches = []
    for char in sorted(k for k in node if k):
        child, chars = node[char], [char]
        while len(child) == 1 and "" not in child:  # a chain with no branching: one literal
            (nxt, child), = child.items()
            chars.append(nxt)
        branches.append(re.escape("".join(chars)) + (_node_pattern(child) if len(child) > ("" in child) else ""))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body
