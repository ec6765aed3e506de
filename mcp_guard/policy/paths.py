"""Path patterns: argument values compared as the server will read them, not as written.

A rule's ``args`` pattern is a path pattern when it starts with ``/`` or ``~/``, or is written
``path:<glob>``. Its values are normalized the way a POSIX filesystem server resolves them
before the glob is tried: ``//`` and ``/./`` collapse, ``..`` is applied, a trailing ``/`` goes,
``~`` is the home directory, ``file://`` URIs become their path, Unicode is compared in NFC (the
reference filesystem server accepts either form). A relative value is resolved against each of
the server's roots (the ones the client gave it through ``roots/list``); with no roots known, the
guard cannot tell where it points and the call is refused.

A pattern ending in ``/*`` also names the directory itself: ``/etc/*`` covers listing ``/etc``.
Symbolic links are not followed: the guard may not see the server's filesystem. A deny on
``/etc/*`` does not stop a link elsewhere that points into ``/etc``; the server's own roots do.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable, Sequence
from urllib.parse import unquote, urlsplit

__all__ = ["PREFIX", "UnresolvablePath", "is_path_pattern", "path_test", "resolve", "roots_from_uris"]

PREFIX = "path:"


class UnresolvablePath(Exception):
    """A relative path met a path pattern, and the server's roots are unknown."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def is_path_pattern(pattern: str) -> bool:
    return pattern.startswith(("/", "~/", PREFIX)) or pattern == "~"


def _home() -> str:
    return os.path.expanduser("~")


def _clean(path: str) -> str:
    """An absolute POSIX path with ``.``, ``..``, repeated and trailing slashes resolved."""
    cleaned = posixpath.normpath(path)
    # POSIX lets exactly two leading slashes mean something else; Linux and macOS read them as one.
    return "/" + cleaned.lstrip("/")


def resolve(value: str, roots: Sequence[str] | None) -> list[str]:
    """Every absolute path ``value`` may name: one, or one per root for a relative value.

    Raises:
        UnresolvablePath: ``value`` is relative and no roots are known."""
    value = unicodedata.normalize("NFC", value)
    if value.startswith("file:"):
        value = unquote(urlsplit(value).path) or "/"
    if value == "~" or value.startswith("~/"):
        value = _home() + value[1:]
    if value.startswith("/"):
        return [_clean(value)]
    if not roots:
        raise UnresolvablePath(value)
    return [_clean(f"{root}/{value}") for root in roots]


def roots_from_uris(roots: object, local: bool = True) -> tuple[str, ...]:
    """The filesystem paths of a ``roots/list`` result's roots, normalized.

    ``file://`` URIs and plain absolute paths count (the reference filesystem server takes both).
    With ``local`` (a server on this machine) a root's real path is added where a symbolic link
    makes it differ: the server resolves relative paths against the real one."""
    found: list[str] = []
    items = roots.get("roots") if isinstance(roots, dict) else None
    for item in items if isinstance(items, list) else []:
        uri = item.get("uri") if isinstance(item, dict) else None
        if not isinstance(uri, str):
            continue
        try:
            path = resolve(uri, None)[0]
        except UnresolvablePath:
            continue  # a relative root names nothing we could resolve against
        for place in (path, os.path.realpath(path)) if local else (path,):
            if place not in found:
                found.append(place)
    return tuple(found)


def _compile(pattern: str) -> Callable[[str], bool]:
    glob = pattern[len(PREFIX) :] if pattern.startswith(PREFIX) else pattern
    glob = unicodedata.normalize("NFC", glob)
    if glob == "~" or glob.startswith("~/"):
        glob = _home() + glob[1:]
    if glob.startswith("/"):
        glob = _clean(glob)
    matcher = re.compile(fnmatch.translate(glob)).match
    directory = glob[:-2] if glob.endswith("/*") else None
    if directory == "":
        directory = "/"
    return lambda path: path == directory or matcher(path) is not None


def path_test(pattern: str) -> Callable[[object, Sequence[str] | None, bool], bool]:
    """A test of one argument value against a path pattern.

    With ``every`` (an allow rule) all the places a relative value may name must match; otherwise
    (deny, approve, mask) one is enough: an ambiguity never loosens the policy."""
    matches = _compile(pattern)

    def test(value: object, roots: Sequence[str] | None, every: bool) -> bool:
        if not isinstance(value, str):
            return False
        places = resolve(value, roots)
        return all(map(matches, places)) if every else any(map(matches, places))

    return test
