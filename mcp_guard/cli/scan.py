"""``mcp-guard scan``: the masking engine on a text file or stdin."""

from __future__ import annotations

import argparse


def register(sub) -> None:  # type: ignore[no-untyped-def]
    scan = sub.add_parser("scan", help="find personal data and secrets in text (the masking engine)")
    scan.add_argument("file", nargs="?", help="a text file (default: stdin)")
    scan.add_argument("--jsonl", action="store_true", help='read {"id","text"} lines, write {"id","spans","masked"} lines')
    scan.add_argument("--ner", default="off", help="PERSON and LOCATION too: auto, or a spaCy model name or folder (the ner extra)")
    scan.add_argument("--no-prefilter", dest="prefilter", action="store_false",
                      help="read every text whole, without the Hyperscan pre-pass (gives the same spans; for checks)")
    scan.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    from ..scan import main as scan_main

    return scan_main(args.file, args.jsonl, args.ner, getattr(args, "prefilter", True))
