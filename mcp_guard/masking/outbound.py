"""Masking whole messages on their way to the client: every string, wherever it sits.

The walkers in :mod:`.mask` know the MCP shapes that carry tool output. A hostile upstream puts
data everywhere else too: ``_meta``, descriptions and schemas in listings, error messages and
data, log and progress notifications, completion values, ``instructions``, base64 blobs. So what
goes to the client is walked as a tree: every string value is masked except the few protocol
fields the client must read as they are (versions, tokens, progress numbers), and those only
where the protocol puts them (:data:`STRUCTURAL`).

Three shapes get more than a string-by-string look:

- the text blocks of a list are also checked as one text, in order, whatever other blocks sit
  between them, so a value split across two blocks is found (the placeholder goes where the
  value starts, the rest of the value is cut);
- base64 content (``blob``, and ``data`` of image and audio blocks) is decoded: bytes that are
  UTF-8 text are masked as text and encoded again; other bytes that carry a secret or a value the
  vault holds are withheld, the block replaced by a notice;
- a result the pipeline has already walked is marked (:class:`Masked`) and not walked twice.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import sys
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from ..protocol.era import GuardState
from .detectors.secrets import secret_tree_key
from .mask import bare_value_key, in_field, read_as

if TYPE_CHECKING:
    from .mask import Masker
    from .spans import Span

logger = logging.getLogger(__name__)

__all__ = [
    "PARAMS_FIELDS", "RESULT_FIELDS", "GuardQuestion", "Masked", "STRUCTURAL", "carries", "in_worker", "mask_body", "mask_message", "mask_tree", "off_loop", "parts",
    "weight_over",
]

# Fields the client must read as they are (versions, tokens, the numbers of a progress report,
# the id a cancellation names), and ``requestState``, which only the client holds and returns
# (the guard's own is sealed). Each is kept only where the protocol puts it, at the top of a
# ``result`` (and of its ``_meta``) or of a request's or notification's ``params`` (and of its
# ``_meta``), and only with the type it has there (:func:`mask_body`): a result's "total", a
# progress count written as text, a "protocolVersion" that is no date, are data an upstream
# wrote, masked like the rest, as is every such name anywhere deeper (a record's "id", a
# schema's "protocolVersion"). The message's own ``jsonrpc``, ``id`` and ``method`` are the
# guard's to set. Everything else an upstream wrote is masked, enum-like fields (``type``,
# ``mimeType``, ``level``) and cursors too: an honest value there never looks sensitive, and a
# hostile one breaks the message rather than leaking.
_NUMBER = "number"
_ID = "id"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# requestState: only the guard's own (era.GuardState; an upstream's goes out sealed inside one).
RESULT_FIELDS = {"protocolVersion": _DATE, "requestState": GuardState, "ttlMs": _NUMBER}
# In params, by method (the relay itself writes these: the client's own progress token, the id
# of the guard's request a cancellation names), and in the _meta of any params.
PARAMS_FIELDS = {
    "notifications/progress": {"progressToken": _ID, "progress": _NUMBER, "total": _NUMBER},
    "notifications/cancelled": {"requestId": _ID},
}
PARAMS_META = {"io.modelcontextprotocol/subscriptionId": _ID}
STRUCTURAL = frozenset(RESULT_FIELDS).union(*PARAMS_FIELDS.values(), PARAMS_META)
# Above this many characters of strings, masking runs in a worker thread, off the event loop.
THREAD_CHARS = 32_768
# While a worker thread runs a job in Python it holds the GIL, and the event loop, each time it
# wakes (a ping wakes it several times), waits for it up to the interpreter's switch interval
# (5 ms by default). While such a job runs the interval is this, so those waits stay short.
WORKER_SWITCH_S = 0.0005
# The labels that withhold binary content: bytes are not text, so only what stays a secret in
# any encoding (keys, tokens) and values the vault already holds are looked for there.
BINARY_LABELS = frozenset({"SECRET"})
WITHHELD = "mcp-guard: binary content ({mime}) was withheld because it carries a secret or a masked value"

T = TypeVar("T")


class Masked(dict):  # type: ignore[type-arg]
    """A result the pipeline has already masked as a whole tree (never built from wire data)."""


class GuardQuestion(dict):  # type: ignore[type-arg]
    """The params of the guard's own question to the person (an approval's elicitation), made by the
    relay's asker from the canonical preview, never from wire data. The egress passes it unmasked: the
    preview already hides secrets and shows vault values as placeholders, and masking it again would
    show the person other text than the preview its digest was taken of (an address as <EMAIL_1>).
    A JSON parser never builds this type, so an upstream's elicitation cannot pass as one."""


def mask_message(masker: Masker, message: dict[str, Any], origin: str) -> dict[str, Any]:
    """A JSON-RPC message with everything the upstream could have put in it masked."""
    out = dict(message)
    result = message.get("result")
    if result is not None and not isinstance(result, Masked):
        out["result"] = mask_body(masker, result, origin, RESULT_FIELDS)
    if isinstance(message.get("error"), dict):
        error = dict(message["error"])
        for key in ("message", "data"):
            if key in error:
                error[key] = mask_tree(masker, error[key], origin)
        out["error"] = error
    if "params" in message:
        fields = PARAMS_FIELDS.get(message.get("method"), {})  # type: ignore[call-overload]
        out["params"] = mask_body(masker, message["params"], origin, fields, PARAMS_META)
    return out


def mask_body(
    masker: Masker, body: Any, origin: str, fields: dict[str, Any], meta: dict[str, Any] | None = None
) -> Any:
    """A message's ``params`` or ``result`` masked, but those of ``fields`` at its top, and of
    ``meta`` (default: ``fields``) at the top of its ``_meta``, that have their type there."""
    if not isinstance(body, dict) or isinstance(body, GuardQuestion):
        return mask_tree(masker, body, origin)  # (the guard's own question passes as it is)
    return _mask_keeping(masker, body, origin, fields, fields if meta is None else meta)


def _mask_keeping(
    masker: Masker, value: dict[str, Any], origin: str, fields: dict[str, Any], meta: dict[str, Any] | None
) -> dict[str, Any]:
    """``value`` masked but those of ``fields`` that have their type; its ``_meta`` by ``meta``."""
    kept = {key: value[key] for key, kind in fields.items() if key in value and _typed(value[key], kind)}
    nested = value.get("_meta") if meta is not None else None
    if isinstance(nested, dict):
        kept["_meta"] = _mask_keeping(masker, nested, origin, meta, None)  # type: ignore[arg-type]
    return {**mask_tree(masker, {k: v for k, v in value.items() if k not in kept}, origin), **kept}


def _typed(value: Any, kind: Any) -> bool:
    if isinstance(value, bool):
        return False  # (a bool is an int to Python, and none of these fields)
    if kind is _NUMBER:
        return isinstance(value, int | float)
    if kind is _ID:
        return isinstance(value, int | str)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return isinstance(value, str) and kind.fullmatch(value) is not None


def mask_tree(masker: Masker, value: Any, origin: str) -> Any:
    """Every string in ``value`` masked, object keys too; nothing is kept by its name alone."""
    if isinstance(value, GuardQuestion):
        return value
    if isinstance(value, str):
        return masker.text(value, origin)
    if isinstance(value, dict):
        return _mask_dict(masker, value, origin)
    if isinstance(value, list):
        return _mask_list(masker, value, origin)
    return masker.value(value, origin)  # numbers long enough to be card numbers or phones


def _mask_dict(masker: Masker, value: dict[str, Any], origin: str) -> dict[str, Any]:
    binary = _binary_key(value)
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == binary:
            return _mask_binary(masker, value, key, origin)
        elif isinstance(item, dict | list) and "SECRET" in masker.labels and secret_tree_key(key):
            out[masker.key(key, origin)] = masker.secret_tree(key, item, origin)  # {"secrets": {...}}, {"api_keys": [...]}
        elif in_field(item) or isinstance(item, dict) and bare_value_key(item) is not None:
            out[masker.key(key, origin)] = masker.field(read_as(value, key), item, origin)  # read with its key
        else:
            out[masker.key(key, origin)] = mask_tree(masker, item, origin)
    return out


def _mask_list(masker: Masker, items: list[Any], origin: str) -> list[Any]:
    items = _split_values_masked(masker, items, origin)
    return [mask_tree(masker, item, origin) for item in items]


# -- a value split across text blocks -----------------------------------------------------


def _text_of(item: Any) -> str | None:
    if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
        return item["text"]  # type: ignore[no-any-return]
    return None


def _split_values_masked(masker: Masker, items: list[Any], origin: str) -> list[Any]:
    """``items`` where the text blocks, read in order as one text (what the model reads), had the
    values that span two of them cut. Blocks of other kinds between them (an image, a link) do
    not keep the halves of a value apart: the model reads past them too."""
    at = [i for i, item in enumerate(items) if _text_of(item) is not None]
    if len(at) < 2:
        return items
    out = list(items)
    for i, block in zip(at, _cut_run(masker, [items[i] for i in at], origin)):
        out[i] = block
    return out


def _cut_run(masker: Masker, blocks: list[dict[str, Any]], origin: str) -> list[dict[str, Any]]:
    texts = [b["text"] for b in blocks]
    bounds, at = [], 0
    for text in texts:
        bounds.append((at, at + len(text)))
        at += len(text)
    joined = "".join(texts)
    across, inside = [], {}
    for span in masker.spans(joined):
        first = _block_of(bounds, span.start)
        if first != _block_of(bounds, span.end - 1):
            across.append(span)
        else:
            inside.setdefault(first, []).append(span)
    # A value inside one block that only the text before it names ("password=" | "Zq7r..."):
    # the block read alone does not find it, the text the model reads does.
    for k, spans in inside.items():
        across.extend(_not_within(spans, masker.spans(texts[k]), bounds[k][0]))
    if not across:
        return blocks
    across.sort(key=lambda s: s.start)
    out_texts = list(texts)
    for span in reversed(across):  # right to left, so earlier offsets still hold
        first, last = _block_of(bounds, span.start), _block_of(bounds, span.end - 1)
        placeholder = masker.mask_span(joined, span, origin)
        lo, hi = bounds[first][0], bounds[last][0]
        if first == last:
            out_texts[first] = out_texts[first][: span.start - lo] + placeholder + out_texts[first][span.end - lo :]
            continue
        out_texts[last] = out_texts[last][span.end - hi :]
        for middle in range(first + 1, last):
            out_texts[middle] = ""
        out_texts[first] = out_texts[first][: span.start - lo] + placeholder
    return [{**b, "text": t} for b, t in zip(blocks, out_texts)]


def _not_within(spans: list[Span], own: list[Span], shift: int) -> Iterator[Span]:
    """The spans of ``spans`` that no span of ``own`` (offsets ``shift`` lower) contains, in one
    sweep of both by start: a span is contained when the furthest end among the own spans that
    start at or before it reaches its end."""
    ends = sorted((o.start + shift, o.end + shift) for o in own)
    j, reach = 0, -1
    for span in sorted(spans, key=attrgetter("start")):
        while j < len(ends) and ends[j][0] <= span.start:
            reach = max(reach, ends[j][1])
            j += 1
        if reach < span.end:
            yield span


def _block_of(bounds: list[tuple[int, int]], offset: int) -> int:
    lo, hi = 0, len(bounds) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if bounds[mid][1] <= offset:
            lo = mid + 1
        else:
            hi = mid
    return lo


# -- base64 content ------------------------------------------------------------------------------


def _binary_key(value: dict[str, Any]) -> str | None:
    if isinstance(value.get("blob"), str):
        return "blob"
    if value.get("type") in ("image", "audio") and isinstance(value.get("data"), str):
        return "data"
    return None


def _mask_binary(masker: Masker, value: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    rest = {k: (v if k == key else mask_tree(masker, v, origin)) for k, v in value.items()}
    try:
        raw = base64.b64decode(value[key], validate=True)
    except (binascii.Error, ValueError):
        return _withheld(rest, key)  # not base64: the client could not read it as such either
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        masked = masker.text(text, origin)
        if masked != text:
            rest[key] = base64.b64encode(masked.encode("utf-8")).decode("ascii")
        return rest
    if masker.binary_carries(raw.decode("latin-1"), BINARY_LABELS):
        return _withheld(rest, key)
    return rest


def _withheld(value: dict[str, Any], key: str) -> dict[str, Any]:
    mime = value.get("mimeType") if isinstance(value.get("mimeType"), str) else "unknown type"
    notice = WITHHELD.format(mime=mime)
    logger.info("withheld %s content", mime)
    if key == "blob":  # resource contents: the same shape, as text
        out = {k: v for k, v in value.items() if k not in ("blob", "mimeType")}
        return {**out, "mimeType": "text/plain", "text": notice}
    out = {k: v for k, v in value.items() if k not in ("data", "mimeType", "type")}
    return {**out, "type": "text", "text": notice}


# -- cost ------------------------------------------------------------------------------------------


def weight_over(value: Any, limit: int) -> bool:
    """Whether the strings in ``value`` add up to more than ``limit`` characters (stops early)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
            if total > limit:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parts(message: dict[str, Any]) -> list[Any]:
    """What of a message the upstream may have written (a marked result is done already)."""
    result = message.get("result")
    return [None if isinstance(result, Masked) else result, message.get("error"), message.get("params")]


def carries(message: dict[str, Any]) -> bool:
    """Whether anything in ``message`` could hold data (a ping's answer, ``{}``, cannot)."""
    return any(has_strings(part) for part in parts(message) if part is not None)


def has_strings(value: Any) -> bool:
    """Whether ``value`` holds any string or long number at all (a ping's ``{}`` does not)."""
    return weight_over(value, 0) or _has_numbers(value)


def _has_numbers(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_numbers(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_numbers(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


async def off_loop(lock: anyio.Lock, heavy: bool, fn: Callable[..., T], *args: Any) -> T:
    """Run a masking job; a heavy one in a worker thread, so other sessions keep being served.

    Jobs run one at a time (``lock``): the vault and the detectors' scratch space are shared,
    and a small job waiting here waits without holding up the event loop. A small job that
    finds the lock free runs at once without taking it: it never yields, so nothing else can
    start a job before it ends, and anyio's ``acquire`` would cost a trip round the event loop."""
    if not heavy and not lock.locked():
        return fn(*args)
    async with lock:
        if heavy:
            return await in_worker(fn, *args)
        return fn(*args)


async def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, with the GIL handed back to the event loop often."""
    with _prompt_switching():
        return await anyio.to_thread.run_sync(fn, *args)


_workers = 0
_interval = 0.0


@contextlib.contextmanager
def _prompt_switching() -> Iterator[None]:
    """The short switch interval while at least one worker job runs (entered on the loop thread only)."""
    global _workers, _interval
    if _workers == 0:
        _interval = sys.getswitchinterval()
        sys.setswitchinterval(min(_interval, WORKER_SWITCH_S))
    _workers += 1
    try:
        yield
    finally:
        _workers -= 1
        if _workers == 0:
            sys.setswitchinterval(_interval)
