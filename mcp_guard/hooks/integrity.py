"""The integrity hook: pins each tool's definition, holds changed ones, scans descriptions.

On ``tools/list`` it pins what the server offers, hides tools that are held (a changed
definition not yet accepted, a new tool under ``new_tools: hold``, a poisoned description under
``findings: block``) and raises tools with findings to high risk (``findings: raise``). On
``tools/call`` it refuses a tool absent from the server's latest listing (names match exactly,
case included), and a held tool by name with what to run to accept it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..integrity import Finding, Pins, definition_hash, scan_definition, scan_text
from ..pipeline import Call, Hook
from ..policy.model import RISKS
from ..risk import RISK_KEY
from .policy import PolicySource

logger = logging.getLogger(__name__)

# How long a tool's verdict is reused before the store is asked again (a CLI accept shows up then).
STATUS_TTL_S = 2.0


class IntegrityHook(Hook):
    def __init__(self, source: PolicySource, pins: Pins | None, audit: Any = None) -> None:
        self.source = source
        self.pins = pins
        self.audit = audit
        self._names: dict[str, set[str]] = {}  # server -> its tool names, for shadowing checks
        self._verdicts: dict[tuple[str, str, str], tuple[float, str | None, list[Finding]]] = {}
        self._hashes: dict[int, tuple[dict[str, Any], str]] = {}

    def _others(self, server: str) -> set[str]:
        return {name for other, names in self._names.items() if other != server for name in names}

    def _hash(self, tool: dict[str, Any]) -> str:
        """The definition's hash, computed once per definition object: on every call the hub
        hands over the same cached dict, so the schemas are not serialised again each time."""
        known = self._hashes.get(id(tool))
        if known is not None and known[0] is tool:
            return known[1]
        if len(self._hashes) > 4096:
            self._hashes.clear()
        digest = definition_hash(tool)
        self._hashes[id(tool)] = (tool, digest)
        return digest

    def verdict(self, server: str, tool: dict[str, Any]) -> tuple[str | None, list[Finding]]:
        """(why the tool is held, or None; findings) for this definition."""
        key = (server, str(tool.get("name")), self._hash(tool))
        cached = self._verdicts.get(key)
        if cached is not None and time.monotonic() - cached[0] < STATUS_TTL_S:
            return cached[1], cached[2]
        settings = self.source.current.integrity
        findings = scan_definition(tool, self._others(server))
        status = self.pins.check(server, tool, findings, settings.new_tools == "hold") if self.pins else "ok"
        name = key[1]
        held: str | None = None
        if status == "changed" and settings.changed == "block":
            held = f"the definition of {name} on {server} changed since it was accepted (a possible rug pull)"
            if cached is None and self.audit is not None:
                self.audit.record("tool.changed", {"server": server, "tool": name, "hash": key[2]})
        elif status == "new-held":
            held = f"{name} on {server} is new and this policy holds new tools until they are accepted"
        elif findings and settings.findings == "block":
            held = f"the description of {name} on {server} carries instructions to the model ({', '.join(sorted({f.kind for f in findings}))})"
        if findings and cached is None:
            logger.warning("tool %s on %s: %s", name, server, "; ".join(f"{f.kind} in {f.where}" for f in findings))
        self._verdicts[key] = (time.monotonic(), held, findings)
        return held, findings

    async def response(self, call: Call) -> None:
        if call.method == "prompts/list":
            self._prompts(call)
            return
        if call.method == "resources/read":
            self._resource(call)
            return
        if call.method != "tools/list" or not isinstance(call.result, dict) or not isinstance(call.result.get("tools"), list):
            return
        tools = [t for t in call.result["tools"] if isinstance(t, dict) and isinstance(t.get("name"), str)]
        self._names.setdefault(call.upstream, set()).update(t["name"] for t in tools)
        shown = []
        for tool in tools:
            held, findings = self.verdict(call.upstream, tool)
            if held is not None:
                continue
            if findings and self.source.current.integrity.findings == "raise":
                meta = dict(tool.get("_meta") or {})
                if RISKS.index(meta.get(RISK_KEY, "low") if meta.get(RISK_KEY) in RISKS else "low") < RISKS.index("high"):
                    meta[RISK_KEY] = "high"
                meta["mcp-guard/findings"] = sorted({f.kind for f in findings})
                tool = {**tool, "_meta": meta}
            shown.append(tool)
        call.result = {**call.result, "tools": shown}

    def _prompts(self, call: Call) -> None:
        """Prompt and argument descriptions get the same scan; poisoned prompts follow `findings`."""
        if not isinstance(call.result, dict) or not isinstance(call.result.get("prompts"), list):
            return
        mode = self.source.current.integrity.findings
        shown = []
        for prompt in call.result["prompts"]:
            if not isinstance(prompt, dict):
                continue
            findings = scan_text(str(prompt.get("description") or ""))
            for argument in prompt.get("arguments") or []:
                if isinstance(argument, dict) and isinstance(argument.get("description"), str):
                    findings.extend(scan_text(argument["description"], f"arguments.{argument.get('name')}.description"))
            if findings:
                logger.warning("prompt %s on %s: %s", prompt.get("name"), call.upstream, ", ".join(f.kind for f in findings))
                if mode == "block":
                    continue
                if mode == "raise":
                    prompt = {**prompt, "_meta": {**(prompt.get("_meta") or {}), "mcp-guard/findings": sorted({f.kind for f in findings})}}
            shown.append(prompt)
        call.result = {**call.result, "prompts": shown}

    def _resource(self, call: Call) -> None:
        """Resource contents, where the policy asks: findings are noted, or the contents withheld."""
        mode = self.source.current.integrity.resources
        if mode == "off" or not isinstance(call.result, dict):
            return
        findings = [f for c in call.result.get("contents") or [] if isinstance(c, dict) and isinstance(c.get("text"), str) for f in scan_text(c["text"], "contents")]
        if not findings:
            return
        kinds = sorted({f.kind for f in findings})
        logger.warning("resource %s on %s: %s", call.name, call.upstream, ", ".join(kinds))
        if mode == "block":
            call.deny(f"the contents of {call.name} carry instructions to the model ({', '.join(kinds)}), so they were withheld", "integrity")
            return
        call.result = {**call.result, "_meta": {**(call.result.get("_meta") or {}), "mcp-guard/findings": kinds}}

    def _near(self, call: Call) -> str:
        """A hint at the listed spelling of a name that differs only in case."""
        folded = call.name.casefold()
        near = sorted(n for n in self._names.get(call.upstream, ()) if n.casefold() == folded)
        return f" (tool names are exact; it lists {near[0]!r})" if near else " (tool names are exact)"

    async def request(self, call: Call) -> None:
        if call.method != "tools/call" or call.toward_client or call.lookup_tool is None:
            return
        definition = await call.lookup_tool()
        if definition is None:
            # Nothing pinned, no author's tag, no annotations: a risk for it would be a guess, and
            # a server that matches names loosely (DELETE_ALL for delete_all) would run a tool
            # under a name the policy does not know. Names are matched exactly.
            reason = f"{call.upstream} does not list a tool named {call.name!r}, so it was not run{self._near(call)}"
            call.deny(reason, "integrity")
            return
        held, findings = self.verdict(call.upstream, definition)
        if held is not None:
            call.deny(
                f"{held}. It was not run. A person can review it with `mcp-guard tools diff {call.upstream}` "
                f"and accept it with `mcp-guard tools accept {call.upstream} {call.name}`.",
                "integrity",
            )
        elif findings and self.source.current.integrity.findings == "raise":
            call.risk_floor = "high"
