"""``mcp-guard scan``: the masking engine on plain input, for people and for scorers.

``--jsonl`` reads ``{"id": ..., "text": ...}`` lines and writes, in order, one
``{"id": ..., "spans": [{"start", "end", "label"}], "masked": ...}`` line each, offsets in
code points; a line it cannot read gets ``{"id": ..., "error": ...}`` and the run goes on.
Without it, each input line is reported with its findings highlighted. ``--no-prefilter`` reads
every text whole, without the Hyperscan pre-pass: the spans are the same (that is what it checks). Input is streamed, a
line at a time, so memory stays flat whatever the size.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import IO, Any

from .masking.detect import Span, detect
from .masking.mask import NerFinder
from .masking.ner import load_ner
from .masking.vault import Vault

_COLOURS = {"SECRET": "31", "CREDIT_CARD": "35", "IBAN": "35", "US_SSN": "35", "EMAIL": "33", "PHONE": "33"}


def mask_all(text: str, spans: list[Span]) -> str:
    """Every span replaced by a placeholder numbered for this text alone."""
    return Vault().replace(text, spans, "scan")


def scan_jsonl(lines: Iterable[str], out: IO[str], ner: NerFinder | None = None, prefilter: bool = True) -> int:
    problems = 0
    for line in lines:
        if not line.strip():
            continue
        record_id: Any = None
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("a line must be a JSON object")
            record_id = record.get("id")
            text = record.get("text")
            if not isinstance(text, str):
                raise ValueError("'text' must be a string")
            spans = detect(text, None, ner, prefilter=prefilter)
            reply = {
                "id": record_id,
                "spans": [{"start": s.start, "end": s.end, "label": s.label} for s in spans],
                "masked": mask_all(text, spans),
            }
        except (ValueError, RecursionError) as exc:
            problems += 1
            reply = {"id": record_id, "error": str(exc)}
        out.write(json.dumps(reply, ensure_ascii=False) + "\n")
    out.flush()
    return problems


def scan_report(
    lines: Iterable[str], out: IO[str], colour: bool, ner: NerFinder | None = None, prefilter: bool = True
) -> int:
    findings = 0
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\n")
        spans = detect(text, None, ner, prefilter=prefilter)
        if not spans:
            continue
        findings += len(spans)
        shown, last = [], 0
        for span in spans:
            if span.start < last:  # inside a URL already shown whole
                continue
            shown.append(text[last : span.start])
            value = text[span.start : span.end]
            if colour:
                shown.append(f"\x1b[{_COLOURS.get(span.label, '36')};1m[{span.label}: {value}]\x1b[0m")
            else:
                shown.append(f"[{span.label}: {value}]")
            last = span.end
        shown.append(text[last:])
        out.write(f"{number}: {''.join(shown)}\n")
    out.write(f"{findings} finding(s)\n")
    return findings


def main(path: str | None, jsonl: bool, ner_model: str = "off", prefilter: bool = True) -> int:
    ner = load_ner(ner_model)
    source: IO[str] = open(path, encoding="utf-8", errors="replace") if path else sys.stdin
    try:
        if jsonl:
            scan_jsonl(source, sys.stdout, ner, prefilter)
            return 0
        found = scan_report(source, sys.stdout, colour=sys.stdout.isatty(), ner=ner, prefilter=prefilter)
        return 1 if found else 0
    finally:
        if path:
            source.close()
