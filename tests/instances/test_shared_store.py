"""Races that only several instances on one store (or several sessions) run into, made
deterministic: another instance's write lands between this one's read and its write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcp_guard.integrity import Pins
from mcp_guard.store import PostgresStore, Store

TOOL = {"name": "where", "description": "where am I", "inputSchema": {"type": "object", "properties": {}}}


def open_two(kind: str, postgres_url: str, tmp_path: Path) -> tuple[Any, Any]:
    if kind == "postgresql":
        return PostgresStore(postgres_url), PostgresStore(postgres_url)
    return Store(tmp_path / "shared.db"), Store(tmp_path / "shared.db")


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_tool_first_seen_by_two_instances_at_once_is_pinned_once_and_neither_call_fails(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres_url = request.getfixturevalue("postgres_url") if kind == "postgresql" else ""
    mine, theirs = open_two(kind, postgres_url, tmp_path)
    read = mine.query
    raced: list[str] = []
    racing = [dict(TOOL)]  # the definition the other instance sees at the same moment

    def query_then_the_other_instance_pins(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        rows = read(sql, params)
        if "FROM pins" in sql and not raced:
            raced.append(Pins(theirs).check("probe", racing[0], [], hold_new=False))
        return rows

    mine.query = query_then_the_other_instance_pins  # type: ignore[method-assign]
    assert Pins(mine).check("probe", dict(TOOL), [], hold_new=False) == "ok"
    assert raced == ["ok"]
    assert len(Pins(theirs).rows("probe")) == 1
    changed = {**TOOL, "description": "where am I now"}
    racing[0] = changed
    raced.clear()
    assert Pins(mine).check("probe", changed, [], hold_new=False) == "changed"
    assert raced == ["changed"]
    mine.close()
    theirs.close()
