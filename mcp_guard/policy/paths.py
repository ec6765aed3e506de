"""Path patterns: argument values compared as the server will read them, not as written.

A rule's ``args`` pattern is a path pattern when it starts with ``/`` or ``~/``, or is written
``path:<glob>``. Its values are normalized the way a POSIX filesystem server resolves them
before the glob is tried: ``//`` and ``/./`` collapse, ``..`` is applied, a trailing ``/`` goes,
``~`` is the home directory, ``file://`` URIs become their path, Unicode is compared in NFC (the
reference filesystem server accepts either form). A relative value is resolved against each of
the server's roots (the ones the client gave it through ``roots/list``); with no roots known, the
guard cannot tell where it points and the call is refused.

A pattern ending in ``/*`` also names the directory itself: ``/etc/*`` covers listing ``/etc``.

Symbolic links: for a server on this machine (stdio) the value is judged in two forms, as written
(normalized) and as the filesystem resolves it (``os.path.realpath``: the links that exist are
followed, so ``/proc/self/root/etc/hosts`` and a link to ``/etc`` in the server's folder are
``/etc/hosts``). A deny matches if either form matches; an allow needs both; a pattern whose
literal folder is itself a link (macOS's ``/tmp``) also matches at its real place. For a server reached
over HTTP the guard cannot see its filesystem, so links are not followed: a deny on ``/etc/*``
does not stop a link on that machine that points into ``/etc``; the server's own roots must.

``~`` in a value is the server's home: the ``HOME`` its config sets, else the guard's (a server
over HTTP is assumed to share the guard's). ``~`` in a pattern is always the guard's home: a
pattern names a place as the policy's author sees it.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "PREFIX", "Host", "UnresolvablePath", "host_of", "is_path_pattern", "path_test", "places", "resolve",
    "roots_from_uris",
]

PREFIX = "path:"


class UnresolvablePath(Exception):
    """A relative path met a path pattern, and the server's roots are unknown."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


@dataclass(frozen=True)
class Host:
    """Where a server reads its paths: on this machine (its links are ours to resolve), and its home."""

    local: bool = False
    home: str | None = None  # None: the guard's own


def host_of(transport: Any) -> Host:
    """The host of an upstream's transport: a stdio child is local, with the HOME its config sets."""
    if hasattr(transport, "url"):
        return Host(local=False)
    env = getattr(transport, "env", None) or {}
    home = env.get("HOME") if isinstance(env, dict) else None
    return Host(local=True, home=home if isinstance(home, str) and home.startswith("/") else None)


def is_path_pattern(pattern: str) -> bool:
    return pattern.startswith(("/", "~/", PREFIX)) or pattern == "~"


def _home() -> str:
    return os.path.expanduser("~")


def _clean(path: str) -> str:
    """An absolute POSIX path with ``.``, ``..``, repeated and trailing slashes resolved."""
    cleaned = posixpath.normpath(path)
    # POSIX lets exactly two leading slashes mean something else; Linux and macOS read them as one.
    return "/" + cleaned.lstrip("/")


def resolve(value: str, roots: Sequence[str] | None, home: str | None = None) -> list[str]:
    """Every absolute path ``value`` may name: one, or one per root for a relative value.

    ``home``: what ``~`` means to the server (None: the guard's home).

    Raises:
        UnresolvablePath: ``value`` is relative and no roots are known."""
    value = unicodedata.normalize("NFC", value)
    if value.startswith("file:"):
        value = unquote(urlsplit(value).path) or "/"
    if value == "~" or value.startswith("~/"):
        value = (home or _home()) + value[1:]
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


def _compile(pattern: str) -> tuple[Callable[[str], bool], Callable[[str], bool] | None]:
    """The pattern's test, and for a pattern whose literal folder is reached through a link on
    this machine (``/work`` -> ``/data/work``), the same test on the folder's real path (None if
    it has none): a local server's resolved path lands there."""
    glob = pattern[len(PREFIX) :] if pattern.startswith(PREFIX) else pattern
    glob = unicodedata.normalize("NFC", glob)
    if glob == "~" or glob.startswith("~/"):
        glob = _home() + glob[1:]
    if glob.startswith("/"):
        glob = _clean(glob)
    real = _real_glob(glob)
    return _glob_test(glob), (_glob_test(real) if real is not None else None)


def _glob_test(glob: str) -> Callable[[str], bool]:
    matcher = re.compile(fnmatch.translate(glob)).match
    directory = glob[:-2] if glob.endswith("/*") else None
    if directory == "":
        directory = "/"
    return lambda path: path == directory or matcher(path) is not None


_GLOB_CHARS = re.compile(r"[*?\[]")


def _real_glob(glob: str) -> str | None:
    """``glob`` with its literal leading folders resolved through existing links, when that changes it."""
    if not glob.startswith("/"):
        return None
    parts = glob.split("/")
    literal = next((i for i, part in enumerate(parts) if _GLOB_CHARS.search(part)), len(parts))
    head = "/".join(parts[:literal]) or "/"
    real = _real(head)
    if real is None or real == head:
        return None
    return "/".join([real.rstrip("/"), *parts[literal:]]) if literal < len(parts) else real


def places(value: str, roots: Sequence[str] | None, host: Host | None = None) -> list[str]:
    """Every absolute path ``value`` may name on ``host``: as written (normalized) and, on this
    machine, as its existing symbolic links resolve."""
    host = host or Host()
    found = resolve(value, roots, host.home)
    if host.local:
        for path in list(found):
            real = _real(path)
            if real is not None and real not in found:
                found.append(real)
    return found


def _real(path: str) -> str | None:
    try:
        return unicodedata.normalize("NFC", os.path.realpath(path))
    except (ValueError, OSError):
        return None  # a NUL byte, or a path the OS will not even look up: the written form is judged alone


def path_test(pattern: str) -> Callable[[object, Sequence[str] | None, bool, Host | None], bool]:
    """A test of one argument value against a path pattern.

    With ``every`` (an allow rule) all the places a value may name (each root for a relative one,
    the written and the resolved form) must match; otherwise (deny, approve, mask) one is enough:
    an ambiguity never loosens the policy."""
    written, real = _compile(pattern)
    local = written if real is None else (lambda path: written(path) or real(path))

    def test(value: object, roots: Sequence[str] | None, every: bool, host: Host | None = None) -> bool:
        if not isinstance(value, str):
            return False
        named = places(value, roots, host)
        matches = local if host is not None and host.local else written
        return all(map(matches, named)) if every else any(map(matches, named))

    return test
