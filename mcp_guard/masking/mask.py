"""Masking MCP payloads: operators per label, and walkers over every shape that reaches the model.

The default operator is our typed placeholder (``<EMAIL_1>``, kept in the session's vault so it
can be put back toward the server it came from). The others come from presidio-anonymizer:
``replace``, ``redact``, ``mask``, ``hash``, ``encrypt``; ``keep`` leaves a label readable.

Walkers cover text content, JSON inside text (the result stays valid JSON), structured
content, embedded resources and resource links, ``resources/read`` contents, ``prompts/get``
messages, and the sampling and elicitation requests upstreams send toward the client.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Any

from .detect import Span, detect, secret_for_key, with_repeats
from .detectors.secrets import number_secret_for_key, secret_in_tree, secret_tree_key
from .detectors.tables import column_value, key_column
from .spans import PRIORITY, outermost
from .vault import Vault

NerFinder = Callable[[str], list[Span]]

DEFAULT_MASKED = frozenset({"SECRET", "EMAIL", "PHONE", "CREDIT_CARD", "US_SSN", "IBAN", "PERSON", "LOCATION"})
PRESIDIO_OPERATORS = frozenset({"replace", "redact", "mask", "hash", "encrypt"})
# JSON numbers this long may be card numbers, SSNs or phones written without quotes.
_NUMBER_DIGITS = 9
# Long texts are read in windows of this many characters, each with this much context around it
# (longer than any one value the detectors find, a PEM block included).
_WINDOW = 65_536
_CONTEXT = 8_192
# Below this many values the vault's search is rebuilt whenever the vault grows.
_EXACT_UNTIL = 32
# A value of at most this many characters, on one line, under an object key is also read with
# its key before it (``"city": "Lisbon"``), as the detectors see it in the raw JSON text: names,
# places, bare SSNs and phones are labeled by their key. (Longer values are text of their own.)
_FIELD = 200
_SCALARS = (str, int, float)
# The name of a name/value object (FHIR's telecom, a settings list, a form's fields), by key.
_NAME_KEYS = (
    "name", "key", "system", "label", "field", "type", "kind", "Name", "Key", "Type", "Kind", "Label", "Field",
    "ParameterKey", "OptionName", "variable", "Variable", "attribute", "Attribute",
)
_VALUE_KEYS = ("value", "Value", "ParameterValue", "number", "Number", "val")
# DynamoDB's typed attribute values: {"S": "Jane Doe"} is still its key's value.
_TYPE_TAGS = frozenset({"S", "N", "SS", "NS"})


class Operator:
    """How one label is masked: ``name`` plus the presidio operator's parameters."""

    __slots__ = ("name", "params")

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.params = dict(params or {})


_PLACEHOLDER = Operator("placeholder")
_LABEL = attrgetter("label")

# The detectors share one Hyperscan scratch space (masking/fast.py), which serves one scan at a
# time, and a scan releases the GIL. Masking now also runs in worker threads, so every detector
# call takes this lock; long texts hold it one window at a time, so a caller on the event loop
# waits a few milliseconds at most.
DETECT_LOCK = threading.Lock()


# Short texts recur in every message (keys such as "content", values such as "text", a tool's
# usual answer), and detection is a pure function of the text and the labels: their spans are
# kept, so the detectors read each one once. Not with a NER model (its answer is its own).
_SHORT = 64
_SHORT_ENTRIES = 8192
_short: dict[tuple[str, frozenset[str] | None], tuple[Span, ...]] = {}


def locked_detect(text: str, labels: frozenset[str] | None = None, ner: NerFinder | None = None) -> list[Span]:
    if ner is None and len(text) <= _SHORT:
        return _short_detect(text, labels)
    with DETECT_LOCK:
        return detect(text, labels, ner)


def _short_detect(text: str, labels: frozenset[str] | None) -> list[Span]:
    key = (text, labels)
    found = _short.get(key)
    if found is None:
        with DETECT_LOCK:
            found = tuple(detect(text, labels))
        if len(_short) >= _SHORT_ENTRIES:
            _short.clear()  # a hostile stream of distinct short texts costs a detection each, never memory
        _short[key] = found
    return list(found)


def default_operators() -> dict[str, Operator]:
    return {label: Operator("placeholder") for label in DEFAULT_MASKED}


def detect_long(text: str, labels: frozenset[str] | None = None, ner: NerFinder | None = None) -> list[Span]:
    """The detectors' spans, a window at a time for long texts: masking may run in a worker
    thread, and one detector pass over a whole megabyte would hold the GIL (and the detectors'
    lock) long enough to stall the event loop. Each window also reads ``_CONTEXT`` characters on
    either side, so a value (or the ``key=`` before it) that straddles a window's edge is found."""
    if len(text) <= _WINDOW + 2 * _CONTEXT:
        return locked_detect(text, labels, ner)
    found: list[Span] = []
    start = 0
    while start < len(text):
        limit = min(len(text), start + _WINDOW)
        lo = max(0, start - _CONTEXT)
        with DETECT_LOCK:  # copies of what a window found are looked for once, in the whole text, below
            spans = detect(text[lo : limit + _CONTEXT], labels, ner, repeats=False)
        last = found[-1].end if found else -1
        for span in spans:
            at = span.start + lo
            if start <= at < limit and at >= last:
                kept = span if not lo else Span(at, span.end + lo, span.label)
                found.append(kept)
                last = kept.end
        start = max(limit, found[-1].end if found else limit)
    return with_repeats(text, found)  # pure Python over the whole text: the detectors' lock is not needed


class Masker:
    """Masks values coming from one upstream (``origin``) into one session's vault."""

    def __init__(
        self, operators: Mapping[str, Operator], vault: Vault, labels: frozenset[str] | None = None, ner: NerFinder | None = None
    ) -> None:
        # ``labels``: the operators' labels but "keep", when the caller already knows them.
        self.ner = ner
        self.operators = operators
        self.labels = labels if labels is not None else frozenset(label for label, op in operators.items() if op.name != "keep")
        self.vault = vault
        self.found: Counter[str] = Counter()
        self._finder: Any = None  # the vault's search, taken on first use (in the job's thread)

    # -- text -----------------------------------------------------------------------------------

    def text(self, text: str, origin: str, lead: str = "") -> str:
        """``text`` masked. ``lead`` is what stood before it in its JSON (:meth:`field`)."""
        if not text or not (self.labels or len(self.vault)):
            return text
        stripped = text.lstrip()
        if stripped[:1] in ("{", "[", '"') and len(stripped) > 1:
            masked_json = self._json_text(text, origin)
            if masked_json is not None:
                return masked_json
        if (
            self.ner is None and len(text) <= _SHORT and _short.get((text, self.labels)) == () and not len(self.vault)
            and (not lead or _short.get((_keyed_text(lead, text), self.labels)) == ())
        ):
            return text  # read before and nothing found (most keys, types, a tool's usual words): no walk again
        spans = self.spans(text, lead)
        if not spans:
            return text
        return self._apply(text, spans, origin)

    def spans(self, text: str, lead: str = "") -> list[Span]:
        """What to mask in ``text``: the detectors' finds, and values the vault already holds
        wherever they reappear (a value laundered through a server comes back masked)."""
        found = self._detect(text, lead) if self.labels else []
        known = self._known(text)
        if not known:
            return found
        return _merge(known, found)

    def _json_text(self, text: str, origin: str) -> str | None:
        try:
            data = json.loads(text, object_pairs_hook=_object)
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, (dict, list, str)):
            return None
        before = sum(self.found.values())
        masked = self.value(data, origin)
        if sum(self.found.values()) == before:
            return text
        indent = 2 if "\n" in text.strip() else None
        return json.dumps(masked, ensure_ascii=False, indent=indent)

    def _known(self, text: str) -> list[Span]:
        """Values the vault holds, found again in ``text``. The search is rebuilt as the vault
        grows during this job: each time while it is small (cheap), then each time it has doubled,
        so a job that adds thousands of values stays linear."""
        size = len(self.vault)
        if not size:
            return []
        finder = self._finder
        grown = size - finder.size if finder is not None else size
        if finder is None or (grown > 0 and (finder.size < _EXACT_UNTIL or grown >= finder.size)):
            finder = self._finder = self.vault.finder()
        return finder.find(text)  # type: ignore[no-any-return]

    def _detect(self, text: str, lead: str = "") -> list[Span]:
        # Nested spans come only from a URL around what it holds, when URLs are masked too: the
        # URL's placeholder hides all of it.
        return outermost(detect_field(text, lead, self.labels, self.ner))

    def _apply(self, text: str, spans: list[Span], origin: str) -> str:
        labels = list(map(_LABEL, spans))  # (a text may hold tens of thousands of spans of a few labels)
        if any(self._operator(label) != "placeholder" for label in set(labels)):
            return self._presidio(text, spans, origin)
        self.found.update(labels)
        return self.vault.replace(text, spans, origin)

    def _presidio(self, text: str, spans: list[Span], origin: str) -> str:
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        operators = {}
        for label in {s.label for s in spans}:
            op = self.operators.get(label) or _PLACEHOLDER
            if op.name == "placeholder":
                operators[label] = OperatorConfig(
                    "custom", {"lambda": lambda value, _l=label: self.vault.placeholder(_l, value, origin)}
                )
            else:
                operators[label] = OperatorConfig(op.name, presidio_params(op.name, op.params, label))
        results = [RecognizerResult(s.label, s.start, s.end, 1.0) for s in spans]
        for span in spans:
            self.found[span.label] += 1
        return str(_engine().anonymize(text=text, analyzer_results=results, operators=operators).text)

    def _operator(self, label: str) -> str:
        op = self.operators.get(label)
        return "placeholder" if op is None else op.name

    # -- JSON values ----------------------------------------------------------------------------

    def value(self, value: Any, origin: str, lead: str = "") -> Any:
        if isinstance(value, str):
            return self.text(value, origin, lead)
        if isinstance(value, Repeated):
            return Repeated([(self.key(key, origin), self.field(read_as(value, key), item, origin)) for key, item in value.pairs])
        if isinstance(value, dict):
            return {self.key(key, origin): self.field(read_as(value, key), item, origin) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, origin) for item in value]
        if isinstance(value, int | float) and not isinstance(value, bool) and (as_text := _digits(value)):
            masked = self.text(as_text, origin, lead)
            return value if masked == as_text else masked
        return value

    def key(self, key: Any, origin: str) -> Any:
        """An object key masked like any text: a server can put an email or a token there too."""
        return self.text(key, origin) if isinstance(key, str) and len(key) >= 4 else key

    def field(self, key: Any, item: Any, origin: str) -> Any:
        """A value under an object key. Under a secret-like key it is a secret whatever it looks
        like (``{"password": ...}``); a string or number (or a list of them) is also read with its
        key before it, as the raw JSON text has it (``"full_name": "Jane Doe"``, ``"ssn":
        123456789``, ``"given": ["Jane"]``), so the key can say what it is."""
        if "SECRET" in self.labels and secret_under(key, item):
            return self.secret(str(item), origin)
        if "SECRET" in self.labels and isinstance(item, dict | list) and isinstance(key, str) and secret_tree_key(key):
            return self.secret_tree(key, item, origin)
        if isinstance(item, dict) and (inner := bare_value_key(item)) is not None:
            # {"api_key": {"value": ...}}, {"ssn": {"value": ..., "verified": true}}: the key's value still
            return {self.key(k, origin): self.field(key if k == inner else k, one, origin) for k, one in item.items()}
        lead = lead_of(key, item)
        if not lead:
            return self.value(item, origin)
        if isinstance(item, dict):
            ((tag, inner),) = item.items()  # DynamoDB's {"S": "..."}: the value is still the key's
            return {tag: self.field(key, inner, origin)}
        if isinstance(item, list):
            return [
                self.secret(str(one), origin) if "SECRET" in self.labels and secret_under(key, one)
                else self.value(one, origin, lead if isinstance(one, _SCALARS) else "")
                for one in item
            ]
        return self.value(item, origin, lead)

    def secret_tree(self, tree_key: str, item: Any, origin: str, key: str = "") -> Any:
        """An object or list under a key that names secrets (``{"secrets": {"db": ...}}``,
        ``{"api_keys": [...]}``, ``{"password": {"current": ...}}``): each value in it is one of
        them unless its own key says it describes one (``type``, ``name``, ``expires_at``)."""
        if isinstance(item, Repeated):
            return Repeated([(self.key(k, origin), self.secret_tree(tree_key, one, origin, k)) for k, one in item.pairs])
        if isinstance(item, dict):
            return {self.key(k, origin): self.secret_tree(tree_key, one, origin, k) for k, one in item.items()}
        if isinstance(item, list):
            return [self.secret_tree(tree_key, one, origin, key) for one in item]
        if _tree_leaf_secret(tree_key, key, item):
            return self.secret(str(item), origin)
        return self.field(key, item, origin) if key else self.value(item, origin)

    def secret(self, item: str, origin: str) -> str:
        return self._apply(item, [Span(0, len(item), "SECRET")], origin)

    def mask_span(self, text: str, span: Span, origin: str) -> str:
        """What one span of ``text`` becomes (its placeholder, or its operator's output)."""
        value = text[span.start : span.end]
        return self._apply(value, [Span(0, len(value), span.label)], origin)

    def binary_carries(self, text: str, labels: frozenset[str]) -> bool:
        """Whether bytes read as text hold a value of ``labels`` or one the vault holds."""
        wanted = labels & self.labels
        return bool((wanted and detect_long(text, wanted)) or self._known(text))

    # -- MCP shapes -----------------------------------------------------------------------------

    def content_block(self, block: Any, origin: str) -> Any:
        if not isinstance(block, dict):
            return block
        kind = block.get("type")
        out = dict(block)
        if kind == "text" and isinstance(block.get("text"), str):
            out["text"] = self.text(block["text"], origin)
        elif kind == "resource" and isinstance(block.get("resource"), dict):
            out["resource"] = self.resource_contents(block["resource"], origin)
        elif kind == "resource_link":
            for key in ("uri", "name", "title", "description"):
                if isinstance(block.get(key), str):
                    out[key] = self.text(block[key], origin)
        return out

    def resource_contents(self, contents: Any, origin: str) -> Any:
        if not isinstance(contents, dict):
            return contents
        out = dict(contents)
        if isinstance(contents.get("text"), str):
            out["text"] = self.text(contents["text"], origin)
        return out

    def tool_result(self, result: Any, origin: str) -> Any:
        if not isinstance(result, dict):
            return result
        out = dict(result)
        if isinstance(result.get("content"), list):
            out["content"] = [self.content_block(b, origin) for b in result["content"]]
        if "structuredContent" in result:
            out["structuredContent"] = self.value(result["structuredContent"], origin)
        if isinstance(result.get("inputRequests"), dict):
            out["inputRequests"] = self.input_requests(result["inputRequests"], origin)
        return out

    def read_result(self, result: Any, origin: str) -> Any:
        if not isinstance(result, dict) or not isinstance(result.get("contents"), list):
            return self.tool_result(result, origin)
        out = dict(result)
        out["contents"] = [self.resource_contents(c, origin) for c in result["contents"]]
        return out

    def prompt_result(self, result: Any, origin: str) -> Any:
        if not isinstance(result, dict):
            return result
        out = self.tool_result(result, origin)
        if isinstance(result.get("description"), str):
            out["description"] = self.text(result["description"], origin)
        if isinstance(result.get("messages"), list):
            out["messages"] = [self.message(m, origin) for m in result["messages"]]
        return out

    def message(self, message: Any, origin: str) -> Any:
        if not isinstance(message, dict):
            return message
        out = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            out["content"] = [self.content_block(b, origin) for b in content]
        elif isinstance(content, dict):
            out["content"] = self.content_block(content, origin)
        return out

    def toward_client(self, method: str, params: Any, origin: str) -> Any:
        """An upstream's sampling or elicitation request, before the client (and model) sees it."""
        if not isinstance(params, dict):
            return params
        out = dict(params)
        if method == "sampling/createMessage":
            if isinstance(params.get("messages"), list):
                out["messages"] = [self.message(m, origin) for m in params["messages"]]
            if isinstance(params.get("systemPrompt"), str):
                out["systemPrompt"] = self.text(params["systemPrompt"], origin)
        elif method == "elicitation/create":
            if isinstance(params.get("message"), str):
                out["message"] = self.text(params["message"], origin)
            if isinstance(params.get("requestedSchema"), dict):
                out["requestedSchema"] = self.value(params["requestedSchema"], origin)
        return out

    def input_requests(self, requests: dict[str, Any], origin: str) -> dict[str, Any]:
        out = {}
        for key, request in requests.items():
            if isinstance(request, dict) and isinstance(request.get("method"), str):
                request = {**request, "params": self.toward_client(request["method"], request.get("params"), origin)}
            out[key] = request
        return out


def detect_field(
    text: str, lead: str = "", labels: frozenset[str] | None = None, ner: NerFinder | None = None
) -> list[Span]:
    """The spans of ``text``, a JSON value; ``lead`` is what stood before it (``"city": "``). A
    short one-line value is read again after its key, as the detectors see it in the raw JSON,
    and what the key labels is added to what the value alone holds (alone, a value is read from
    a line's start, where a vCard's ``FN:`` is)."""
    found = detect_long(text, labels, ner)
    if not lead or len(text) > _FIELD or "\n" in text or (len(found) == 1 and found[0].end - found[0].start == len(text)):
        return found  # (a value found whole, an address or a phone, has nothing more to say under its key)
    key, column = _lead_column(lead)
    if (
        column is not None and (labels is None or column in labels) and column_value(column, key, text)
        and all(PRIORITY[s.label] >= PRIORITY[column] for s in found)
    ):
        return [Span(0, len(text), column)]  # the key names it, and it looks like what the key names
    shift, end = len(lead), len(lead) + len(text)
    keyed = [
        Span(max(s.start, shift) - shift, min(s.end, end) - shift, s.label)
        for s in outermost(detect_long(_keyed_text(lead, text), labels, ner))
        if s.end > shift and s.start < end
    ]
    return _merge(sorted(found, key=attrgetter("start")), keyed) if keyed else found


def _keyed_text(lead: str, text: str) -> str:
    """A JSON value as the raw text has it after its key (what :func:`detect_field` reads)."""
    return lead + text + '"'


@functools.lru_cache(maxsize=4096)
def _lead_column(lead: str) -> tuple[str, str | None]:
    """A lead's key, and the label that key names as a table's column would (``home_phone``)."""
    try:
        key = json.loads(lead[: lead.rindex(":")])
    except ValueError:
        return "", None
    return (key, key_column(key)) if isinstance(key, str) else ("", None)


def lead_of(key: Any, item: Any) -> str:
    """What stands before ``item`` in the JSON when it is read with its key (``"full_name": "``,
    ``"given": ["``), or "" when it is read alone (an object, a long key)."""
    if not isinstance(key, str) or len(key) > _FIELD or not in_field(item):
        return ""
    return _leads(key)[isinstance(item, list)]


@functools.lru_cache(maxsize=4096)
def _leads(key: str) -> tuple[str, str]:
    """A key's leads, for a value and for a list (most keys recur in every message: encoded once)."""
    quoted = json.dumps(key, ensure_ascii=False)
    return quoted + ': "', quoted + ': ["'


def labels_in(value: Any, labels: frozenset[str] | None = None, skip: Callable[[str], str] | None = None) -> set[str]:
    """The labels of what ``value`` (a JSON value) holds, each string and number read as the
    walkers of :class:`Masker` read it (under its key). ``skip`` rewrites a string first."""
    found: set[str] = set()
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, lead = stack.pop()
        if isinstance(item, str):
            found.update(s.label for s in detect_field(skip(item) if skip else item, lead, labels))
        elif isinstance(item, dict):
            if lead and len(item) == 1 and next(iter(item)) in _TYPE_TAGS:
                stack.append((next(iter(item.values())), lead))
                continue
            for key, one in item.items():
                name = read_as(item, key)
                if isinstance(one, dict) and (inner := bare_value_key(one)) is not None:
                    stack.append(({name: one[inner]}, ""))  # {"ssn": {"value": ...}}: read under "ssn"
                    stack.extend((rest, lead_of(k, rest)) for k, rest in one.items() if k != inner)
                    continue
                if secret_under(name, one) or isinstance(one, list) and any(secret_under(name, v) for v in one):
                    found.add("SECRET")
                elif isinstance(one, dict | list) and secret_tree_key(name) and _tree_holds_secret(name, one):
                    found.add("SECRET")
                stack.append((one, lead_of(name, one)))
        elif isinstance(item, list):
            stack.extend((one, lead if isinstance(one, _SCALARS) else "") for one in item)
        elif isinstance(item, int | float) and not isinstance(item, bool) and (digits := _digits(item)):
            found.update(s.label for s in detect_field(digits, lead, labels))
    return found if labels is None else found & labels


class Repeated(dict[str, Any]):
    """A JSON object whose text repeats a key (``{"email": "jo@x.io", "email": null}``). As a dict
    it holds the last value, as parsers read it; ``pairs`` keeps every one, since the model reads
    the text (the first value too), and the masked text is written back with all of them."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs

    def items(self) -> Any:  # what json.dumps writes: every pair, repeats included
        return list(self.pairs)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook: a plain dict, or a :class:`Repeated` when a key repeats."""
    out = dict(pairs)
    return out if len(out) == len(pairs) else Repeated(pairs)


def presidio_params(name: str, params: Mapping[str, Any], label: str) -> dict[str, Any]:
    """A presidio operator's parameters as the guard passes them: ours, and defaults where the
    policy gave none (``replace`` by ``<LABEL>``, ``mask`` every character with ``*``)."""
    out = dict(params)
    if name == "replace":
        out.setdefault("new_value", f"<{label}>")
    if name == "mask":
        out.setdefault("masking_char", "*")
        out.setdefault("chars_to_mask", 100)
        out.setdefault("from_end", False)
    return out


def operator_refusal(name: str, params: Mapping[str, Any], label: str) -> str | None:
    """Why presidio would refuse this operator's parameters (a short ``encrypt`` key, an unknown
    ``hash_type``), or None: said when the policy is read, not at the first call that masks."""
    if name not in PRESIDIO_OPERATORS:
        return None
    from presidio_anonymizer.operators import OperatorsFactory, OperatorType

    operator = OperatorsFactory().create_operator_class(name, OperatorType.Anonymize)
    try:
        operator.validate(presidio_params(name, params, label))
    except Exception as exc:  # presidio's InvalidParamError, or its checks' own TypeError/ValueError
        said = str(exc)
        key = params.get("key")
        if isinstance(key, str) and key:
            said = said.replace(key, "<the key>")  # an encryption key is never echoed
        return f"presidio's {name} operator refuses these params: {said}"
    return None


def read_as(obj: dict[str, Any], key: Any) -> Any:
    """The key a value of ``obj`` is read under: its own, but a name/value object's value under
    the name (``{"system": "phone", "value": ...}``, ``{"Name": "DB_PASSWORD", "Value": ...}``,
    ``{"ParameterKey": "DbPassword", "ParameterValue": ...}``, ``{"type": "mobile", "number": ...}``)."""
    if key in _VALUE_KEYS and len(obj) <= 4:
        for name_key in _NAME_KEYS:
            name = obj.get(name_key)
            if isinstance(name, str) and 0 < len(name) <= 64 and name_key != key:
                return name
    return key


def bare_value_key(obj: dict[str, Any]) -> str | None:
    """The value key of a small object that has no name of its own (``{"value": ..., "verified":
    true}``): its value is read under the key the object stands under. None otherwise."""
    if len(obj) > 4:
        return None
    for key in _VALUE_KEYS:
        if key in obj and in_field(obj[key]) and read_as(obj, key) == key:
            return key
    return None


def _tree_holds_secret(tree_key: str, item: Any, key: str = "") -> bool:
    """Whether :meth:`Masker.secret_tree` would find a secret in ``item`` by the tree's key."""
    if isinstance(item, dict):
        return any(_tree_holds_secret(tree_key, one, k) for k, one in item.items())
    if isinstance(item, list):
        return any(_tree_holds_secret(tree_key, one, key) for one in item)
    return _tree_leaf_secret(tree_key, key, item)


def _tree_leaf_secret(tree_key: str, key: str, item: Any) -> bool:
    """Whether a string or number in a tree of secrets is one: by the tree's reading under its own
    key, or, straight in a list under the tree's key, as a value under that key."""
    return isinstance(item, str) and secret_in_tree(tree_key, key, item) or not key and secret_under(tree_key, item)


def secret_under(key: Any, item: Any) -> bool:
    """Whether ``item``, a string or number under the object key ``key``, is a secret by its key
    (``{"password": ...}``, ``{"pin": 4821}``)."""
    if not isinstance(key, str) or isinstance(item, bool):
        return False
    if isinstance(item, int):
        return number_secret_for_key(key, item) or secret_for_key(key, str(item))
    return isinstance(item, str) and secret_for_key(key, item)


def in_field(item: Any) -> bool:
    """Whether :meth:`Masker.field` reads ``item`` with its key: a string or number, a list of
    them, or a type-tagged one."""
    if isinstance(item, list):
        return all(isinstance(one, _SCALARS) for one in item)
    if isinstance(item, dict):
        return len(item) == 1 and next(iter(item)) in _TYPE_TAGS and isinstance(next(iter(item.values())), _SCALARS)
    return isinstance(item, _SCALARS)


def _digits(number: int | float) -> str:
    """A JSON number as the digits a card, SSN or phone would be written with ("" when it is too
    short to be one): 4111111111111111.0 is a card number written as a float."""
    if isinstance(number, float):
        if not number.is_integer() or abs(number) >= 1e19:
            return ""
        number = int(number)
    as_text = str(number)
    return as_text if len(as_text.lstrip("-")) >= _NUMBER_DIGITS else ""


def _merge(first: list[Span], second: list[Span]) -> list[Span]:
    """Both sorted span lists as one; where they overlap, ``first`` wins (linear time)."""
    out: list[Span] = []
    i = 0
    for span in second:
        while i < len(first) and first[i].end <= span.start:
            out.append(first[i])
            i += 1
        if i < len(first) and first[i].start < span.end:
            continue  # overlaps a span of ``first``
        out.append(span)
    out.extend(first[i:])
    return out


_ENGINE: Any = None


def _engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        from presidio_anonymizer import AnonymizerEngine

        _ENGINE = AnonymizerEngine()
    return _ENGINE
