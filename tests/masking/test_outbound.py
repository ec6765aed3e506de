"""Masking whole messages toward the client: the walker, the vault's own search, long texts."""

from __future__ import annotations

import base64
import json
import secrets
import string
import sys

import pytest

from mcp_guard.masking.detect import detect
from mcp_guard.masking.mask import _CONTEXT, _WINDOW, Masker, default_operators, detect_long
from mcp_guard.masking.outbound import WORKER_SWITCH_S, Masked, in_worker, mask_message, mask_tree
from mcp_guard.masking.vault import MAX_FIND_VALUES, Vault


def key() -> str:
    return "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))


def masker() -> Masker:
    return Masker(default_operators(), Vault())


def test_the_vault_finds_its_values_again_longest_first() -> None:
    vault = Vault()
    short, longer = vault.placeholder("SECRET", "hunter22", "a"), vault.placeholder("SECRET", "hunter22-extra", "a")
    spans = vault.find("x hunter22-extra y hunter22 z hun")
    assert [(s.start, s.end) for s in spans] == [(2, 16), (19, 27)]
    assert short != longer


def test_values_too_short_to_search_for_are_left_to_the_detectors() -> None:
    vault = Vault()
    vault.placeholder("PERSON", "Al", "a")
    assert vault.find("Al and Alice") == []


def test_a_chain_of_values_each_a_prefix_of_the_next_is_still_found() -> None:
    vault = Vault()
    for length in range(4, 600):  # nests deeper than a regex tree may
        vault.placeholder("SECRET", "q" * length, "a")
    spans = vault.find("b" + "q" * 599 + "b")
    assert [(s.start, s.end) for s in spans] == [(1, 600)]


def test_the_vaults_search_is_bounded_however_many_values_it_holds() -> None:
    vault = Vault()
    for i in range(MAX_FIND_VALUES + 50):
        vault.placeholder("EMAIL", f"user{i}@example.com", "a")
    assert vault.find(f"user{MAX_FIND_VALUES + 10}@example.com") == []
    assert len(vault.find("user7@example.com")) == 1


def test_a_laundered_value_comes_back_as_its_placeholder_though_no_detector_knows_it() -> None:
    m = masker()
    first = m.text("db password=Tr0ub4dor-staple", "a")
    assert first == "db password=<SECRET_1>"
    assert detect("Tr0ub4dor-staple") == []
    assert m.text("the file says Tr0ub4dor-staple", "a") == "the file says <SECRET_1>"


def test_long_texts_read_in_windows_find_what_one_pass_finds_across_every_edge() -> None:
    m = masker()
    filler = "lorem ipsum dolor sit amet, "
    text = filler * ((3 * _WINDOW + 2 * _CONTEXT) // len(filler))
    pieces = list(text)
    # Values and a key=value pair straddling each window edge, and one just past the context.
    for edge in (_WINDOW, 2 * _WINDOW, 3 * _WINDOW):
        for offset, value in ((-9, "jane.doe@example.com"), (-40, "password=Zq81hh2k"), (_CONTEXT + 3, key())):
            at = edge + offset
            pieces[at : at + len(value)] = list(value)
    text = "".join(pieces)
    assert detect_long(text, m.labels) == detect(text, m.labels)


def test_a_value_found_in_one_window_is_masked_where_it_recurs_windows_later() -> None:
    """Only its first copy looks like a secret (``password=`` before it); the bare copy far below
    is found as a repeat of it, once, over the whole text, not inside each window."""
    m = masker()
    password = "Tr0ub4dor-" + secrets.token_hex(4)
    filler = "lorem ipsum dolor sit amet, " * ((3 * _WINDOW) // 28)
    text = f"db password={password}\n{filler}the file says {password} again"
    spans = detect_long(text, m.labels)
    assert spans == detect(text, m.labels)
    assert [text[s.start : s.end] for s in spans if s.label == "SECRET"] == [password, password]
    assert password not in m.text(text, "a")


def test_protocol_fields_pass_as_they_are_and_everything_else_is_masked() -> None:
    secret = key()
    message = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {
            "progressToken": "tok-" + secret[4:], "progress": 1234567890123, "total": 2,
            "message": f"sending {secret}", "_meta": {"note": "jane.doe@example.com"},
        },
    }
    out = mask_message(masker(), message, "a")
    assert out["params"]["progressToken"] == message["params"]["progressToken"]
    assert out["params"]["progress"] == 1234567890123
    assert out["params"]["message"] == "sending <SECRET_1>"
    assert out["params"]["_meta"] == {"note": "<EMAIL_1>"}


def test_an_error_from_the_upstream_is_masked_in_its_message_and_data() -> None:
    secret = key()
    message = {"jsonrpc": "2.0", "id": 3, "error": {"code": -32000, "message": f"bad {secret}", "data": {"k": secret}}}
    out = mask_message(masker(), message, "a")
    assert out["error"] == {"code": -32000, "message": "bad <SECRET_1>", "data": {"k": "<SECRET_1>"}}
    assert out["id"] == 3


def test_a_value_split_over_three_text_blocks_is_cut_where_it_starts() -> None:
    email = "jane.doe@example.com"
    blocks = [{"type": "text", "text": "mail " + email[:4]}, {"type": "text", "text": email[4:9]},
              {"type": "text", "text": email[9:] + " now"}]
    out = mask_tree(masker(), {"content": blocks}, "a")
    assert [b["text"] for b in out["content"]] == ["mail <EMAIL_1>", "", " now"]


def test_text_in_a_blob_is_masked_and_stays_base64() -> None:
    blob = base64.b64encode(b"owner jane.doe@example.com").decode()
    out = mask_tree(masker(), {"contents": [{"uri": "file:///x", "blob": blob}]}, "a")
    assert base64.b64decode(out["contents"][0]["blob"]) == b"owner <EMAIL_1>"


def test_binary_content_without_secrets_passes_byte_for_byte() -> None:
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00" + bytes(range(256)) * 4).decode()
    block = {"type": "image", "mimeType": "image/png", "data": data}
    assert mask_tree(masker(), {"content": [block]}, "a") == {"content": [block]}


def test_binary_content_carrying_a_vault_value_is_withheld() -> None:
    m = masker()
    m.text("db password=Tr0ub4dor-staple", "a")
    data = base64.b64encode(b"\x89PNG\x00\xff" + b"Tr0ub4dor-staple" + b"\x00").decode()
    out = mask_tree(m, {"content": [{"type": "image", "mimeType": "image/png", "data": data}]}, "a")
    assert out["content"][0]["type"] == "text" and "withheld" in out["content"][0]["text"]
    assert "Tr0ub4dor" not in json.dumps(out)


def test_content_that_claims_to_be_base64_but_is_not_is_withheld() -> None:
    out = mask_tree(masker(), {"contents": [{"uri": "file:///x", "blob": "not base64 at all!"}]}, "a")
    assert "withheld" in out["contents"][0]["text"] and "blob" not in out["contents"][0]


def test_a_result_the_pipeline_marked_as_masked_is_not_walked_again() -> None:
    done = Masked({"content": [{"type": "text", "text": "<EMAIL_1> already"}]})
    message = {"jsonrpc": "2.0", "id": 1, "result": done}
    assert mask_message(masker(), message, "a")["result"] is done


@pytest.mark.anyio
async def test_a_worker_job_runs_with_a_short_switch_interval_and_the_old_one_comes_back() -> None:
    """While a job holds the GIL in its thread, the event loop gets it back within the short
    interval, not the interpreter's 5 ms (each wait of a ping's several loop turns)."""
    before = sys.getswitchinterval()
    seen = await in_worker(sys.getswitchinterval)
    assert seen <= WORKER_SWITCH_S < before
    assert sys.getswitchinterval() == before


@pytest.mark.anyio
async def test_the_switch_interval_comes_back_when_the_worker_job_fails() -> None:
    before = sys.getswitchinterval()

    def fails() -> None:
        raise ValueError("detector broke")

    with pytest.raises(ValueError):
        await in_worker(fails)
    assert sys.getswitchinterval() == before
