"""A policy's YAML as plain data, with the line of every value (for errors that say where).

Stricter than PyYAML's safe loading where a policy needs it: no repeated keys, bounded nesting
and expansion, merge keys only of mappings."""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError


def plain_data(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """The data of ``text`` and each path's 1-based line; ConfigError naming ``source`` and the line."""
    try:
        _check_depth(text, source)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if root is None:
        raise ConfigError(f"{source}: the policy is empty (it needs at least 'version: 1')")
    lines: dict[tuple[Any, ...], int] = {}
    try:
        return _Builder(lines).build(root, ()), lines
    except _Refused as exc:
        raise ConfigError(f"{source}:{exc.line}: {exc.message}") from None


def _check_depth(text: str, source: str) -> None:
    """Refuse deep nesting before composing: PyYAML's composer recurses once per level, so
    ``[[[[...`` 5,000 deep would overflow the stack. Its parser yields events without recursing."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise ConfigError(f"{source}:{line}: the policy nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


# Aliases let a few lines expand into millions of nodes (or loop on themselves): a policy is
# small, so past these it is refused rather than built.
MAX_NODES = 100_000
MAX_DEPTH = 64

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """A YAML construct a policy may not use; carries the 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Builder:
    """Plain data from composed nodes, recording each path's line (1-based).

    Stricter than PyYAML's SafeLoader, which keeps the last of two equal keys: a second
    ``rules:`` would silently drop the first rules, so any repeated key is an error. Merge keys
    (``<<: *base``) are allowed only with a mapping or a list of mappings; keys written out
    beside the merge win over merged ones, as YAML says."""

    def __init__(self, lines: dict[tuple[Any, ...], int]) -> None:
        self.lines = lines
        self.nodes = 0

    def build(self, node: yaml.Node, path: tuple[Any, ...], depth: int = 0) -> Any:
        line = node.start_mark.line + 1
        self.nodes += 1
        if self.nodes > MAX_NODES or depth > MAX_DEPTH:
            raise _Refused(line, f"the policy expands past {MAX_NODES} values or {MAX_DEPTH} levels (aliases?)")
        self.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        finally:
            loader.dispose()

    def _mapping(self, node: yaml.MappingNode, path: tuple[Any, ...], depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        seen: dict[Any, int] = {}
        merged: dict[Any, Any] = {}
        merge_line: int | None = None
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG:
                if merge_line is not None:
                    where = dotted(path)
                    raise _Refused(line, f"{where}: a second merge key '<<' (the first is on line {merge_line})")
                merge_line = line
                merged = self._merge(value_node, path, depth)
                continue
            key = self._key(key_node)
            if key in seen:
                raise _Refused(line, f"{dotted((*path, key))}: duplicate key (first set on line {seen[key]}); "
                                     "YAML would keep only the last one")
            seen[key] = line
            self.lines[(*path, key)] = line
            out[key] = self.build(value_node, (*path, key), depth + 1)
            self.lines[(*path, key)] = line
        return {**{k: v for k, v in merged.items() if k not in out}, **out}

    def _merge(self, value: yaml.Node, path: tuple[Any, ...], depth: int) -> dict[Any, Any]:
        line = value.start_mark.line + 1
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        merged: dict[Any, Any] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise _Refused(line, f"{dotted(path)}: a merge key '<<' takes a mapping or a list of mappings")
            for key, item in self._mapping(source, path, depth + 1).items():
                merged.setdefault(key, item)  # the first mapping listed wins, as YAML says
        return merged

    @staticmethod
    def _key(key_node: yaml.Node) -> Any:
        if isinstance(key_node, yaml.ScalarNode):
            return key_node.value
        raise _Refused(key_node.start_mark.line + 1, "a policy's keys are plain names, not lists or mappings")


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
