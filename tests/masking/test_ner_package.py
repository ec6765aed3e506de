"""The NER extra loads a spaCy pipeline installed as a Python package, as the official English
models install (``pip install <release wheel>``), not only one given by its folder.

The package is real: a module with spaCy's ``load()`` entry point and its distribution
metadata, on the path of a separate ``mcp-guard scan`` process, around a blank pipeline whose
entity ruler knows one name and one place. Nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy", reason="the NER tests need the ner extra: pip install -e '.[test]'")
pytest.importorskip("presidio_analyzer", reason="the NER tests need the ner extra: pip install -e '.[test]'")

PACKAGE = "mcpg_tiny_ner"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([
        {"label": "PERSON", "pattern": [{"LOWER": "wanjiru"}, {"LOWER": "kamau"}]},
        {"label": "GPE", "pattern": "Mombasa"},
    ])
    package = root / PACKAGE
    package.mkdir()
    nlp.to_disk(package / "pipeline")
    (package / "__init__.py").write_text(
        "from pathlib import Path\nimport spacy\n\n\ndef load(**overrides):\n"
        "    return spacy.load(Path(__file__).parent / 'pipeline', **overrides)\n"
    )
    info = root / f"{PACKAGE}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.0.1\n")
    (info / "RECORD").write_text("")
    return root


def _scan(site: Path, ner: str, text: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "mcp_guard", "scan", "--jsonl", "--ner", ner]
    line = json.dumps({"id": 1, "text": text}) + "\n"
    return subprocess.run(argv, input=line, capture_output=True, text=True, timeout=120, env=env)


def test_a_pipeline_installed_as_a_package_is_loaded_by_its_name(site: Path) -> None:
    done = _scan(site, PACKAGE, "Wanjiru Kamau flew to Mombasa; mail wk@example.org")
    assert done.returncode == 0, done.stderr
    assert '"masked": "<PERSON_1> flew to <LOCATION_1>; mail <EMAIL_1>"' in done.stdout


def test_structured_spans_stay_where_the_model_also_finds_something(site: Path) -> None:
    done = _scan(site, PACKAGE, '{"city": "Mombasa", "full_name": "Wanjiru Kamau"}')
    assert done.returncode == 0, done.stderr
    assert "Mombasa" not in done.stdout and "Wanjiru" not in done.stdout


def test_a_package_name_that_is_not_installed_is_refused_not_downloaded(site: Path) -> None:
    done = _scan(site, PACKAGE + "_missing", "nothing")
    assert done.returncode != 0
    assert "not installed" in done.stderr and "never downloads" in done.stderr
