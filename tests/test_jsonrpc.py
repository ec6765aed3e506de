"""The JSON-RPC parser's rules for hostile input, as a table (the relay tests cover the wire)."""

from __future__ import annotations

import pytest

from mcp_guard.protocol import jsonrpc

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("raw", "code", "rid"),
    [
        (b'{"jsonrpc":"2.0","id":3,"result":{"content":[', -32700, 3),
        (b'{"jsonrpc":"2.0","id":"a-1","result":NaN}', -32700, "a-1"),
        (b'{"jsonrpc":"2.0","id":4,"result":Infinity}', -32700, 4),
        (b'{"jsonrpc":"2.0","id":5,"result":1e999}', -32700, 5),
        (b'{"jsonrpc":"2.0","id":6,"result":' + DEEP + b"}", -32600, 6),
        (b'{"jsonrpc":"2.0","result":' + b"[" * 101 + b"]" * 101 + b',"id":7}', -32600, 7),
        (b'{"jsonrpc":"2.0","result":' + b'{"a":' * 150 + b"0" + b"}" * 150 + b',"id":8}', -32600, 8),
        (b'\xff\xfe{"id":9}', -32700, 9),
        (b"[1, 2]", -32700, None),
        (b"Traceback (most recent call last):", -32700, None),
        (b'{"jsonrpc":"2.0","id":[1],"result":', -32700, None),
    ],
    ids=[
        "truncated", "nan", "infinity", "overflowing-float", "100k-deep", "deep-id-last", "deep-objects",
        "invalid-utf8", "batch", "prose", "unhashable-id",
    ],
)
def test_hostile_input_is_a_parse_error_with_the_id_it_shows(raw: bytes, code: int, rid: object) -> None:
    with pytest.raises(jsonrpc.ParseError) as caught:
        jsonrpc.loads(raw)
    assert caught.value.code == code
    assert caught.value.id == rid


def test_the_depth_limit_itself_is_accepted() -> None:
    inner = b"[" * (jsonrpc.MAX_DEPTH - 1) + b"]" * (jsonrpc.MAX_DEPTH - 1)
    assert jsonrpc.loads(b'{"id":1,"result":' + inner + b"}")["id"] == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"result":"a\\ud800b"}', {"result": "a\ufffdb"}),
        (b'{"result":"\\udfff"}', {"result": "\ufffd"}),
        (b'{"k\\ud800":["\\uDBFF", 1]}', {"k\ufffd": ["\ufffd", 1]}),
        (b'{"result":"\\ud83d\\ude00"}', {"result": "\U0001f600"}),  # a real pair is one character
        (b'{"result":"\\\\ud800"}', {"result": "\\ud800"}),  # an escaped backslash, not a surrogate
    ],
    ids=["in-a-value", "low-alone", "in-a-key-and-a-list", "a-valid-pair", "escaped-backslash"],
)
def test_lone_surrogates_become_replacement_characters(raw: bytes, expected: dict[str, object]) -> None:
    parsed = jsonrpc.loads(raw)
    assert parsed == expected
    jsonrpc.dumps(parsed).decode("utf-8")  # what goes on is valid UTF-8


def test_dumps_writes_valid_utf8_even_for_a_lone_surrogate_made_after_parsing() -> None:
    line = jsonrpc.dumps({"jsonrpc": "2.0", "id": 1, "result": "x\ud800"})
    assert line.decode("utf-8") == '{"jsonrpc":"2.0","id":1,"result":"x\ufffd"}\n'


def test_parse_errors_quote_no_content() -> None:
    secret = "AKIA" + "Q" * 16
    with pytest.raises(jsonrpc.ParseError) as caught:
        jsonrpc.loads(b'{"id":1,"result":"' + secret.encode() + b'" trailing}')
    assert secret not in str(caught.value)
