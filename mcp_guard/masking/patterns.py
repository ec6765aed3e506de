"""Regular expressions compiled when first used, not at import.

The detectors hold a few hundred patterns; compiling them all is most of the masking engine's
import, on the critical path of the guard's first answer, while a short text runs only the few
detectors whose cheap test passes. A :func:`lazy` pattern compiles on its first method call and
then keeps the compiled pattern's methods as its own, so later calls cost what they always did.
"""

from __future__ import annotations

import re
import threading
from typing import Any, cast

__all__ = ["lazy"]

_METHODS = ("match", "fullmatch", "search", "finditer", "findall", "sub", "subn", "split", "scanner")
_lock = threading.Lock()  # masking runs in worker threads too: one compile per pattern


class _Lazy:
    def __init__(self, pattern: str, flags: int) -> None:
        self.pattern = pattern
        self._flags = flags

    def __getattr__(self, name: str) -> Any:  # only names not yet set: the first use
        if name.startswith("__"):
            raise AttributeError(name)
        with _lock:
            compiled = re.compile(self.pattern, self._flags)
            for method in _METHODS:
                setattr(self, method, getattr(compiled, method))
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"lazy({self.pattern!r})"


def lazy(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, done on first use (a bad pattern fails there: the detector
    tests compile every one)."""
    return cast("re.Pattern[str]", _Lazy(pattern, flags))
