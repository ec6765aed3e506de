"""The masking hook: placeholders out toward the model, real values back toward their origin.

On the way in (a call's arguments) it notes the labels of raw sensitive values the model wrote
itself, for the policy to see (``call.labels``), then puts back the placeholders this
upstream may receive. On the way out it masks results, resource contents, prompts, and the
sampling and elicitation requests an upstream sends toward the client. A detector failure
fails the call closed (the pipeline runner turns the exception into a denial).

Results are masked as whole trees (``_meta``, descriptions, blobs included) and marked, so the
relay's egress, which masks every other message toward the client with :meth:`outbound_masker`,
does not walk them again. Large results are masked in a worker thread, one job at a time.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio

from ..tokens import shared as shared_encoding
from ..masking import fast
from ..masking.mask import DEFAULT_MASKED, Masker, Operator, labels_in
from ..masking.outbound import (
    RESULT_FIELDS, THREAD_CHARS, Masked, carries, in_worker, mask_body, mask_message, off_loop, parts, weight_over,
)
from ..masking.ner import load_ner
from ..masking.vault import PLACEHOLDER, Vault
from ..pipeline import Call, Hook
from ..policy.model import LabelOperator, Masking

logger = logging.getLogger(__name__)

# A result cut by the token budget ends with this notice, so the model knows it is partial.
TOO_LARGE = "mcp-guard: this result is {total} tokens, over the limit of {limit}; ask for a narrower query"
CUT_NOTICE = "\n[mcp-guard: this result was cut to {kept} of {total} tokens; ask for a narrower query]"


def _operators(*layers: dict[str, str | LabelOperator]) -> dict[str, Operator]:
    ops = {label: Operator("placeholder") for label in DEFAULT_MASKED}
    for layer in layers:
        for label, spec in layer.items():
            ops[label] = Operator(spec) if isinstance(spec, str) else Operator(spec.operator, spec.params)
    return ops


def _with_labels(operators: dict[str, Operator]) -> tuple[dict[str, Operator], frozenset[str]]:
    return operators, frozenset(label for label, op in operators.items() if op.name != "keep")


def label_sets(settings: Masking) -> set[frozenset[str]]:
    """The label sets a guard under ``settings`` masks with: the policy's, and each server's own."""
    base = _with_labels(_operators(settings.labels))[1]
    return {base, *(_with_labels(_operators(settings.labels, s.labels))[1] for s in settings.servers.values())}


class MaskHook(Hook):
    def __init__(self, settings: Masking) -> None:
        self.settings = settings
        flows = [(f.source, f.target, frozenset(f.labels) if f.labels else None) for f in settings.flows]
        self._flows = flows
        self._vaults: dict[str, Vault] = {}
        self._base = _with_labels(_operators(settings.labels))
        self._per_server = {name: _with_labels(_operators(settings.labels, s.labels)) for name, s in settings.servers.items()}
        self._budget = _TokenBudget(settings.max_result_tokens) if settings.max_result_tokens else None
        self._ner = None
        # Masking jobs run one at a time: the vaults and the detectors' scratch are shared.
        self.serial = anyio.Lock()
        if settings.enabled:
            self._ner = load_ner(settings.ner)
            fast.warm(label_sets(settings))

    def vault(self, session_id: str) -> Vault:
        vault = self._vaults.get(session_id)
        if vault is None:
            vault = self._vaults[session_id] = Vault(self._flows)
        return vault

    def masker(self, call: Call) -> Masker | None:
        server = self.settings.servers.get(call.upstream)
        if not self.settings.enabled or (server is not None and not server.enabled):
            return None
        operators, labels = self._per_server.get(call.upstream, self._base)
        return Masker(operators, self.vault(call.session_id), labels, self._ner)

    def outbound_masker(self, session_id: str, origin: str) -> Masker | None:
        """The masker for a message toward the client; where masking is off for ``origin``,
        one that still masks the values this session's vault holds (no laundering)."""
        if not self.settings.enabled:
            return None
        server = self.settings.servers.get(origin)
        if server is not None and not server.enabled:
            return Masker({}, self.vault(session_id), frozenset())
        operators, labels = self._per_server.get(origin, self._base)
        return Masker(operators, self.vault(session_id), labels, self._ner)

    async def outbound(self, session_id: str, message: dict[str, Any], origin: str) -> dict[str, Any]:
        """A message toward the client with what its upstream wrote masked (the relay's egress)."""
        if not carries(message):
            return message
        masker = self.outbound_masker(session_id, origin)
        if masker is None:
            return message
        heavy = weight_over(parts(message), THREAD_CHARS)
        return await off_loop(self.serial, heavy, mask_message, masker, message, origin)

    async def request(self, call: Call) -> None:
        if call.toward_client:
            masker = self.masker(call)
            if masker is not None:
                call.params = masker.toward_client(call.method, call.params, call.upstream)
            return
        if call.method in ("tools/call", "prompts/get"):
            arguments = call.params.get("arguments")
            if not isinstance(arguments, dict):
                return
            # Arguments are the client's to size: a large one is read off the event loop. Only the
            # detectors are used (no vault), so this waits for no other session's masking job.
            if weight_over(arguments, THREAD_CHARS):
                labels = await in_worker(_raw_labels, arguments)
            else:
                labels = _raw_labels(arguments)
            call.labels = labels
            call.masked_arguments = arguments
            vault = self.vault(call.session_id)
            if labels:
                masker = self.masker(call)
                if masker is not None:
                    # For a policy rule with action "mask": raw values replaced, placeholders kept.
                    call.mask_arguments = lambda: masker.value(arguments, "client")
            if not len(vault):
                return  # nothing was masked in this session yet: no placeholder can be ours
            restored, count, kept = vault.rehydrate(arguments, call.upstream)
            if count or kept:
                logger.info("call %s to %s: %d placeholders restored, %d kept masked", call.name, call.upstream, count, kept)
            call.params = {**call.params, "arguments": restored}
            call.placeholders = _placeholders(vault, arguments, call.upstream)
        elif call.method == "resources/read" and isinstance(call.params.get("uri"), str):
            uri, _, _ = self.vault(call.session_id).rehydrate_text(call.params["uri"], call.upstream)
            call.params = {**call.params, "uri": uri}

    async def response(self, call: Call) -> None:
        masker = self.masker(call)
        if masker is None or call.result is None:
            return
        if call.method not in ("tools/call", "resources/read", "prompts/get"):
            return  # listings are masked on their way out, after integrity pinned the originals
        heavy = weight_over(call.result, THREAD_CHARS)
        masked = await off_loop(self.serial, heavy, mask_body, masker, call.result, call.upstream, RESULT_FIELDS)
        call.result = Masked(masked) if isinstance(masked, dict) else masked
        if masker.found:
            call.masked = dict(masker.found)
            logger.info("%s %s: masked %s", call.method, call.upstream, dict(masker.found))
        if self._budget is not None and call.method == "tools/call":
            cut = self._budget.cut(call.result, call)
            call.result = Masked(cut) if isinstance(cut, dict) else cut

    async def close_session(self, session_id: str) -> None:
        self._vaults.pop(session_id, None)


def _placeholders(vault: Vault, arguments: Any, target: str) -> dict[str, tuple[tuple[str, ...], bool]]:
    """The vault's placeholders in ``arguments``: where each came from, and whether it goes back
    toward ``target`` (the approval preview shows both)."""
    text = json.dumps(arguments, ensure_ascii=False)
    found = {}
    for m in PLACEHOLDER.finditer(text):
        origins = vault.origins(m.group())
        if origins is not None:
            found[m.group()] = (origins, vault.allowed(m.group(), target))
    return found


def _raw_labels(arguments: Any) -> frozenset[str]:
    """Labels of sensitive values the model wrote itself (placeholders are not counted), each
    value read under its key as masking reads it (``{"ssn": "123456789"}`` holds a US_SSN)."""
    return frozenset(labels_in(arguments, skip=_without_placeholders))


def _without_placeholders(text: str) -> str:
    return PLACEHOLDER.sub(" ", text) if "<" in text else text


class _TokenBudget:
    """Caps what one tool result may put into the model's context (tiktoken, offline)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def cut(self, result: Any, call: Call) -> Any:
        if not isinstance(result, dict) or not isinstance(result.get("content"), list):
            return result
        enc = shared_encoding()
        counted = [
            enc.encode(b["text"], disallowed_special=()) if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) else None
            for b in result["content"]
        ]
        total = sum(len(t) for t in counted if t is not None)
        structured = result.get("structuredContent")
        if structured is not None:
            total = max(total, len(enc.encode(json.dumps(structured, ensure_ascii=False), disallowed_special=())))
        call.result_tokens = total
        if total <= self.limit:
            return result
        if structured is not None:
            # Structured results cannot be cut and still match the tool's output schema.
            return {
                "content": [{"type": "text", "text": TOO_LARGE.format(total=total, limit=self.limit)}],
                "isError": True,
                **({"resultType": result["resultType"]} if "resultType" in result else {}),
            }
        left, kept_total, blocks = self.limit, 0, []
        for block, tokens in zip(result["content"], counted):
            if tokens is not None:
                keep = tokens[: max(left, 0)]
                left -= len(keep)
                kept_total += len(keep)
                if len(keep) < len(tokens):
                    block = {**block, "text": enc.decode(keep)}
            blocks.append(block)
        blocks.append({"type": "text", "text": CUT_NOTICE.format(kept=kept_total, total=total)})
        return {**result, "content": blocks}
