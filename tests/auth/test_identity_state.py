"""What one caller was given (a sealed approved state, a policy decision) is never another's."""

from __future__ import annotations

import pytest

from mcp_guard.errors import RPCError
from mcp_guard.pipeline import Call
from mcp_guard.policy.engine import Facts, decide
from mcp_guard.policy.load import parse_policy
from mcp_guard.relay.gate import Gate
from mcp_guard.relay.state import Sealer


def _call(user: str, state: str | None = None) -> Call:
    params = {"name": "wire_money", "arguments": {"amount": 1}}
    if state is not None:
        params = {**params, "requestState": state, "inputResponses": {}}
    return Call("tools/call", "bank", params, user=user)


def test_a_state_sealed_after_alices_approval_does_not_preapprove_bobs_identical_call() -> None:
    gate = Gate(Sealer(), {})
    approved = gate.seal(_call("alice"), "bank", approved=True)
    with pytest.raises(RPCError, match="Invalid or expired requestState"):
        gate.admit(_call("bob", approved), "bank", session_id="s-b", stateless=True)


def test_alices_own_retry_with_her_approved_state_is_preapproved() -> None:
    gate = Gate(Sealer(), {})
    approved = gate.seal(_call("alice"), "bank", approved=True)
    assert gate.admit(_call("alice", approved), "bank", session_id="s-a2", stateless=True).preapproved


POLICY = parse_policy(
    "version: 1\ndefaults: {action: allow}\n"
    "rules:\n  - {name: ops-no-wire, match: {tool: wire_money, group: ops}, action: deny}\n"
)


def test_a_decision_cached_for_a_caller_in_a_group_is_not_reused_for_one_outside_it() -> None:
    ops = Facts("bank", "wire_money", "high", {}, "olga", groups=frozenset({"ops"}))
    other = Facts("bank", "wire_money", "high", {}, "olga", groups=frozenset({"devs"}))
    assert decide(POLICY, ops).action == "deny"
    assert decide(POLICY, other).action == "allow"
    assert decide(POLICY, ops).action == "deny"


def test_the_policys_own_group_table_still_matches_by_name() -> None:
    table = parse_policy(
        "version: 1\ndefaults: {action: allow}\ngroups: {ops: [olga]}\n"
        "rules:\n  - {name: ops-no-wire, match: {tool: wire_money, group: ops}, action: deny}\n"
    )
    assert decide(table, Facts("bank", "wire_money", "high", {}, "olga")).action == "deny"
    assert decide(table, Facts("bank", "wire_money", "high", {}, "dan")).action == "allow"
