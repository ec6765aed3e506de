"""The policy hook: resolves each tool's risk, decides each call, hides denied tools.

The decision is left in ``call.decision`` for the approval hook. The policy file
is re-read when it changes; a broken edit keeps the last good policy, and says so.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pipeline import Call, Hook
from ..policy import decide, load_policy
from ..policy.engine import Facts, unconditional
from ..policy.model import Policy
from ..policy.model import RISKS
from ..risk import REASON_KEY, RISK_KEY, SOURCE_KEY, ResolvedRisk, resolve_risk

logger = logging.getLogger(__name__)

# How often a changed policy file is noticed, at most.
RELOAD_CHECK_S = 1.0


class PolicySource:
    """The current policy; reloads its file when it changes, keeping the last good one."""

    def __init__(self, policy: Policy, path: str | Path | None = None) -> None:
        self.policy = policy
        self.path = Path(path) if path is not None else None
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self.last_error: str | None = None
        self.version = _version(policy)
        # Called with ("policy.loaded" | "policy.rejected", details) on each reload.
        self.listeners: list[Any] = []

    @classmethod
    def from_file(cls, path: str | Path) -> PolicySource:
        return cls(load_policy(path), path)

    def _stat(self) -> tuple[int, ...] | None:
        """What changes with any write to the file or its replacement: ctime and the inode too,
        since a copy that keeps timestamps (cp -p, rsync -a, tar) keeps size and mtime."""
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def current(self) -> Policy:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= RELOAD_CHECK_S:
            self._checked = now
            stamp = self._stat()
            if stamp != self._stamp:
                self._stamp = stamp
                self._reload()
        return self.policy

    def _reload(self) -> None:
        assert self.path is not None
        try:
            self.policy = load_policy(self.path)
        except ConfigError as exc:
            self._rejected(str(exc))
            return
        except (RecursionError, ValueError) as exc:
            # A loader bug must not take the hook down either: the last good policy stays.
            self._rejected(f"{self.path}: cannot load the policy ({type(exc).__name__})")
            return
        self.last_error = None
        self.version = _version(self.policy)
        logger.warning("policy reloaded from %s", self.path)
        self._tell("policy.loaded", {"rules": len(self.policy.rules), "reload": True})

    def _rejected(self, error: str) -> None:
        self.last_error = error
        logger.error("policy reload failed; keeping the last good policy:\n%s", error)
        self._tell("policy.rejected", {"error": error[:2000], "kept": "last good policy"})

    def _tell(self, event: str, detail: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(event, detail)
            except Exception:
                logger.exception("policy listener failed")


class PolicyHook(Hook):
    def __init__(self, source: PolicySource) -> None:
        self.source = source
        # (server, tool) -> (policy, definition, risk): valid while both are the same objects.
        self._risks: dict[tuple[str, str], tuple[Any, Any, ResolvedRisk]] = {}

    def _risk(self, policy: Any, server: str, definition: dict[str, Any] | None, name: str) -> ResolvedRisk:
        found = self._risks.get((server, name))
        if found is not None and found[0] is policy and found[1] is definition:
            return found[2]
        risk = resolve_risk(policy, server, definition, name)
        if len(self._risks) >= 4096:
            self._risks.clear()
        self._risks[(server, name)] = (policy, definition, risk)
        return risk

    async def request(self, call: Call) -> None:
        if call.method != "tools/call" or call.toward_client:
            return
        policy = self.source.current
        definition = await call.lookup_tool() if call.lookup_tool is not None else None
        risk = self._risk(policy, call.upstream, definition, call.name)
        floor = call.risk_floor
        if floor in RISKS and RISKS.index(floor) > RISKS.index(risk.level) and risk.source != "policy":
            risk = ResolvedRisk(floor, "integrity", "its description carries instructions to the model")
        labels = call.labels
        facts = Facts(
            call.upstream, call.name, risk.level, call.arguments, call.user, labels, _hints(definition), call.roots,
            call.host, groups=call.groups,
        )
        decision = decide(policy, facts)
        call.risk = risk
        call.decision = decision
        call.policy_version = self.source.version
        if decision.action == "deny":
            call.deny(f"{decision.reason} (rule '{decision.rule}'). The call was not run.", "policy")
        elif decision.action == "mask" and call.mask_arguments is not None:
            masked = call.mask_arguments()
            call.params = {**call.params, "arguments": masked}

    async def response(self, call: Call) -> None:
        if call.method != "tools/list" or not isinstance(call.result, dict):
            return
        policy = self.source.current
        tools = call.result.get("tools")
        if not isinstance(tools, list):
            return
        shown: list[Any] = []
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            risk = resolve_risk(policy, call.upstream, tool, tool["name"])
            decision = decide(policy, Facts(
                call.upstream, tool["name"], risk.level, {}, call.user, annotations=_hints(tool), groups=call.groups
            ))
            if decision.action == "deny" and unconditional(policy, decision.rule, for_caller=True):
                continue  # hidden; a call by name is refused by request() as well
            meta = {**(tool.get("_meta") or {}), RISK_KEY: risk.level, SOURCE_KEY: risk.source}
            if risk.reason:
                meta[REASON_KEY] = risk.reason
            shown.append({**tool, "_meta": meta})
        call.result = {**call.result, "tools": shown}


def _hints(definition: dict[str, Any] | None) -> dict[str, Any]:
    annotations = (definition or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _version(policy: Policy) -> str:
    """Identifies a policy's content: an approval recorded under one policy is not reused under another."""
    from ..policy.kept import digest

    return digest(policy)[:16]
