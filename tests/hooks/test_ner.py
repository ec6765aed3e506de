"""PERSON and LOCATION through presidio-analyzer and a spaCy pipeline (the ``ner`` extra).

No trained English model can be installed here (spaCy's models are not on PyPI), so the tests
build a real spaCy pipeline folder whose entity ruler knows a few names and places, and give
the guard its path. What is tested is everything around the model: loading without any
download, presidio's mapping of spaCy labels (GPE becomes LOCATION), placeholders through the
guard, structured detectors winning overlaps, and the refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from mcp_guard.errors import ConfigError
from mcp_guard.masking import detect
from tests.conftest import connect, everything, guard

pytestmark = pytest.mark.anyio

spacy = pytest.importorskip("spacy", reason="the NER tests need the ner extra: pip install -e '.[test]'")
pytest.importorskip("presidio_analyzer", reason="the NER tests need the ner extra: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([
        {"label": "PERSON", "pattern": [{"LOWER": "ada"}, {"LOWER": "lovelace"}]},
        {"label": "PERSON", "pattern": [{"LOWER": "grace"}, {"LOWER": "hopper"}]},
        {"label": "GPE", "pattern": "Lisbon"},
        {"label": "LOC", "pattern": [{"LOWER": "mont"}, {"LOWER": "blanc"}]},
    ])
    path = tmp_path_factory.mktemp("ner") / "model"
    nlp.to_disk(path)
    return str(path)


def test_a_named_model_finds_people_and_places_and_leaves_structured_values_to_the_patterns(model: str) -> None:
    from mcp_guard.masking.ner import load_ner

    ner = load_ner(model)
    assert ner is not None
    text = "Ada Lovelace (ada@example.com) flew to Lisbon, then Grace Hopper climbed Mont Blanc."
    spans = detect(text, None, ner)
    found = [(text[s.start : s.end], s.label) for s in spans]
    assert ("Ada Lovelace", "PERSON") in found and ("Grace Hopper", "PERSON") in found
    assert ("Lisbon", "LOCATION") in found and ("Mont Blanc", "LOCATION") in found
    assert ("ada@example.com", "EMAIL") in found
    assert detect(text, frozenset({"EMAIL"}), ner) == [s for s in spans if s.label == "EMAIL"]


def test_a_model_that_is_not_installed_is_refused_with_how_to_install_it_and_never_downloaded() -> None:
    from mcp_guard.masking.ner import load_ner

    with pytest.raises(ConfigError) as caught:
        load_ner("en_core_web_nothere")
    assert "never downloads" in str(caught.value) and "masking.ner: off" in str(caught.value)
    assert load_ner("off") is None


async def test_names_and_places_reach_the_client_as_placeholders(tmp_path: Path, model: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndefaults: {{action: allow}}\nmasking: {{ner: '{model}'}}\n")
    with anyio.fail_after(60):
        async with connect(guard(*everything(), policy=str(policy))) as client:
            result = await client.call_tool("echo", {"message": "Grace Hopper met Ada Lovelace in Lisbon"})
    text = result.content[0].text
    assert "Grace Hopper" not in text and "Ada Lovelace" not in text and "Lisbon" not in text
    assert "<PERSON_1>" in text and "<PERSON_2>" in text and "<LOCATION_1>" in text


def test_a_guard_whose_policy_names_a_missing_model_refuses_to_start(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nmasking: {ner: en_core_web_nothere}\n")
    done = subprocess.run(guard(*everything(), policy=str(policy)), input="", capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "en_core_web_nothere" in done.stderr and "not installed" in done.stderr


def test_scan_finds_people_and_places_with_a_model(tmp_path: Path, model: str) -> None:
    line = '{"id": 1, "text": "Ada Lovelace lives in Lisbon"}\n'
    argv = [sys.executable, "-m", "mcp_guard", "scan", "--jsonl", "--ner", model]
    done = subprocess.run(argv, input=line, capture_output=True, text=True, timeout=60, check=True)
    assert '"masked": "<PERSON_1> lives in <LOCATION_1>"' in done.stdout
