"""Detection is linear on hostile shapes, checked by counting work, never by a clock.

Work is counted in units a quadratic path cannot hide in: every call of the detectors' compiled
patterns is charged the characters it may read (the window it searches, or the match it made
and the pattern's reach when it fails), every scan of the whole text (``find``, ``count``,
``in``, ``lower``...) the characters it reads, and every Python call one unit. Doubling an
input must at most double that work (plus a little slack). The charges are upper bounds (a
failed match is charged the pattern's whole reach), so they say nothing of speed, which
benchmarks/masking.py measures; they only grow faster than the text when the work does.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mcp_guard.masking import detect, fast

detect_module = sys.modules["mcp_guard.masking.detect"]

# A failed match is charged at most this many characters: what a bounded pattern can read.
FAILED_MATCH_REACH = 4096
# Doubling the input may cost this much more than twice the work (fixed costs, rounding).
SLACK = 1.15


class Meter:
    units = 0


def _reach(pattern: re.Pattern[str]) -> int:
    parser: Any = getattr(re, "_parser", None)
    return min(int(parser.parse(pattern.pattern, pattern.flags).getwidth()[1]), FAILED_MATCH_REACH)


class _MeteredPattern:
    """A compiled pattern that charges the meter for the characters each call may read."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self._pattern = pattern
        self._reach = _reach(pattern)
        self.pattern, self.flags, self.groups = pattern.pattern, pattern.flags, pattern.groups

    def _window(self, text: str, pos: int, endpos: int | None) -> tuple[int, int]:
        end = len(text) if endpos is None else min(endpos, len(text))
        return pos, max(pos, end)

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        lo, hi = self._window(text, pos, endpos)
        m = self._pattern.match(text, lo, hi)
        Meter.units += (m.end() - lo if m is not None else min(self._reach, hi - lo)) + 1
        return m

    def fullmatch(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        lo, hi = self._window(text, pos, endpos)
        Meter.units += hi - lo + 1
        return self._pattern.fullmatch(text, lo, hi)

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        lo, hi = self._window(text, pos, endpos)
        m = self._pattern.search(text, lo, hi)
        Meter.units += (m.end() if m is not None else hi) - lo + 1
        return m

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match[str]]:
        lo, hi = self._window(text, pos, endpos)
        Meter.units += hi - lo + 1
        for m in self._pattern.finditer(text, lo, hi):
            Meter.units += m.end() - m.start()
            yield m


class _MeteredText(str):
    """The text under test: each scan of it is charged the characters it reads."""

    def find(self, sub: str, start: int | None = None, end: int | None = None) -> int:  # type: ignore[override]
        lo = 0 if start is None else start
        hi = len(self) if end is None else end
        at = str.find(self, sub, lo, hi)
        Meter.units += (at + len(sub) if at >= 0 else hi) - lo + 1
        return at

    def count(self, sub: str, *args: Any) -> int:  # type: ignore[override]
        Meter.units += len(self)
        return str.count(self, sub, *args)

    def __contains__(self, sub: object) -> bool:
        Meter.units += len(self)
        return str.__contains__(self, sub)  # type: ignore[operator]

    def lower(self) -> str:
        Meter.units += len(self)
        return str.lower(self)

    def translate(self, table: Any) -> str:
        Meter.units += len(self)
        return str.translate(self, table)


def _metered(value: Any, memo: dict[int, Any]) -> Any:
    """``value`` with each compiled pattern in it metered; one wrapper per pattern, so that
    tables which share a pattern (_TOKEN_FAMILIES and _PREFIX_OF) still share it."""
    if isinstance(value, re.Pattern):
        if id(value) not in memo:
            memo[id(value)] = _MeteredPattern(value)
        return memo[id(value)]
    if isinstance(value, list):
        return [_metered(v, memo) for v in value]
    if isinstance(value, tuple):
        return tuple(_metered(v, memo) for v in value)
    if isinstance(value, dict):
        return {k: _metered(v, memo) for k, v in value.items()}
    return value


def _holds_pattern(value: Any) -> bool:
    if isinstance(value, re.Pattern):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_pattern(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_pattern(v) for v in value.values())
    return False


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], int]:
    """Runs ``detect`` on a text and returns the work it took."""
    return metered_detect(monkeypatch)


def metered_detect(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], int]:
    fast.warm()  # Hyperscan's database is built from the patterns once, outside the count
    memo: dict[int, Any] = {}
    for name, value in list(vars(detect_module).items()):
        if _holds_pattern(value):
            monkeypatch.setattr(detect_module, name, _metered(value, memo))

    def run(text: str) -> int:
        Meter.units = 0

        def count_calls(frame: Any, event: str, arg: Any) -> None:
            if event == "c_call":
                Meter.units += 1

        def count_lines(frame: Any, event: str, arg: Any) -> Any:
            Meter.units += 1  # a call, and then each line it runs
            return count_lines

        sys.setprofile(count_calls)
        sys.settrace(count_lines)
        try:
            detect(_MeteredText(text))
        finally:
            sys.settrace(None)
            sys.setprofile(None)
        return Meter.units

    return run


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda size: unit * (size // len(unit))


def _distinct_emails(size: int) -> str:
    out, i, length = [], 0, 0
    while length < size:
        out.append(f"user{i}@example{i % 97}.com")
        length += len(out[-1]) + 1
        i += 1
    return " ".join(out)


def _distinct(template: str) -> Callable[[int], str]:
    def build(size: int) -> str:
        out, i, length = [], 0, 0
        while length < size:
            out.append(template.format(i=i, j=i % 10_000, k=i % 256))
            length += len(out[-1]) + 1
            i += 1
        return "\n".join(out)

    return build


SHAPES: dict[str, Callable[[int], str]] = {
    "distinct emails": _distinct_emails,
    "distinct key values": _distinct("api_key{i} = Zx9QvL2mT8rP{i:08d}"),
    "distinct phones": _distinct("+44 20 7946 {j:04d}"),
    "distinct urls": _distinct("https://x{i}.example/a?b={i}"),
    "distinct ips": _distinct("10.{k}.1.{k}"),
    "repeated key=": _repeat("key="),
    "repeated password=": _repeat("password="),
    "repeated sk-": _repeat("sk-"),
    "repeated http://": _repeat("http://"),
    "repeated userinfo urls": _repeat("x://a:b@"),
    "colons": _repeat(":"),
    "double colons": _repeat("::"),
    "hex pairs": _repeat("a1:b2:"),
    "at signs after letters": _repeat("a@"),
    "digits and spaces": _repeat("1 "),
    "pem headers": _repeat("-----BEGIN PRIVATE KEY-----\n"),
    "iban heads": _repeat("DE89 "),
    "slack prefixes": _repeat("xoxb-"),
    "bearer words": _repeat("Bearer "),
    "one long word": _repeat("a"),
    "zero-width marks": _repeat("a\u200b"),
    "fullwidth at signs": _repeat("ａ＠"),
    "encoded at signs": _repeat("a%40"),
    # The secret detectors of issue 15: headers of a password column, flags, AUTH lines, calls.
    "password csv headers": _repeat("name,url,username,password\n"),
    "password csv rows": lambda n: "name,url,username,password\n" + _repeat("a,b,c,d\n")(n),
    "mysql -p flags": _repeat("mysql -p'a"),
    "login -p flags": _repeat("login -u a -p "),
    "redis auth": _repeat('"AUTH" "'),
    "define calls": _repeat("define('DB_PASSWORD', '"),
    "xml attribute pairs": _repeat('key="Password" value="'),
    "dotted tokens": _repeat("MTIzNDU2Nzg5MDEyMzQ1Njc4.abcdef."),
    "provider prefixes": _repeat("dapi key- pul- A3- dp.st. "),
    "header lines": _repeat("name,phone\n"),
    "markdown header lines": _repeat("| name | ssn |\n"),
    "dataframe header lines": _repeat("   name   city\n"),
    "distinct table rows": lambda size: "id,full_name,ssn\n" + _distinct("{i},Ana Lopez,21{j:07d}")(size),
    "sql heads": _repeat("INSERT INTO t (name, ssn) VALUES "),
    "sql tuples": lambda size: "INSERT INTO t (name, ssn) VALUES " + _repeat("('Ana Lopez', '219099999'),")(size),
    "block labels": _repeat("Bill to:\nAna Lopez\n"),
    "chat speakers": _repeat("[10:02] Ana: hi\n"),
    "hl7 segments": _repeat("PID|1||2||Doe^Jo||\n"),
    "address commas": _repeat("address: A, "),
}


@pytest.fixture(params=[True, False], ids=["pre-pass", "whole-text"])
def prepass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param and not fast.AVAILABLE:
        pytest.skip("hyperscan has no wheel for this platform: the pre-pass is off")
    monkeypatch.setattr(fast, "AVAILABLE", request.param)
    return request.param


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_detection_work_grows_linearly_on_hostile_shapes(shape: str, prepass: bool, work: Callable[[str], int]) -> None:
    small, large = SHAPES[shape](20_000), SHAPES[shape](40_000)
    small_work, large_work = work(small), work(large)
    assert large_work <= SLACK * 2 * small_work * len(large) / (2 * len(small)), (small_work, large_work)
