"""``${NAME}`` references in a guard config entry, filled from the environment at start.

Only the fields an entry names in ``expandEnv`` are read this way, so a literal ``$`` anywhere
else stays literal. A reference to a variable that is not set is an error naming the field and
the variable (never a value): sending the literal text upstream, or an empty credential, would
hide the mistake.
"""

from __future__ import annotations

import re
from typing import Any

from . import settings

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(text: str, where: str) -> str:
    environ = settings.current().environ

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"{where} refers to ${{{name}}}, which is not set in the guard's environment")
        return environ[name]

    return _REF.sub(value, text)


def expand_fields(data: dict[str, Any], fields: Any) -> dict[str, Any]:
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ValueError("expandEnv must be a list of field names")
    data = {**data, "headers": dict(data.get("headers") or {})}
    for name in fields:
        if name == "url" and isinstance(data.get("url"), str):
            data["url"] = expand(data["url"], "url")
        elif name.startswith("headers.") and isinstance(data["headers"].get(name[8:]), str):
            data["headers"][name[8:]] = expand(data["headers"][name[8:]], f"header {name[8:]}")
        else:
            raise ValueError(f"expandEnv names {name!r}, which is not a url or header of this entry")
    return data
