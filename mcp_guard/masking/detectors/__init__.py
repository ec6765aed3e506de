"""The detectors, as data: one module per family, each entry a `Detector` in `REGISTRY`.

A detector says what it finds (its labels), how (a finder over the whole text, or a check on
the runs of digits detect.py cuts the text into), when it is worth running (a cheap test), and
where the Hyperscan pre-pass of fast.py must look for it (its hints). Both the runner
(detect.py) and the pre-pass read this registry, so a label cannot be known to one and missed
by the other. Each entry also carries examples it must find and look-alikes it must leave
alone; tests/masking/test_detectors.py checks both.

Adding a family is one module that calls `register()` and one line at the bottom of this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..spans import Span

__all__ = ["REGISTRY", "Detector", "Hint", "RunCheck", "literal_union", "register"]


@dataclass(frozen=True, slots=True)
class Hint:
    """A pattern for the pre-pass (fast.py loosens it so it matches wherever this one does).

    The zone around a match reaches ``back`` characters before its end (from its start, with
    ``som``) and ``fwd`` after it, beyond fast.MARGIN; ``None`` is the pattern's own width.
    ``run`` marks a check on number runs: its zone then also holds the whole run."""

    pattern: str
    back: int | None = None
    fwd: int | None = None
    som: bool = False
    run: bool = False


@dataclass(frozen=True, slots=True)
class RunCheck:
    """A check on one run of digits and separators (see detect._numbers): ``accepts`` sees how
    many digits it has and its text, ``check`` the run with a margin of context around it."""

    accepts: Callable[[int, str], bool]
    check: Callable[[str], Iterable[Span]]


Finder = Callable[[str, str], Iterable[Span]]  # (text, its lowercase form of the same length)


@dataclass(frozen=True)
class Detector:
    name: str
    labels: frozenset[str]
    hints: tuple[Hint, ...]
    find: Finder | None = None
    when: Callable[[str, str], bool] | None = None  # worth running at all (a cheap test)
    run: RunCheck | None = None
    context_keys: tuple[str, ...] = ()  # keys or words that give a value this label
    examples: tuple[str, ...] = ()  # texts in which it must find one of its labels
    not_flagged: tuple[str, ...] = ()  # look-alikes in which nothing may be found
    # Reads the whole text even when the pre-pass cut it into zones: what it finds depends on
    # something (a table's header) any distance before it. Its finder then gets a third
    # argument: where the pre-pass's matches of its hints ended (none but there can start it).
    whole: bool = False


REGISTRY: list[Detector] = []


def literal_union(words: Iterable[str]) -> str:
    """A pattern matching any of ``words``, the longest where several start at one place (as an
    alternation sorted longest first would), written as a trie: Python's re tries an alternation's
    branches one by one at each position, so a hundred prefixes cost a hundred tests there; the
    trie's common beginnings cost one."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_pattern(trie)


def _trie_pattern(node: dict[str, dict]) -> str:
    ends = "" in node
    branches = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if ends:  # a word ends here: the longer words first, greedily, then this one
        return "(?:" + body + ")?"
    return body


def register(*detectors: Detector) -> None:
    for detector in detectors:
        if not detector.hints:
            raise ValueError(f"detector {detector.name!r} gives the pre-pass nothing to look for")
        if (detector.find is None) == (detector.run is None):
            raise ValueError(f"detector {detector.name!r} needs a finder or a run check (one of them)")
        REGISTRY.append(detector)


# The families, in the order their spans are gathered (order does not decide overlaps).
from . import secrets, providers, pairs, context, encoded, contact, network, finance, dates, names, headers, tables, blocks  # noqa: E402,F401
