"""The integrity hook: pins each tool's definition, holds changed ones, scans descriptions.

On ``tools/list`` it pins what the server offers, hides tools that are held (a changed
definition not yet accepted, a new tool under ``new_tools: hold``, a poisoned description under
``findings: block``) and raises tools with findings to high risk (``findings: raise``). On
``tools/call`` it refuses a held tool by name with what to run to accept it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..integrity import Finding, Pins, definition_hash, scan_definition
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

    def _others(self, server: str) -> set[str]:
        return {name for other, names in self._names.items() if other != server for name in names}

    def verdict(self, server: str, tool: dict[str, Any]) -> tuple[str | None, list[Finding]]:
        """(why the tool is held, or None; findings) for this definition."""
        key = (server, str(tool.get("name")), definition_hash(tool))
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
                self.audit.append("tool.changed", {"server": server, "tool": name, "hash": key[2]})
        elif status == "new-held":
            held = f"{name} on {server} is new and this policy holds new tools until they are accepted"
        elif findings and settings.findings == "block":
            held = f"the description of {name} on {server} carries instructions to the model ({', '.join(sorted({f.kind for f in findings}))})"
        if findings and cached is None:
            logger.warning("tool %s on %s: %s", name, server, "; ".join(f"{f.kind} in {f.where}" for f in findings))
        self._verdicts[key] = (time.monotonic(), held, findings)
        return held, findings

    async def response(self, call: Call) -> None:
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

    async def request(self, call: Call) -> None:
        if call.method != "tools/call" or call.toward_client or call.lookup_tool is None:
            return
        definition = await call.lookup_tool()
        if definition is None:
            return
        held, findings = self.verdict(call.upstream, definition)
        if held is not None:
            call.deny(
                f"{held}. It was not run. A person can review it with `mcp-guard tools diff {call.upstream}` "
                f"and accept it with `mcp-guard tools accept {call.upstream} {call.name}`.",
                "integrity",
            )
        elif findings and self.source.current.integrity.findings == "raise":
            call.notes["risk_floor"] = "high"
