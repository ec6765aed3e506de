"""The registry of detectors (masking/detectors/): every label has detectors, the runner and the
pre-pass both read them, and each entry's own examples and look-alikes hold."""

from __future__ import annotations

import sys

import pytest

from mcp_guard.masking import detect, fast
from mcp_guard.masking.detectors import REGISTRY, Detector, Hint, register

detect_module = sys.modules["mcp_guard.masking.detect"]

EXAMPLES = [(d.name, text) for d in REGISTRY for text in d.examples]
LOOK_ALIKES = [(d.name, text) for d in REGISTRY for text in d.not_flagged]
BY_NAME = {d.name: d for d in REGISTRY}


def test_every_label_has_a_detector_in_the_registry() -> None:
    covered = {label for d in REGISTRY for label in d.labels}
    assert covered == set(detect_module.LABELS)


def test_detector_names_are_unique() -> None:
    assert len(BY_NAME) == len(REGISTRY)


@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EXAMPLES)])
def test_each_detector_finds_its_own_examples(name: str, text: str) -> None:
    labels = {s.label for s in detect(text)}
    assert labels & BY_NAME[name].labels, labels


@pytest.mark.parametrize(("name", "text"), LOOK_ALIKES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LOOK_ALIKES)])
def test_each_detectors_look_alikes_are_left_alone(name: str, text: str) -> None:
    """Nothing is found in them (but the URLs they hold: a URL is reported wherever it is)."""
    assert [(s.label, text[s.start:s.end]) for s in detect(text) if s.label != "URL"] == []


def test_every_detector_gives_the_pre_pass_something_to_look_for() -> None:
    with pytest.raises(ValueError, match="gives the pre-pass nothing"):
        register(Detector("blind", frozenset({"EMAIL"}), (), find=lambda text, low: iter(())))
    assert "blind" not in {d.name for d in REGISTRY}


@pytest.mark.skipif(not fast.AVAILABLE, reason="hyperscan has no wheel for this platform: the pre-pass is off")
def test_the_pre_pass_looks_for_every_hint_of_every_detector() -> None:
    families = fast._families()
    hints = [(d.labels, h) for d in REGISTRY for h in d.hints]
    assert [f.labels for f in families] == [labels for labels, _ in hints]
    assert {label for f in families for label in f.labels} == set(detect_module.FINDERS)


@pytest.mark.skipif(not fast.AVAILABLE, reason="hyperscan has no wheel for this platform: the pre-pass is off")
@pytest.mark.parametrize(("name", "text"), EXAMPLES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EXAMPLES)])
def test_each_example_is_found_through_the_pre_pass_in_a_long_text(name: str, text: str) -> None:
    filler = "lorem ipsum dolor sit amet, " * 40 + "\n"  # the example starts a line, as it did alone
    long_text = filler + text + "\n" + filler
    assert len(long_text) >= detect_module.FAST_FROM
    shifted = [(s.start + len(filler), s.end + len(filler), s.label) for s in detect(text)]
    assert [(s.start, s.end, s.label) for s in detect(long_text)] == shifted


def test_a_hint_is_plain_data() -> None:
    hint = Hint("abc", back=3)
    assert (hint.pattern, hint.back, hint.fwd, hint.som, hint.run) == ("abc", 3, None, False, False)
