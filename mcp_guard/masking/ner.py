"""PERSON and LOCATION, found by a spaCy model through presidio-analyzer (``mcp-guard[ner]``).

Names and places have no pattern; a statistical model finds them. This is optional: the
default install stays light, and the structured detectors in ``detect.py`` work without it.
The policy's ``masking.ner`` picks the model: ``auto`` (the default) uses the largest English
spaCy pipeline that is installed (``en_core_web_lg``, ``_md``, ``_sm``) and nothing when none is;
``off`` never loads one; any other value is a model package name or a model folder, and the
guard refuses to start when it cannot be loaded. Nothing is ever downloaded at run time:
presidio would fetch a missing model, so a missing one is caught here first.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .detect import Span

__all__ = ["NER_LABELS", "NerFinder", "load_ner"]

logger = logging.getLogger(__name__)

NER_LABELS = frozenset({"PERSON", "LOCATION"})
AUTO_MODELS = ("en_core_web_lg", "en_core_web_md", "en_core_web_sm")
# spaCy refuses texts over 1,000,000 characters; long results are read in windows this long,
# cut at whitespace so that no name is split between two.
WINDOW = 100_000
# presidio's spaCy recognizer scores its entities 0.85; lower scores come from context rules.
MIN_SCORE = 0.5

NerFinder = Callable[[str], list[Span]]


def load_ner(setting: str) -> NerFinder | None:
    """The finder the policy asks for, None for none; ConfigError when a named one cannot load."""
    if setting == "off":
        return None
    auto = setting == "auto"
    if auto and not any(importlib.util.find_spec(name) for name in AUTO_MODELS):
        return None  # checked before importing spaCy, which costs a second of start-up
    try:
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer
    except ImportError as exc:
        if auto:
            return None
        raise ConfigError(f"masking.ner: {setting!r} needs the NER extra: pip install 'mcp-guard[ner]'") from exc
    if auto:
        model = next((name for name in AUTO_MODELS if spacy.util.is_package(name)), None)
        if model is None:
            return None
    else:
        model = setting
        if not (spacy.util.is_package(model) or Path(model).is_dir()):
            raise ConfigError(
                f"masking.ner: the spaCy model {model!r} is not installed, and mcp-guard never downloads one at run "
                "time. Install it (pip install the model's wheel from spaCy's releases, e.g. en_core_web_sm), "
                "give the path of a model folder, or set masking.ner: off"
            )
    try:
        engine = NlpEngineProvider(
            nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
        ).create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(SpacyRecognizer(supported_language="en", supported_entities=sorted(NER_LABELS)))
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
    except Exception as exc:  # a broken model folder, an incompatible spaCy version
        raise ConfigError(f"masking.ner: the spaCy model {model!r} could not be loaded: {exc}") from exc
    logger.info("NER masking on, with the spaCy model %s", model)
    return _Finder(analyzer)


class _Finder:
    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer

    def __call__(self, text: str) -> list[Span]:
        spans: list[Span] = []
        for offset, window in _windows(text):
            for hit in self.analyzer.analyze(window, language="en", entities=sorted(NER_LABELS), score_threshold=MIN_SCORE):
                if hit.entity_type in NER_LABELS and hit.end > hit.start:
                    spans.append(Span(offset + hit.start, offset + hit.end, hit.entity_type))
        return spans


def _windows(text: str) -> list[tuple[int, str]]:
    out, start = [], 0
    while len(text) - start > WINDOW:
        cut = max(text.rfind(" ", start, start + WINDOW), text.rfind("\n", start, start + WINDOW))
        if cut <= start:
            cut = start + WINDOW
        out.append((start, text[start:cut]))
        start = cut
    out.append((start, text[start:]))
    return out
