"""Tool integrity: pinned definitions (rug pulls), instructions hidden in descriptions (tool
poisoning), and tools that talk about other servers' tools (shadowing).

A definition is pinned by the SHA-256 of its name, title, description, schemas, annotations and
the author's risk tag (``_meta`` ``mcp-guard/risk`` and ``mcp-guard/reason``).
A pinned tool whose definition changes is held until a person accepts the change
(``mcp-guard tools diff`` / ``tools accept``). Descriptions (the tool's and its parameters')
are scanned by :func:`scan_definition`; what it finds is evidence shown by ``tools check``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from .masking.detect import detect
from .masking.vault import Vault
from .store import Store

__all__ = ["Finding", "Pins", "definition_hash", "scan_definition", "scan_text"]


# The author's risk tag decides how a call is treated, as annotations do, so it is pinned with them:
# a server that lists `critical` and later `low` is changing its definition like any rug pull.
_PINNED_META = ("mcp-guard/risk", "mcp-guard/reason")


def _pinned_part(tool: dict[str, Any]) -> dict[str, Any]:
    part = {k: tool.get(k) for k in ("name", "title", "description", "inputSchema", "outputSchema", "annotations")}
    meta = tool.get("_meta")
    tagged = {k: meta[k] for k in _PINNED_META if k in meta} if isinstance(meta, dict) else {}
    if tagged or (meta is not None and not isinstance(meta, dict)):
        # Only when present, so that pins of untagged tools made before keep their hash.
        part["_meta"] = tagged if isinstance(meta, dict) else meta
    return part


def definition_hash(tool: dict[str, Any]) -> str:
    body = json.dumps(_pinned_part(tool), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Finding:
    kind: str  # override | secrecy | exfiltration | cross-tool | hidden-markup | invisible-text | shadowing
    where: str  # "description" or "inputSchema.properties.<name>.description"
    evidence: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("override", re.compile(r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:previous|prior|above|earlier|all|any|system|other)\b[^.\n]{0,20}\b(?:instructions?|prompts?|rules?|guidelines?|messages?)", re.I)),
    ("override", re.compile(r"\b(?:you are now|from now on,? you|new instructions?:|system prompt|act as (?:an?|the) (?:admin|system|developer))", re.I)),
    ("secrecy", re.compile(r"\b(?:do not|don't|never|must not|should not)\b[^.\n]{0,25}\b(?:tell|inform|mention|reveal|show|notify|alert|disclose)\b[^.\n]{0,25}\b(?:the )?user", re.I)),
    ("secrecy", re.compile(r"\bwithout (?:the user(?:'s)?|telling|informing|asking|notifying)\b|\b(?:silently|secretly|covertly)\b[^.\n]{0,30}\b(?:send|read|call|include|add|copy|forward)", re.I)),
    ("exfiltration", re.compile(r"\b(?:read|cat|open|load|send|upload|post|include|pass|attach|forward|copy|exfiltrat\w*|collect)\b[^\n]{0,80}(?:~/\.[\w-]+|id_rsa|id_ed25519|\.env\b|/etc/passwd|\.aws/|credentials|private key|api[_ -]?keys?|passwords?|secrets?|tokens?|mcp\.json|cookies)", re.I)),
    ("exfiltration", re.compile(r"\b(?:send|post|upload|forward|transmit|report)\b[^\n]{0,60}\bto\b[^\n]{0,20}(?:https?://|[\w.-]+@[\w-]+\.[\w.]+)", re.I)),
    ("cross-tool", re.compile(r"\b(?:before|after|instead of|whenever|every time)\b[^.\n]{0,20}\b(?:using|calling|invoking|you use|you call)\b[^.\n]{0,30}\b(?:any|other|another|all|every)\b[^.\n]{0,15}\btools?\b", re.I)),
    ("cross-tool", re.compile(r"\b(?:always|must|first)\b[^.\n]{0,20}\b(?:call|use|invoke|run)\b[^.\n]{0,10}\bthis tool\b[^.\n]{0,30}\b(?:first|instead|before|rather than)\b", re.I)),
    ("hidden-markup", re.compile(r"<\s*/?\s*(?:important|system|instructions?|secret|hidden|admin|assistant|context)\s*>|\[/?INST\]|<!--|<\|im_start\|>", re.I)),
]
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")


def scan_text(text: str, where: str = "description") -> list[Finding]:
    findings = []
    invisible = _INVISIBLE.findall(text)
    if invisible:
        names = sorted({unicodedata.name(c, f"U+{ord(c):04X}") for c in invisible})
        findings.append(Finding("invisible-text", where, f"{len(invisible)} invisible character(s): {', '.join(names[:3])}"))
        text = _INVISIBLE.sub("", text)
    for kind, pattern in _RULES:
        match = pattern.search(text)
        if match is not None:
            findings.append(Finding(kind, where, text[max(0, match.start() - 20) : match.end() + 20].strip()))
    return findings


def scan_definition(tool: dict[str, Any], other_tools: set[str] = frozenset()) -> list[Finding]:  # type: ignore[assignment]
    """Findings in a tool's description and its parameters' descriptions.

    ``other_tools`` are names of other servers' tools: a description that names one is shadowing."""
    found: list[Finding] = []
    description = str(tool.get("description") or "")
    found.extend(scan_text(description))
    properties = ((tool.get("inputSchema") or {}).get("properties") or {}) if isinstance(tool.get("inputSchema"), dict) else {}
    for name, spec in properties.items() if isinstance(properties, dict) else ():
        if isinstance(spec, dict) and isinstance(spec.get("description"), str):
            found.extend(scan_text(spec["description"], f"inputSchema.properties.{name}.description"))
    for other in other_tools:
        if len(other) >= 4 and re.search(rf"(?<![\w-]){re.escape(other)}(?![\w-])", description):
            found.append(Finding("shadowing", "description", f"names another server's tool {other!r}"))
    return found


def _redacted(value: Any) -> Any:
    """``value`` with every detected sensitive span replaced by a placeholder (keys too)."""
    if isinstance(value, str):
        spans = detect(value)
        return Vault().replace(value, spans, "pin") if spans else value
    if isinstance(value, dict):
        return {_redacted(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def pin_name(name: str) -> str:
    """The key a tool is pinned under: its name, or when the name holds a detected secret the
    masked name plus a short digest of the raw one (two such tools keep two pins; no raw value stored)."""
    masked = _redacted(name)
    if masked == name:
        return name
    return f"{masked}~{hashlib.sha256(name.encode()).hexdigest()[:16]}"


class Pins:
    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, server: str, tool: dict[str, Any], findings: list[Finding], hold_new: bool) -> str:
        """Pin or compare a definition; returns "ok", "new-held", or "changed"."""
        name = pin_name(str(tool.get("name")))
        digest = definition_hash(tool)  # of the raw definition: any change is seen
        # What is kept to show a reviewer has its sensitive values masked: a server may put keys
        # or addresses in descriptions, and the store never holds a raw value.
        body = json.dumps(_redacted(_pinned_part(tool)), sort_keys=True, ensure_ascii=False)
        found = json.dumps([_redacted(f.to_dict()) for f in findings])
        rows = self.store.query("SELECT hash, accepted FROM pins WHERE server=? AND tool=?", (server, name))
        if rows and rows[0]["hash"] == digest:
            return "ok" if rows[0]["accepted"] is not None else "new-held"
        # First sight or a change: look again under the writers' lock, as another session or
        # another guard instance on the same store may be pinning this tool at this moment.
        with self.store.transaction() as db:
            row = db.execute("SELECT hash, accepted FROM pins WHERE server=? AND tool=?", (server, name)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO pins (server, tool, hash, definition, first_seen, accepted, findings)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (server, name, digest, body, time.time(), None if hold_new else time.time(), found),
                )
                return "new-held" if hold_new else "ok"
            if row[0] == digest:
                return "ok" if row[1] is not None else "new-held"
            db.execute(
                "UPDATE pins SET pending_hash=?, pending_definition=?, changed=COALESCE(changed, ?), findings=?"
                " WHERE server=? AND tool=? AND (pending_hash IS NULL OR pending_hash != ?)",
                (digest, body, time.time(), found, server, name, digest),
            )
        return "changed"

    def accept(self, server: str, tool: str | None = None) -> int:
        """Accept pending changes (and held new tools) of a server, or of one tool."""
        where, args = "server=?", [server]
        if tool:
            where += " AND tool IN (?,?)"
            args += [tool, pin_name(tool)]  # the raw name as given, or the key it was pinned under
        now = time.time()
        changed = self.store.execute(
            f"UPDATE pins SET hash=pending_hash, definition=pending_definition, pending_hash=NULL, pending_definition=NULL, changed=NULL, accepted=? WHERE {where} AND pending_hash IS NOT NULL",
            (now, *args),
        )
        held = self.store.execute(f"UPDATE pins SET accepted=? WHERE {where} AND accepted IS NULL", (now, *args))
        return changed + held

    def rows(self, server: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM pins", ()
        if server:
            sql, args = sql + " WHERE server=?", (server,)
        return [dict(r) for r in self.store.query(sql + " ORDER BY server, tool", args)]
