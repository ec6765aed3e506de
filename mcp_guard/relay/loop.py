"""The event loop the relay runs on: uvloop where it is installed, else asyncio's own.

The relay's CPU per call is mostly event-loop work (a few turns per call, each with a poll,
callbacks and futures); uvloop does that work in C. Behaviour is the same: the relay only
uses anyio, and reads its pipes through ``loop.add_reader``, which both loops offer.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = ["run"]


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    """``anyio.run(fn)``, on uvloop when it can be imported."""
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") is not None else {}
    return anyio.run(fn, backend="asyncio", backend_options=options)
