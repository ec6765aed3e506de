"""The guard's own approval question reaches the person as the hashed preview, in both eras: the
egress does not mask it again (an address the model wrote is a destination, shown as written)."""

from __future__ import annotations

import secrets
from pathlib import Path

import anyio
import pytest

from tests.conftest import ERAS, connect, everything, guard
from tests.hooks.test_approval import Person

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ERAS)
async def test_an_address_the_model_wrote_is_shown_as_written_to_a_client_of_either_era(
        tmp_path: Path, mode: str) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("version: 1\ndefaults: {min_human_ms: 0}\nrules:\n  - match: {tool: echo}\n    action: approve\n")
    address = f"exfil.{secrets.token_hex(3)}@attacker-mail.example"
    person = Person()
    with anyio.fail_after(30):
        async with connect(guard(*everything(), policy=str(policy)), mode, elicitation_callback=person) as client:
            result = await client.call_tool("echo", {"message": f"forward to {address}"})
    assert not result.is_error
    assert len(person.questions) == 1
    assert address in person.questions[0], "the approval question masked the address:\n" + person.questions[0]
