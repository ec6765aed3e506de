"""The instance tag in requestState (relay/state.py): readable by a load balancer, bound by the MAC."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from mcp_guard.errors import ConfigError, RPCError
from mcp_guard.relay.state import PREFIX, Sealer
from tests.conftest import FIXTURES, PY


def test_a_named_instance_writes_its_name_in_the_clear_and_opens_its_own_states() -> None:
    sealer = Sealer(instance="guard-a")
    state = sealer.seal("binding-1", approved=True)
    assert state.startswith(f"{PREFIX}@guard-a.")
    assert sealer.open(state, "binding-1")["approved"] is True


def test_a_state_whose_tag_was_rewritten_is_refused() -> None:
    """Renaming the tag would let a client steer a state; the tag is under the MAC."""
    sealer = Sealer(instance="guard-a")
    state = sealer.seal("binding-1", approved=True)
    with pytest.raises(RPCError, match="Invalid or expired requestState"):
        sealer.open(state.replace("@guard-a.", "@guard-b.", 1), "binding-1")
    with pytest.raises(RPCError, match="Invalid or expired requestState"):
        sealer.open(state.replace("@guard-a.", "", 1), "binding-1")


def test_an_unnamed_guard_keeps_the_untagged_form() -> None:
    sealer = Sealer()
    state = sealer.seal("binding-1")
    assert "@" not in state
    assert sealer.open(state, "binding-1")["b"] == "binding-1"


@pytest.mark.parametrize("name", ["guard a", "a.b", "x" * 65, "é", "a\nb", "@a"], ids=repr)
def test_an_instance_name_a_balancer_rule_could_not_match_exactly_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="MCP_GUARD_INSTANCE"):
        Sealer(instance=name)


def test_serve_with_a_bad_instance_name_does_not_start_and_says_why(tmp_path: Path) -> None:
    env = {**os.environ, "MCP_GUARD_HOME": str(tmp_path / "home"), "MCP_GUARD_INSTANCE": "guard a"}
    upstream = [PY, str(FIXTURES / "instance_server.py")]
    argv = [PY, "-m", "mcp_guard", "serve", "--no-policy", "--port", "0", "--", *upstream]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "MCP_GUARD_INSTANCE='guard a'" in done.stderr
