"""The one canonical preview of a suspended call: what every approval surface shows.

Built once per suspended call from the arguments as they will be sent, its text is stored with
the request and its SHA-256 is the request's ``preview_sha256``, shown on every surface and
written to the audit: the person who approves and the record agree on what was seen.

What the text promises:
- every key and value, one line each, nothing cut (sizes given); a surface that cannot hold it
  all shows :func:`excerpt`, head and tail, the digest and where to read the rest;
- values on one line, between quotes, with line breaks, controls, ANSI, bidi and invisible
  characters escaped, so a value can neither forge a line ("Risk: low") nor rewrite a terminal;
- keys that only look like others flagged (NFKC, a small confusables table, mixed alphabets);
- values from the vault as their placeholder and origin (``<EMAIL_1 from crm>``); values the
  model wrote as written, except secrets (in values and in keys alike) and the password of a
  URL's userinfo; destinations (scheme, host, port, path) never masked, paths also normalized.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..masking.detectors.secrets import secret_for_key
from ..masking.mask import locked_detect
from ..masking.vault import PLACEHOLDER
from .escape import escape, escape_key, key_lookalike, one_line, same_skeleton, skeleton

__all__ = ["Preview", "build", "excerpt", "fits"]

# A "<" that would start something shaped like our own markers (<EMAIL_1 ...>, <SECRET ...>) in
# text the model wrote is shown as \x3c, so only the guard can draw those markers.
_MARKER_LIKE = re.compile(r"<(?=[A-Z][A-Z_]{0,20}(?:_\d| ))")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,20}://")
# A URL's authority: after "://", up to the first "/", "?", "#" or space (as URL parsers read it).
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,20}://([^/?#\s]*)")
_SECRET_NOTE = "a secret the model wrote (hidden here; it is sent as written)"
_PASSWORD_NOTE = "a password in the URL (hidden here; it is sent as written)"
_PATH_KEY = re.compile(r"path|file|dir|folder|dest|src|source|target|cwd|root", re.IGNORECASE)


# Each vault placeholder in the arguments -> (servers its value came from, put back toward this one).
Origins = Mapping[str, tuple[tuple[str, ...], bool]]


@dataclass(frozen=True)
class Preview:
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass
class _Lines:
    """What rendering collects: argument lines and the warnings that go above them."""

    body: list[str]
    warnings: list[str]


def build(
    *,
    server: str,
    tool: str,
    risk: str,
    rule: str,
    reason: str,
    arguments: Mapping[str, Any],
    placeholders: Origins | None = None,
    why: str = "",
) -> Preview:
    """The canonical preview. ``placeholders`` maps each vault placeholder in the arguments to
    (the servers its value came from, whether it is put back toward ``server``)."""
    out = _Lines([], [])
    count = 0
    for path, value in _flatten(arguments, out.warnings):
        count += 1
        _value_lines(out, path, value, placeholders or {})
    try:
        size = f"{len(json.dumps(arguments, ensure_ascii=False, default=str))} characters as JSON"
    except (RecursionError, ValueError):  # nested deeper than the encoder goes
        size = "nested too deep to measure as JSON"
    lines = [
        f"mcp-guard: approve {one_line(tool)} on server {one_line(server)}?",
        *([f"Why: {one_line(why)}."] if why else []),
        f"Risk: {one_line(risk)}. Rule '{one_line(rule)}': {one_line(reason)}",
    ]
    if out.warnings:
        lines.append(f"Warnings ({len(out.warnings)}):")
        lines.extend(f"  ! {w}" for w in out.warnings)
    if count:
        lines.append(f"Arguments: {count} value(s), {size}; every key and value is shown in full.")
        lines.extend(out.body)
    else:
        lines.append("Arguments: none.")
    return Preview("\n".join(lines) + "\n")


def _flatten(value: Any, warnings: list[str]) -> Iterator[tuple[str, Any]]:
    """(path, scalar) for every leaf, in the order they are sent; empty containers are leaves.
    A stack, not recursion: nesting as deep as the JSON parser allows cannot overflow it."""
    stack: list[tuple[Any, list[str]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, Mapping) and item:
            alike = same_skeleton([str(k) for k in item])
            children = [(v, [*path, _key_part(str(k), path, alike, warnings)]) for k, v in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list) and item:
            stack.extend(reversed([(v, [*path, f"[{i}]"]) for i, v in enumerate(item)]))
        else:
            yield "".join(path) or "(arguments)", item


def _key_part(key: str, path: list[str], alike: dict[str, list[str]], warnings: list[str]) -> str:
    """One key as a path part; a key drawn like another is shown with codes, and warned of; a
    secret in a key is hidden like one in a value."""
    why = key_lookalike(key)
    twins = next((group for group in alike.values() if key in group), None)
    shown, notes = _shown_key(key, why is not None or twins is not None)
    plain = not notes and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) is not None
    part = (f".{shown}" if path else shown) if plain else f'["{shown}"]'
    where = "".join(path) + part
    if why is not None:
        # What a key looks like would spell out the secret it holds: then only that it deceives.
        warnings.append(f"key {where}: {'is drawn like other characters than it is made of' if notes else why}")
    warnings.extend(f"key {where}: {note}" for note in notes)
    if twins is not None and key == twins[-1]:
        shown_twins = " and ".join(_shown_key(t, True)[0] for t in twins)
        under = f" under {''.join(path)}" if path else ""
        warnings.append(f"keys {shown_twins}{under} are drawn alike: two different keys")
    return part


def _shown_key(key: str, suspect: bool) -> tuple[str, list[str]]:
    """A key for display, with the secrets in it hidden, and the notes that say so. A key drawn
    like a secret (a letter of another script in a token) is hidden whole: its codes spell it out."""
    spans = _secret_spans(key)
    if not spans and skeleton(key) != key and _secret_spans(skeleton(key)):
        spans = [(0, len(key), _SECRET_NOTE)]
    notes: list[str] = []
    shown = _hide_secrets(key, spans, lambda part: _MARKER_LIKE.sub(r"\\x3c", escape_key(part, suspect)), set(), notes)
    return shown, notes


def _value_lines(out: _Lines, path: str, value: Any, placeholders: Origins) -> None:
    if not isinstance(value, str):
        out.body.append(f"  {path} = {escape(json.dumps(value, ensure_ascii=False, default=str), quote=False).text}")
        return
    key = path.rsplit(".", 1)[-1].strip('[]"')
    shown, found, notes = _render_text(value, key, placeholders)
    if found:
        out.warnings.append(f"{path}: " + ", ".join(sorted(found)) + ", shown escaped")
    out.warnings.extend(f"{path}: {note}" for note in notes)
    out.body.append(f'  {path} = "{shown}"  ({len(value)} chars)')
    out.body.extend(f"      {extra}" for extra in _destination(value, key))


def _render_text(text: str, key: str, placeholders: Origins) -> tuple[str, set[str], list[str]]:
    found: set[str] = set()
    notes: list[str] = []
    if secret_for_key(key, text):
        notes.append(_SECRET_NOTE)
        return f"<SECRET hidden, {len(text)} chars>", found, notes
    shown = _hide_secrets(text, _secret_spans(text), lambda part: _plain(part, placeholders, found, notes), found, notes)
    return shown, found, notes


def _hide_secrets(text: str, spans: list[tuple[int, int, str]], plain: Callable[[str], str], found: set[str],
                  notes: list[str]) -> str:
    """``text`` with each span hidden as a secret and the rest rendered by ``plain``; each span's
    note is added to ``notes`` once."""
    parts, last = [], 0
    for start, end, note in spans:
        parts.append(plain(text[last:start]))
        parts.append(_secret(text[start:end], found))
        last = end
        if note not in notes:
            notes.append(note)
    parts.append(plain(text[last:]))
    return "".join(parts)


def _secret_spans(text: str) -> list[tuple[int, int, str]]:
    """Where ``text`` holds a secret, in order and without overlaps, each with its note: what
    the detectors call SECRET, and the password of every URL's userinfo, whatever it looks like."""
    spans = [(s.start, s.end, _SECRET_NOTE) for s in locked_detect(text) if s.label == "SECRET"]
    spans += [(start, end, _PASSWORD_NOTE) for start, end in _url_passwords(text)]
    merged: list[tuple[int, int, str]] = []
    for start, end, note in sorted(spans):
        if merged and start < merged[-1][1]:
            first, last, seen = merged[-1]
            merged[-1] = (first, max(last, end), _PASSWORD_NOTE if _PASSWORD_NOTE in (note, seen) else seen)
        else:
            merged.append((start, end, note))
    return merged


def _url_passwords(text: str) -> Iterator[tuple[int, int]]:
    """The password of each URL's userinfo (``scheme://user:password@host``, ``redis://:pw@host``):
    from the first ":" to the last "@" of the authority, as URL parsers split it."""
    if "://" not in text:
        return
    for m in _AUTHORITY.finditer(text):
        authority, at = m.group(1), m.group(1).rfind("@")
        colon = authority.find(":", 0, max(at, 0))
        if 0 <= colon < at - 1:
            yield m.start(1) + colon + 1, m.start(1) + at


def _plain(text: str, placeholders: Origins, found: set[str], notes: list[str]) -> str:
    """Text the model wrote: escaped, its vault placeholders annotated with where they came from."""
    parts, last = [], 0
    for m in PLACEHOLDER.finditer(text):
        token = m.group()
        entry = placeholders.get(token)
        parts.append(_escaped(text[last : m.start()], found))
        if entry is None:
            parts.append(_escaped(token, found))
            notes.append(f"{token} is no placeholder of this session; it is sent as typed")
        else:
            origins, restored = entry
            where = ", ".join(one_line(o) for o in origins) or "unknown"
            kept = "" if restored else ", sent as the placeholder"
            parts.append(f"{token[:-1]} from {where}{kept}>")
        last = m.end()
    parts.append(_escaped(text[last:], found))
    return "".join(parts)


def _escaped(text: str, found: set[str]) -> str:
    done = escape(text)
    found |= done.found
    return _MARKER_LIKE.sub(r"\\x3c", done.text)


def _secret(text: str, found: set[str]) -> str:
    """A secret hidden; if it is a URL, its scheme and host stay: a destination is never masked."""
    if _URL.match(text):
        try:
            parts = urlsplit(text)
            host = f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
        except ValueError:
            host = ""
        if host and parts.hostname:
            return _escaped(host, found) + f"<SECRET hidden: the rest of this URL, {len(text) - len(host)} chars>"
    return f"<SECRET hidden, {len(text)} chars>"


def _destination(value: str, key: str) -> list[str]:
    """Lines that say where a value really points, when that differs from how it reads."""
    if _URL.match(value):
        return _url_notes(value)
    looks_like_path = value.startswith(("/", "~", "./", "../")) or (bool(_PATH_KEY.search(key)) and "/" in value)
    if not looks_like_path or "\n" in value:
        return []
    if not value.startswith(("/", "~")):
        return ["relative path: the server resolves it against its own working directory or roots"]
    normal = posixpath.normpath(re.sub(r"^/+", "/", value))
    return [f'normalized: "{escape(normal).text}"'] if normal != value else []


def _url_notes(value: str) -> list[str]:
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
    except ValueError:
        return ["not a well-formed URL: the server may read it differently"]
    notes = []
    if parts.password:
        notes.append(f'host: "{escape(host).text}" (before "@" are a user name and a password, not the host)')
    elif parts.username is not None or parts.password is not None:
        notes.append(f'host: "{escape(host).text}" (the part before "@" is a user name, not the host)')
    elif host and not host.isascii():
        try:
            lookalike = key_lookalike(host)
            alarm = f"; it {lookalike}" if lookalike else ""
            notes.append(f'host: "{escape(host).text}", sent as "{host.encode("idna").decode()}"{alarm}')
        except UnicodeError:
            notes.append(f'host: "{escape(host).text}" (not a valid international name)')
    if parts.scheme == "file":
        normal = posixpath.normpath(re.sub(r"^/+", "/", parts.path or "/"))
        if normal != parts.path:
            notes.append(f'normalized path: "{escape(normal).text}"')
    return notes


def _footer(preview: Preview) -> str:
    return f"Preview sha256: {preview.sha256}"


def fits(preview: Preview, limit: int) -> bool:
    """Whether a surface that holds ``limit`` characters can show the whole preview and its digest."""
    return len(preview.text) + len(_footer(preview)) <= limit


def excerpt(preview: Preview, limit: int, where: str) -> str:
    """The preview for a surface that holds at most ``limit`` characters: in full when it fits,
    else its start and end, the digest of the whole, and ``where`` to read all of it."""
    footer, text = _footer(preview), preview.text
    if fits(preview, limit):
        return text + footer
    notice = (
        f"! This preview is {len(text)} characters, too long to show here in full: its start and end follow.\n"
        f"! Read all of it before you approve: {where}\n"
    )
    budget = max(200, limit - len(notice) - len(footer) - 160)
    head, tail_from = text[: budget * 2 // 3], len(text) - budget // 3
    line_start = text.find("\n", tail_from)
    tail = text[line_start + 1 :] if 0 <= line_start < len(text) - 1 else "…(continued) " + text[tail_from:]
    hidden = len(text) - len(head) - len(tail)
    return notice + head + f"…\n… [{hidden} characters not shown here: {where}] …\n" + tail + footer
