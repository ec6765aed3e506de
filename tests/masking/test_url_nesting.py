"""A URL around a secret: reported as a URL, while only the secret in it is masked by default."""

from __future__ import annotations

import json
import subprocess
import sys

from mcp_guard.masking.detect import detect
from mcp_guard.masking.mask import Masker, Operator, default_operators
from mcp_guard.masking.vault import Vault
from tests.conftest import ROOT

# Built at run time, so no token-shaped value sits in the file.
TOKEN = "Zq8Lm3Pq9" + "Rt7Vw2Xy5" + "Ab1Cd4Ef6Gh"
RESET = f"https://app.example.com/reset?token={TOKEN}&u=1"
PASSWORD = "pa55" + "word"
USERINFO = f"https://bob:{PASSWORD}@example.com/x"


def _found(text: str) -> list[tuple[str, str]]:
    return [(s.label, s.text(text)) for s in detect(text)]


def test_a_reset_link_is_one_url_with_its_token_a_secret_inside_it() -> None:
    text = f"reset: {RESET} now"
    assert _found(text) == [("URL", RESET), ("SECRET", TOKEN)]


def test_a_url_with_a_password_in_its_userinfo_is_still_reported_as_a_url() -> None:
    assert _found(USERINFO) == [("URL", USERINFO), ("SECRET", PASSWORD)]


def test_the_default_masker_hides_the_token_and_leaves_the_link_readable() -> None:
    masked = Masker(default_operators(), Vault()).text(f"reset: {RESET} now", "srv")
    assert TOKEN not in masked
    assert masked.startswith("reset: https://app.example.com/reset?token=<SECRET_")
    assert masked.endswith("&u=1 now")


def test_a_policy_that_masks_urls_hides_the_whole_link_once() -> None:
    operators = {**default_operators(), "URL": Operator("placeholder")}
    masked = Masker(operators, Vault()).text(f"reset: {RESET} and {USERINFO} now", "srv")
    assert masked == "reset: <URL_1> and <URL_2> now"


def test_scan_jsonl_reports_the_url_and_the_secret_and_masks_without_leaking() -> None:
    line = json.dumps({"id": 1, "text": f"go {RESET}"})
    done = subprocess.run([sys.executable, "-m", "mcp_guard", "scan", "--jsonl"], input=line + "\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    reply = json.loads(done.stdout)
    text = f"go {RESET}"
    assert [(s["label"], text[s["start"]:s["end"]]) for s in reply["spans"]] == [("URL", RESET), ("SECRET", TOKEN)]
    assert TOKEN not in reply["masked"] and reply["masked"] == "go <URL_1>"
    assert TOKEN not in done.stderr


def test_a_url_that_cuts_through_a_span_is_not_kept_around_it() -> None:
    # An email that runs past the URL's end: the URL cannot be drawn around it, so it is dropped as before.
    from mcp_guard.masking.spans import Span, resolve
    url, email = Span(0, 30, "URL"), Span(20, 40, "EMAIL")
    assert resolve([url, email]) == [email]
