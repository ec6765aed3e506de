"""Policies: the YAML schema (model), loading with precise errors (load), and decide() (engine).

The names below are imported when first asked for: the relay reads ``policy.paths`` (a
server's host) even with ``--no-policy``, and the schema costs pydantic's import and build."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Decision, decide
    from .load import load_policy, parse_policy
    from .model import Policy

__all__ = ["Decision", "Policy", "decide", "load_policy", "parse_policy"]

_HOMES = {"Decision": "engine", "decide": "engine", "load_policy": "load", "parse_policy": "load", "Policy": "model"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{home}", __name__), name)
