"""JSON is masked value by value, and each value is read with its key, as the raw text has it.

The detectors label names, places, bare SSNs and phones by the key before them (``"city":
"Lisbon"``). A tool result that is JSON (a text block, structuredContent, a resource, an
upstream's message toward the client) is parsed and walked, so each walker must give a value its
key back: these tests hold every walker to what `detect` finds in the same JSON text."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from mcp_guard.masking.detect import detect
from mcp_guard.masking.mask import Masker, default_operators, labels_in
from mcp_guard.masking.outbound import mask_message, mask_tree
from mcp_guard.masking.vault import Vault


def masker() -> Masker:
    return Masker(default_operators(), Vault())


def luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def record(seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A CRM-shaped record with values made at run time; the second item maps each to its label."""
    rng = random.Random(seed)
    surname = rng.choice("BCDFGKLMNPRSTVZ") + "".join(rng.choice("aeiou") + rng.choice("lnrstv") for _ in range(3))
    name, city = f"Maren {surname}", rng.choice(["Lisbon", "Porto", "Leeds", "Bergen", "Ghent"])
    ssn = f"{rng.randrange(100, 600)}{rng.randrange(10, 99)}{rng.randrange(1000, 9999)}"
    phone, card = int(f"415555{rng.randrange(1000, 9999)}"), luhn_card(rng)
    data = {
        "customer": {"full_name": name, "city": city, "ssn": ssn},
        "phone": phone,
        "card_number": float(card),
        "telecom": [{"system": "phone", "value": f"+1 415 555 {rng.randrange(1000, 9999)}"}],
        "owner": {"name": {"S": f"Ines {surname}"}},
        "given": [f"Joana {surname}"],
    }
    labels = {
        name: "PERSON", city: "LOCATION", ssn: "US_SSN", str(phone): "PHONE", card: "CREDIT_CARD",
        data["telecom"][0]["value"]: "PHONE", f"Ines {surname}": "PERSON", f"Joana {surname}": "PERSON",
    }
    return data, labels


def leaked(masked: Any, labels: dict[str, str]) -> list[str]:
    text = json.dumps(masked, ensure_ascii=False)
    return [label for value, label in labels.items() if value in text]


def test_detect_labels_every_value_of_the_record_in_its_json_text() -> None:
    """The premise: the detectors find each value in the raw JSON text by its key."""
    data, labels = record(1)
    text = json.dumps(data)
    found = {text[s.start : s.end] for s in detect(text)}
    card = next(v for v, label in labels.items() if label == "CREDIT_CARD")
    missing = [label for value, label in labels.items() if value not in found and value != card]
    assert missing == []


@pytest.mark.parametrize("seed", range(6))
def test_a_json_text_block_is_masked_as_its_text_is_read(seed: int) -> None:
    data, labels = record(seed)
    out = masker().text(json.dumps(data, indent=2), "crm")
    assert leaked(json.loads(out), labels) == []


@pytest.mark.parametrize("seed", range(6))
def test_structured_content_is_masked_with_each_value_read_under_its_key(seed: int) -> None:
    data, labels = record(seed)
    out = masker().tool_result({"content": [], "structuredContent": data}, "crm")
    assert leaked(out["structuredContent"], labels) == []


@pytest.mark.parametrize("seed", range(6))
def test_the_egress_walker_reads_each_value_under_its_key_too(seed: int) -> None:
    data, labels = record(seed)
    message = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": data}}
    assert leaked(mask_message(masker(), message, "crm"), labels) == []
    assert leaked(mask_tree(masker(), {"error": data}, "crm"), labels) == []


def test_a_card_number_written_as_a_float_is_masked_and_other_floats_are_kept() -> None:
    m = masker()
    out = m.value({"card": 4111111111111111.0, "ratio": 0.25, "big": 1e300, "count": 12.0}, "shop")
    assert out["card"].startswith("<CREDIT_CARD_")
    assert (out["ratio"], out["big"], out["count"]) == (0.25, 1e300, 12.0)


def test_a_value_under_a_name_value_objects_secret_name_is_a_secret() -> None:
    rng = random.Random(5)
    token = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(28))
    out = masker().value([{"name": "azure_token", "value": token}, {"name": "region", "value": "westeurope"}], "cfg")
    assert token not in json.dumps(out)
    assert out[1]["value"] == "westeurope"


def test_words_under_keys_that_name_no_person_or_place_are_left_as_they_are() -> None:
    data = {"title": "Quarterly Plan", "status": "Running", "name": "read_file", "type": "Object", "city_id": 4412,
            "tags": ["Alpha Beta"], "version": 123456789012}
    assert masker().value(data, "srv") == data


def test_a_multi_line_value_is_still_read_from_its_own_line_starts() -> None:
    vcard = "BEGIN:VCARD\nVERSION:4.0\nFN:Maren Tovalis\nEND:VCARD"
    out = masker().value({"card": vcard}, "contacts")
    assert "Maren Tovalis" not in out["card"]


def test_a_listings_file_and_channel_names_are_not_read_as_people_under_a_bare_name_key() -> None:
    names = ["Meeting Notes", "Annual Report", "Getting Started", "Weekly Sync", "Google Drive", "Invoice Template"]
    listing = {"resources": [{"name": n, "uri": f"file:///docs/{i}"} for i, n in enumerate(names)]}
    assert masker().value(listing, "drive") == listing
    person = masker().value({"resources": [{"name": "Maren Tovalis", "uri": "file:///x"}]}, "drive")
    assert person["resources"][0]["name"].startswith("<PERSON_")


@pytest.mark.parametrize("indent", [None, 2])
def test_json_text_that_repeats_a_key_has_every_value_of_the_key_masked(indent: int | None) -> None:
    """Parsed, ``{"email": "jo@x.io", "email": null}`` holds only the clean last value; the model
    reads the text. Each value of a repeated key is masked, and the pairs stay in their order."""
    data, labels = record(7)
    pairs = [(f'"{key}"', json.dumps(value)) for key, value in data["customer"].items()]
    inner = ", ".join(f"{key}: {value}, {key}: null" for key, value in pairs)
    text = f'{{"customer": {{{inner}}}, "n": 1, "n": 2}}'
    if indent:
        text = text.replace(", ", ",\n  ")
    masked = masker().text(text, "crm")
    assert leaked(masked, labels) == []
    keys = [key for key, _ in json.loads(masked, object_pairs_hook=lambda p: p)[0][1]]
    assert keys == [key for key in data["customer"] for _ in range(2)]
    assert masked.count('"n"') == 2


def test_json_text_that_repeats_a_key_with_nothing_to_mask_is_returned_as_it_was() -> None:
    text = '{"status": "ok", "status": "done", "items": [{"id": 1, "id": 2}]}'
    assert masker().text(text, "crm") == text


KEYED = [
    ({"home_phone": "4155550143"}, "PHONE"), ({"phone2": 4155550143}, "PHONE"), ({"contactNumber": "+1 415 555 0143"}, "PHONE"),
    ({"social_security_number": "219099999"}, "US_SSN"), ({"tax_id": "219-09-9999"}, "US_SSN"),
    ({"fname": "Maren"}, "PERSON"), ({"customer": "Maren Kowalczyk"}, "PERSON"), ({"person": "Maren Kowalczyk"}, "PERSON"),
    ({"emergencyContactName": "Ines Brandt"}, "PERSON"), ({"full_name": "Conan O'Brien"}, "PERSON"),
    ({"municipality": "Lisbon"}, "LOCATION"), ({"placeOfBirth": "Porto"}, "LOCATION"),
    ({"Name": "DB_PASSWORD", "Value": "t4lkT0me"}, "SECRET"), ({"ParameterKey": "DbPassword", "ParameterValue": "t4lkT0me"}, "SECRET"),
    ({"type": "mobile", "number": "4155550143"}, "PHONE"), ({"password": ["t4lkT0me", "hunter22"]}, "SECRET"),
    ({"password": 83920174}, "SECRET"), ({"pin": "8391"}, "SECRET"), ({"cvv": 123}, "SECRET"),
    ({"ssn": {"value": "219099999", "verified": True}}, "US_SSN"), ({"secret": {"value": "t4lkT0me-Q8x"}}, "SECRET"),
    ({"Item": {"profile": {"M": {"full_name": {"S": "Maren Kowalczyk"}}}}}, "PERSON"),
    ({"token": 84213377}, "SECRET"), ({"authToken": 5501927}, "SECRET"), ({"api_key": 99120455310}, "SECRET"),
    ({"pw": "t4lkT0me"}, "SECRET"), ({"db_pw": "t4lkT0me"}, "SECRET"), ({"userPw": "hunter2!"}, "SECRET"),
    ({"PW": 20240917}, "SECRET"),
]


def _scalars(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, one in value.items() if key not in ("Name", "ParameterKey", "type", "verified") for s in _scalars(one)]
    if isinstance(value, list):
        return [s for one in value for s in _scalars(one)]
    return [] if isinstance(value, bool) else [str(value)]


@pytest.mark.parametrize(("data", "label"), KEYED, ids=[json.dumps(d)[:40] for d, _ in KEYED])
def test_a_value_is_masked_when_its_key_names_what_it_is(data: dict[str, Any], label: str) -> None:
    """Keys name columns as a table's header does (``home_phone``, ``fname``, camelCase too);
    name/value pairs in other casings, lists and ``{"value": ...}`` objects keep their key; short
    codes (PIN, CVV) and numeric passwords are secrets by their key. Every walker agrees."""
    values = _scalars(data)
    for masked in (masker().value(data, "crm"), mask_tree(masker(), data, "crm"), masker().text(json.dumps(data), "crm")):
        text = masked if isinstance(masked, str) else json.dumps(masked)
        assert not [v for v in values if f'"{v}"' in text or f" {v}" in text or f": {v}" in text], text
        assert f"<{label}_" in text
    assert label in labels_in(data)


@pytest.mark.parametrize("data", [
    {"client": "Chrome"}, {"contact": "Support Team"}, {"district": "3"}, {"tax_id": "12-3456789x"}, {"phone2": "n/a"},
    {"pin": "on"}, {"person": "active"}, {"municipality": 12},
    {"max_tokens": 4096}, {"total_tokens": 18233}, {"token_count": 5120}, {"next_page_token": 20001},
    {"tokenLimit": 8192}, {"stepwise": "t4lkT0me"}, {"token": 12},
])
def test_a_value_that_does_not_look_like_what_its_key_names_is_kept(data: dict[str, Any]) -> None:
    assert masker().value(data, "crm") == data


NAMED_SECRETS = [
    {"api_key": "Tr0ub4dor&84"}, {"access_token": "Ta6tO#kRmgfk80"}, {"token": "327783421379761232"},
    {"x-api-key": "1686019379"}, {"apiKey": "5767561873"}, {"password": "correct horse battery staple"},
    {"sessionId": "a81b2c3d4e"},
]
SECRET_TREES = [
    {"secrets": {"db": "Zq7rTm2pXkL9wB4n"}}, {"password": {"current": "Zq7rTm2pXkL9wB4n"}},
    {"auth": {"user": "admin", "data": "Zq7rTm2pXkL9wB4n"}}, {"api_keys": ["Zq7rTm2pXkL9wB4n", "Wv3sQe8uYh1jKc6d"]},
    {"tokens": [{"value": "Zq7rTm2pXkL9wB4n"}]}, {"credentials": [{"label": "ci", "secret_value": "Zq7rTm2pXkL9wB4n"}]},
]


@pytest.mark.parametrize("data", NAMED_SECRETS + SECRET_TREES, ids=[json.dumps(d)[:40] for d in NAMED_SECRETS + SECRET_TREES])
def test_a_value_under_a_key_that_names_a_secret_is_masked_whatever_it_looks_like(data: dict[str, Any]) -> None:
    """The last word of the key says it (``api_key``, ``x-api-key``, ``access_token``): the value
    need not look like a token; a whole object or list under ``secrets``, ``tokens``, ``api_keys``
    or ``password`` holds secrets. Every walker agrees, and a policy rule on labels sees SECRET."""
    values = [v for v in _scalars(data) if len(v) >= 8]
    for masked in (masker().value(data, "crm"), mask_tree(masker(), data, "crm"), masker().text(json.dumps(data), "crm")):
        text = masked if isinstance(masked, str) else json.dumps(masked)
        assert not [v for v in values if v in text], text
        assert "<SECRET_" in text
    assert "SECRET" in labels_in(data)


@pytest.mark.parametrize("data", [
    {"token": "<YOUR_TOKEN>"}, {"api_key": "your_api_key"}, {"token_type": "Bearer"}, {"auth": "required"},
    {"secret": "${SECRET}"}, {"apiKey": "xxxxxxxxxxxx"}, {"tokens": ["Hello", "tokenization"]},
    {"usage": {"max_tokens": {"input": "12000000"}}}, {"keys": ["display_name", "created_at"]},
    {"properties": {"token": {"type": "string", "pattern": "^[A-Za-z0-9]{32}$", "description": "The API token"}}},
    {"api_keys": [{"name": "ci-deploy-key", "created_at": "2024-05-01T10:00:00Z"}]},
])
def test_stand_ins_counts_and_descriptions_under_secret_keys_are_kept(data: dict[str, Any]) -> None:
    for masked in (masker().value(data, "crm"), mask_tree(masker(), data, "crm")):
        assert masked == data
    assert "SECRET" not in labels_in(data)
