"""Reading a policy file: YAML in, a validated :class:`Policy` out, or an error naming the
file, the line and the field (``policy.yaml:7: rules[1].action: Input should be ...``).

A policy validated once is kept (``kept.py``): the next start with the same text rebuilds it
without parsing YAML or importing pydantic."""

from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import kept
from .model import Policy


def load_policy(path: str | Path, *, recall: bool = True) -> Policy:
    """Load and validate a policy file; raises :class:`ConfigError` with file, line and field.
    ``recall=False`` validates even a text validated before (and keeps the result anew)."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(f"{path}: cannot read the policy: not a regular file")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x}); a policy is UTF-8") from None
    return parse_policy(text, str(path), recall=recall)


def parse_policy(text: str, source: str = "<policy>", *, recall: bool = True) -> Policy:
    policy = kept.recall(text) if recall else None
    if policy is None:
        policy = _validate(text, source)
        kept.keep(text, policy)
    return policy


def _validate(text: str, source: str) -> Policy:
    from .yamldata import dotted, plain_data

    data, lines = plain_data(text, source)
    pydantic = _pydantic()
    try:
        policy: Policy = _validator(pydantic).validate_python(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_for(loc, lines)
            problems.append(f"{source}:{line}: {dotted(loc)}: {_MESSAGES.get(err['type'], err['msg'])}")
        raise ConfigError("\n".join(problems)) from None
    problems = [f"{source}:{_line_for(loc, lines)}: {dotted(loc)}: {why}" for loc, why in _operator_problems(policy)]
    if problems:
        raise ConfigError("\n".join(problems))
    return policy


def _operator_problems(policy: Policy) -> list[tuple[tuple[Any, ...], str]]:
    """Operators presidio would refuse, by where they are written."""
    tables = [(("masking", "labels"), policy.masking.labels)]
    tables += [(("masking", "servers", name, "labels"), s.labels) for name, s in policy.masking.servers.items()]
    written = [
        ((*at, label), *((op, {}) if isinstance(op, str) else (op.operator, op.params)))
        for at, labels in tables for label, op in labels.items()
    ]
    # The guard's own operators take no params: a policy without presidio's loads no masking code.
    written = [(loc, name, params) for loc, name, params in written if name not in ("placeholder", "keep")]
    if not written:
        return []
    from ..masking.mask import operator_refusal

    problems = []
    for loc, name, params in written:
        why = operator_refusal(name, params, loc[-1])
        if why is not None:
            problems.append((loc, why))
    return problems


def policy_warnings(policy: Policy) -> list[str]:
    """What is valid but likely not meant: for ``policy check`` to say, never to refuse."""
    warnings = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(policy.rules):
        if rule.name is not None:
            if rule.name in seen:
                warnings.append(f"rules[{i}] has the name {rule.name!r} of rules[{seen[rule.name]}]: the audit and "
                                "`policy explain` name a decision by its rule, and will not tell them apart")
            seen.setdefault(rule.name, i)
        for where, group in (("group", rule.group), ("match.group", rule.match.group)):
            if group is not None and group not in policy.groups:
                warnings.append(f"rules[{i}].{where}: {group!r} is not in `groups`; only callers or reviewers whose "
                                "identity carries that group (and admins, to decide) are in it")
    return warnings


# pydantic's words for a dataclass's fields, in the words it uses for models (and always has here).
_MESSAGES = {"unexpected_keyword_argument": "Extra inputs are not permitted", "missing_argument": "Field required"}

_adapter: Any = None  # pydantic's validator of Policy, built on first use


def _validator(pydantic: Any) -> Any:
    global _adapter
    if _adapter is None:
        _adapter = pydantic.TypeAdapter(Policy)
    return _adapter


def _pydantic() -> Any:
    """pydantic, without its plugins.

    Before its first schema, pydantic looks for plugins in the entry points of every installed
    distribution (30-50 ms). A plugin would see, and could change, how the guard's own security
    policy is validated; none is wanted. So the guard's process has no pydantic plugins: the
    loader is a stub that finds none (left as is when something already loaded the real one)."""
    no_plugins = types.ModuleType("pydantic.plugin._loader")
    no_plugins.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules.setdefault("pydantic.plugin._loader", no_plugins)
    import pydantic

    return pydantic


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get((), 1)
