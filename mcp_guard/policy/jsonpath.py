"""A small JSONPath subset for matching tool arguments: ``$``, ``.key``, ``['key']``, ``[0]``,
``[*]`` and ``..key`` (any depth). Enough to say ``$.path`` or ``$..url``; no filters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

_TOKEN = re.compile(r"\.\.([A-Za-z_][\w-]*|\*)|\.([A-Za-z_][\w-]*|\*)|\[(\d+|\*|'[^']*'|\"[^\"]*\")\]")


@lru_cache(maxsize=512)
def compile_path(path: str) -> tuple[tuple[str, Any], ...]:
    if not path.startswith("$"):
        raise ValueError(f"a JSONPath starts with '$': {path!r}")
    steps: list[tuple[str, Any]] = []
    pos = 1
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at position {pos}")
        deep, dot, bracket = match.groups()
        if deep is not None:
            steps.append(("deep", deep))
        elif dot is not None:
            steps.append(("key", dot))
        elif bracket == "*":
            steps.append(("key", "*"))
        elif bracket.isdigit():
            steps.append(("index", int(bracket)))
        else:
            steps.append(("key", bracket[1:-1]))
        pos = match.end()
    return tuple(steps)


def select(path: str, data: Any) -> list[Any]:
    """Every value ``path`` names in ``data``."""
    values = [data]
    for kind, arg in compile_path(path):
        nxt: list[Any] = []
        for value in values:
            if kind == "deep":
                nxt.extend(_deep(value, arg))
            elif kind == "index":
                if isinstance(value, list) and -len(value) <= arg < len(value):
                    nxt.append(value[arg])
            elif arg == "*":
                nxt.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list) else [])
            elif isinstance(value, dict) and arg in value:
                nxt.append(value[arg])
        values = nxt
    return values


def _deep(value: Any, key: str) -> Iterator[Any]:
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for k, v in current.items():
                if key == "*" or k == key:
                    yield v
                stack.append(v)
        elif isinstance(current, list):
            stack.extend(current)
