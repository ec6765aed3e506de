"""Policies validated before, kept so that a guard's start does not validate them again.

Validating a policy costs pydantic's import and schema build (~80 ms of a guard's start);
most starts read a policy some earlier start or ``policy check`` already validated. The
validated policy is kept in the cache folder (``MCP_GUARD_CACHE``, by default the home's
``cache/``) under a name made from the policy's text and the schema's code, as the data of
its dataclasses: a start with the same text and the same schema rebuilds it from that data.
Anything else (another text, another schema, an unreadable or damaged entry) is validated.

Entries are written owner-only, whole or not at all, and read only when they are this
account's and no other account can write them (``owner_only.read_own``), so a cache folder
shared with other accounts cannot hand a guard someone else's policy. An entry names the key
it was written under and carries the digest of its content; it is refused when either does not
hold. Within the account the cache is trusted as the home is (which holds the grants).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..owner_only import read_own, write_own
from .model import CLASSES, Policy

# Bumped when the encoding below changes.
FORMAT = 1


def digest(policy: Policy) -> str:
    """A digest of a policy's content: equal for equal policies however they were loaded."""
    return hashlib.sha256(_dumps(encode(policy))).hexdigest()


def recall(text: str) -> Policy | None:
    """The policy ``text`` was validated to before, or None."""
    try:
        path = _path(text)
        raw = read_own(path)
        if raw is None:
            return None
        entry = json.loads(raw)
        data = entry["policy"]
        if entry.get("key") != path.stem or entry.get("sha256") != hashlib.sha256(_dumps(data)).hexdigest():
            return None  # another text's entry under this name, or changed after it was written
        policy = decode(data)
    except Exception:  # none kept yet, unreadable, damaged or from another schema: validate
        return None
    return policy if isinstance(policy, Policy) else None


def keep(text: str, policy: Policy) -> None:
    """Keep ``policy`` as what ``text`` validates to (best effort: a read-only cache is no error)."""
    try:
        path = _path(text)
        data = encode(policy)
        entry = {"format": FORMAT, "key": path.stem, "sha256": hashlib.sha256(_dumps(data)).hexdigest(), "policy": data}
        write_own(path, json.dumps(entry).encode())
    except OSError:
        pass


def encode(value: Any) -> Any:
    """JSON data for a policy: each dataclass ``{"c": name, "f": fields}``, each dict ``{"d": items}``
    (so that no key a policy author wrote can pass for the encoding's own)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"c": type(value).__name__, "f": fields}
    if isinstance(value, dict):
        return {"d": {key: encode(item) for key, item in value.items()}}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    return value


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(item) for item in data]
    if isinstance(data, dict):
        if "c" in data:
            return CLASSES[data["c"]](**{key: decode(item) for key, item in data["f"].items()})
        return {key: decode(item) for key, item in data["d"].items()}
    return data


def _dumps(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# What a policy validates to depends on: the schema, its checks' JSONPath compiler, and pydantic.
_SCHEMA = [Path(__file__).with_name(name) for name in ("model.py", "jsonpath.py")]


def _path(text: str) -> Path:
    from .. import settings

    key = hashlib.sha256(_schema_key())
    key.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    return settings.current().cache_dir / f"policy-{key.hexdigest()[:32]}.json"


@functools.cache
def _schema_key() -> bytes:
    """The schema's part of every key, worked out once a process (the classes loaded are fixed)."""
    key = hashlib.sha256()
    for part in (str(FORMAT).encode(), *(p.read_bytes() for p in _SCHEMA), _pydantic_build()):
        key.update(hashlib.sha256(part).digest())
    return key.digest()


def _pydantic_build() -> bytes:
    """The installed pydantic and pydantic-core, without importing them: their files' size and time."""
    import importlib.util

    found = []
    for name in ("pydantic", "pydantic_core"):  # top-level names: finding them imports nothing
        spec = importlib.util.find_spec(name)
        stat = os.stat(spec.origin) if spec is not None and spec.origin else None
        found.append((stat.st_size, stat.st_mtime_ns) if stat else None)
    return repr(found).encode()
