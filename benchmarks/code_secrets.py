"""False spans in clean code: what the detectors find in the sources of installed packages.

    python benchmarks/code_secrets.py                       # this venv's site-packages and ./node_modules
    python benchmarks/code_secrets.py DIR [DIR ...] [--examples 40] [--max-file-kb 2000]

Installed packages are public, reviewed code and configuration: every SECRET found in them is a
false one as far as a coding agent reading them through the guard is concerned (a placeholder
where the code had a name breaks the edit it writes). Issue 15's bar is at most one SECRET per MB.
Per root this prints MB read, spans per MB by label, SECRET per MB by top-level package, and, for
the SECRET spans, where they are and the text before them; a value is shown by its shape only
(length and character classes), never as written, since a detector took it for a secret.
Minified bundles (*.min.js) and files over --max-file-kb are skipped.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcp_guard.masking.detect import detect  # noqa: E402

SUFFIXES = {".py", ".pyi", ".toml", ".cfg", ".ini", ".json", ".yaml", ".yml", ".js", ".mjs", ".cjs", ".ts"}


def files(root: Path, max_bytes: int) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if p.suffix in SUFFIXES and "__pycache__" not in p.parts and not p.name.endswith(".min.js")
        and p.is_file() and p.stat().st_size <= max_bytes
    )


def shape(value: str) -> str:
    """What a value is made of, not what it says: its length and classes (a: lower, A: upper, 9: digit, ~: other)."""
    kinds = "".join(k for k, test in (("a", str.islower), ("A", str.isupper), ("9", str.isdigit)) if any(map(test, value)))
    return f"{len(value)} chars [{kinds}{'~' if any(not c.isalnum() for c in value) else ''}]"


def package_of(root: Path, path: Path) -> str:
    parts = path.relative_to(root).parts
    if len(parts) > 1 and parts[0].startswith("@"):
        return "/".join(parts[:2])
    return parts[0]


def sweep(root: Path, max_bytes: int, examples: int) -> None:
    size, labels, by_package, sizes, shown = 0, Counter[str](), Counter[str](), Counter[str](), []
    started = time.perf_counter()
    for path in files(root, max_bytes):
        text = path.read_text(encoding="utf-8", errors="replace")
        n = len(text.encode())
        size += n
        package = package_of(root, path)
        sizes[package] += n
        for span in detect(text):
            labels[span.label] += 1
            if span.label == "SECRET":
                by_package[package] += 1
                if len(shown) < examples:
                    before = text[max(0, span.start - 40) : span.start]
                    shown.append(f"  {path.relative_to(root)}: {before!r} + {shape(text[span.start:span.end])}")
    mb = size / 1e6
    if not mb:
        print(f"== {root}: nothing to read")
        return
    print(f"== {root}: {mb:.1f} MB in {time.perf_counter() - started:.0f} s; SECRET/MB {labels['SECRET'] / mb:.2f}")
    print("  spans/MB by label: " + ", ".join(f"{k} {v / mb:.2f}" for k, v in labels.most_common()))
    worst = sorted(by_package, key=lambda p: -by_package[p])[:12]
    print("  SECRET by package: " + ", ".join(f"{p} {by_package[p]} ({sizes[p] / 1e6:.2f} MB)" for p in worst))
    print("\n".join(shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="*", type=Path)
    parser.add_argument("--examples", type=int, default=40, help="SECRET spans shown per root")
    parser.add_argument("--max-file-kb", type=int, default=2000)
    args = parser.parse_args()
    roots = args.roots or [Path(sysconfig.get_paths()["purelib"]), ROOT / "node_modules"]
    for root in roots:
        sweep(root.resolve(), args.max_file_kb * 1000, args.examples)


if __name__ == "__main__":
    main()
