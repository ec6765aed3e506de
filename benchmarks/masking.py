"""Masking throughput and recall against presidio-analyzer's pattern recognizers, in one run.

    pip install presidio-analyzer       # for the comparison only
    python benchmarks/masking.py [--mb 20] [--big-mb 100] [--hostile-mb 1] [--only-hostile] [--runs 3] [--cpu]

Inputs come from the seeded corpus generator (fixtures/pii/generate.py): "clean" is text with
no sensitive values (code, hashes, UUIDs, timestamps, versions, numbers), "dense" is the
labeled records (JSON rows, CSV, logs, env dumps, mail, stack traces, configs). Both engines
see the same records: one call per record, and one call per 8 KB of records (the size of a
typical tool result; there the Hyperscan pre-pass of fast.py decides). presidio-analyzer runs
its regex recognizers only (no NLP model), on the labels both engines share. Last, a large
input is streamed through `mcp-guard scan --jsonl` to show that memory stays flat.

Hostile shapes (many distinct emails, repeated `key=`, `sk-`, `http://`, ...) are timed at two
sizes, in seconds per MB for detection and for masking (Masker.text), with the growth from the
small to the large size (1.0 is linear), and presidio-analyzer's seconds per MB on the same text.
``--only-hostile`` times these alone; ``--runs N`` keeps the fastest of N timings of each (other
work on the machine only ever slows a run); ``--cpu`` counts this process's CPU time instead of
wall time (on a shared machine, what the code costs, not what its neighbours cost).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fixtures" / "pii"))

import generate  # noqa: E402

from mcp_guard.masking.detect import detect  # noqa: E402

# presidio's entity names for the labels both engines know.
SHARED = {"EMAIL": "EMAIL_ADDRESS", "CREDIT_CARD": "CREDIT_CARD", "IBAN": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS",
          "US_SSN": "US_SSN", "URL": "URL", "DATE": "DATE_TIME"}


def corpus(mb: float, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    clean: list[dict[str, Any]] = []
    dense: list[dict[str, Any]] = []
    size_clean = size_dense = 0
    batch = 0
    while size_clean < mb * 1e6 or size_dense < mb * 1e6 / 4:
        for record in generate.records(4000, seed + batch):
            if record["kind"] == "clean":
                if size_clean < mb * 1e6:
                    clean.append(record)
                    size_clean += len(record["text"].encode())
            elif size_dense < mb * 1e6 / 4:
                dense.append(record)
                size_dense += len(record["text"].encode())
        batch += 1
    return clean, dense


def chunks(records: list[dict[str, Any]], size: int) -> list[str]:
    out, current, length = [], [], 0
    for record in records:
        current.append(record["text"])
        length += len(record["text"]) + 1
        if length >= size:
            out.append("\n".join(current))
            current, length = [], 0
    if current:
        out.append("\n".join(current))
    return out


def presidio_recognizers() -> list[Any] | None:
    try:
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer, DateRecognizer, EmailRecognizer, IbanRecognizer, IpRecognizer, UrlRecognizer, UsSsnRecognizer,
        )
    except ImportError:
        return None
    return [CreditCardRecognizer(), DateRecognizer(), EmailRecognizer(), IbanRecognizer(), IpRecognizer(), UrlRecognizer(), UsSsnRecognizer()]


def run_presidio(recognizers: list[Any], text: str) -> list[tuple[int, int, str]]:
    out = []
    for recognizer in recognizers:
        for result in recognizer.analyze(text, recognizer.supported_entities, None) or []:
            if result.score >= 0.3:
                out.append((result.start, result.end, result.entity_type))
    return out


def throughput(records: list[dict[str, Any]], fn: Any) -> float:
    size = sum(len(r["text"].encode()) for r in records)
    start = time.perf_counter()
    for record in records:
        fn(record["text"])
    return size / 1e6 / (time.perf_counter() - start)


def recall(records: list[dict[str, Any]], find: Any, names: dict[str, str]) -> dict[str, float]:
    gold, hit = {k: 0 for k in names}, {k: 0 for k in names}
    for record in records:
        found = find(record["text"])
        for g in record["spans"]:
            if g["label"] not in names:
                continue
            gold[g["label"]] += 1
            want = names[g["label"]]
            if any(label == want and s < g["end"] and e > g["start"] for s, e, label in found):
                hit[g["label"]] += 1
    return {k: hit[k] / gold[k] for k in names if gold[k]}


def ours(text: str) -> list[tuple[int, int, str]]:
    return [(s.start, s.end, s.label) for s in detect(text)]


def peak_rss_of_scan(mb: float) -> float:
    """Peak RSS (MB) of `mcp-guard scan --jsonl` streaming ``mb`` megabytes of records."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as tmp:
        written, batch = 0, 0
        while written < mb * 1e6:
            for record in generate.records(4000, 1000 + batch):
                line = json.dumps({"id": record["id"], "text": record["text"]}) + "\n"
                tmp.write(line)
                written += len(line)
            batch += 1
        path = tmp.name
    with open(path, "rb") as source:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "mcp_guard", "scan", "--jsonl"],
            stdin=source, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
        )
    Path(path).unlink()
    return int(done.stderr.decode().strip().splitlines()[-1]) / 1024


def _distinct(template: str, mb: float) -> str:
    out, i, length = [], 0, 0
    while length < mb * 1e6:
        out.append(template.format(i=i, j=i % 10_000, k=i % 256))
        length += len(out[-1]) + 1
        i += 1
    return " ".join(out)


HOSTILE: dict[str, Any] = {
    "distinct emails": lambda mb: _distinct("user{i}@example{k}.com", mb),
    "distinct key=value": lambda mb: _distinct("api_key{i}=Zx9QvL2mT8rP{i:08d}", mb),
    "distinct phones": lambda mb: _distinct("+44 20 7946 {j:04d}", mb),
    "distinct URLs": lambda mb: _distinct("https://x{i}.example/a?b={i}", mb),
    **{f"repeated {unit.strip()!r}": (lambda u: lambda mb: u * int(mb * 1e6 / len(u)))(unit)
       for unit in ("key=", "password=", "sk-", "http://", "x://a:b@", ":", "::", "a@", "1 ", "DE89 ", "xoxb-",
                    "-----BEGIN PRIVATE KEY-----\n")},
}


CLOCK = time.perf_counter


def seconds_per_mb(fn: Any, text: str, runs: int = 1) -> float:
    """The fastest of ``runs`` calls: other work on the machine only ever adds to one."""
    best = float("inf")
    for _ in range(runs):
        start = CLOCK()
        fn(text)
        best = min(best, CLOCK() - start)
    return best / (len(text.encode()) / 1e6)


def hostile(mb: float, recognizers: list[Any] | None, runs: int = 1) -> None:
    from mcp_guard.masking.mask import Masker, default_operators
    from mcp_guard.masking.vault import Vault

    def mask(text: str) -> str:
        return Masker(default_operators(), Vault()).text(text, "bench")

    clock = "CPU" if CLOCK is time.process_time else "wall"
    print(f"hostile shapes, {clock} s/MB at {mb / 4:g} MB and {mb:g} MB (growth: large/small s/MB, 1.0 is linear), fastest of {runs}:")
    print(f"{'shape':<32}{'detect':>8}{'growth':>8}{'mask':>8}{'growth':>8}{'presidio':>10}{'ratio':>7}")
    for name, build in HOSTILE.items():
        small, large = build(mb / 4), build(mb)
        d_small, d_large = seconds_per_mb(detect, small, runs), seconds_per_mb(detect, large, runs)
        m_small, m_large = seconds_per_mb(mask, small, runs), seconds_per_mb(mask, large, runs)
        line = f"{name:<32}{d_large:>8.3f}{d_large / d_small:>8.2f}{m_large:>8.3f}{m_large / m_small:>8.2f}"
        if recognizers is not None:  # on the small size: presidio is slow on these
            p_small = seconds_per_mb(lambda t: run_presidio(recognizers, t), small)
            line += f"{p_small:>10.3f}{p_small / d_small:>6.0f}x"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20, help="MB of clean text (dense text is a quarter of it)")
    parser.add_argument("--big-mb", type=float, default=100, help="MB streamed through scan for the memory check (0: skip)")
    parser.add_argument("--hostile-mb", type=float, default=1, help="MB of each hostile shape (0: skip)")
    parser.add_argument("--only-hostile", action="store_true", help="time the hostile shapes and nothing else")
    parser.add_argument("--runs", type=int, default=1, help="time each hostile shape this many times, keep the fastest")
    parser.add_argument("--cpu", action="store_true", help="time the hostile shapes in this process's CPU seconds, not wall time")
    args = parser.parse_args()
    if args.cpu:
        global CLOCK
        CLOCK = time.process_time
    if args.only_hostile:
        hostile(args.hostile_mb, presidio_recognizers(), args.runs)
        return
    clean, dense = corpus(args.mb, seed=3)
    print(f"clean: {len(clean)} records, {sum(len(r['text']) for r in clean) / 1e6:.1f} MB; dense: {len(dense)} records, {sum(len(r['text']) for r in dense) / 1e6:.1f} MB")
    ours_clean = throughput(clean, detect)
    ours_dense = throughput(dense, detect)
    print(f"mcp-guard detect, one call per record: clean {ours_clean:.1f} MB/s, dense {ours_dense:.1f} MB/s")
    chunked = [{"text": t} for t in chunks(clean, 8192)]
    prose = [{"text": (ROOT / "README.md").read_text()}] * 20
    code = [{"text": p.read_text()} for p in sorted((ROOT / "mcp_guard").rglob("*.py"))] * 5
    dense_chunked = [{"text": t} for t in chunks(dense, 8192)]
    ours_chunked, ours_dense_chunked = throughput(chunked, detect), throughput(dense_chunked, detect)
    print(
        f"mcp-guard detect on tool-result-sized text (8 KB): clean {ours_chunked:.1f} MB/s, dense {ours_dense_chunked:.1f} MB/s, "
        f"prose (README) {throughput(prose, detect):.1f} MB/s, Python source {throughput(code, detect):.1f} MB/s"
    )
    recognizers = presidio_recognizers()
    ours_recall = recall(dense, ours, {k: k for k in SHARED})
    if recognizers is None:
        print("presidio-analyzer is not installed: no comparison (pip install presidio-analyzer)")
    else:
        sample_clean, sample_dense = clean[: max(1, len(clean) // 10)], dense[: max(1, len(dense) // 10)]
        p_clean = throughput(sample_clean, lambda t: run_presidio(recognizers, t))
        p_dense = throughput(sample_dense, lambda t: run_presidio(recognizers, t))
        print(f"presidio-analyzer (7 pattern recognizers, a tenth of the records): clean {p_clean:.2f} MB/s, dense {p_dense:.2f} MB/s")
        print(f"ratio, one call per record: clean {ours_clean / p_clean:.0f}x, dense {ours_dense / p_dense:.0f}x")
        p_chunked = throughput(chunked[: max(1, len(chunked) // 10)], lambda t: run_presidio(recognizers, t))
        p_dense_chunked = throughput(dense_chunked[: max(1, len(dense_chunked) // 10)], lambda t: run_presidio(recognizers, t))
        print(f"presidio-analyzer on the same 8 KB texts: clean {p_chunked:.2f} MB/s, dense {p_dense_chunked:.2f} MB/s; "
              f"ratio clean {ours_chunked / p_chunked:.0f}x, dense {ours_dense_chunked / p_dense_chunked:.0f}x")
        theirs = recall(sample_dense, lambda t: run_presidio(recognizers, t), SHARED)
        ours_same = recall(sample_dense, ours, {k: k for k in SHARED})
        print(f"{'label':<12}{'recall ours':>12}{'presidio':>10}   (same records)")
        for label in SHARED:
            if label in ours_same:
                print(f"{label:<12}{ours_same[label]:>12.3f}{theirs.get(label, 0.0):>10.3f}")
    print("recall on all dense records: " + ", ".join(f"{k} {v:.3f}" for k, v in ours_recall.items()))
    if args.hostile_mb:
        hostile(args.hostile_mb, recognizers, args.runs)
    if args.big_mb:
        small = peak_rss_of_scan(args.big_mb / 10)
        big = peak_rss_of_scan(args.big_mb)
        print(f"scan --jsonl peak RSS: {small:.0f} MB on {args.big_mb / 10:.0f} MB of input, {big:.0f} MB on {args.big_mb:.0f} MB (ratio {big / small:.2f})")


if __name__ == "__main__":
    main()
