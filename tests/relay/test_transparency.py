"""Through the guard, a client sees what it sees directly: same listings, same results."""

from __future__ import annotations

import json
import re

import anyio
import pytest

import mcp_types as types

from tests.conftest import ERAS, accept_elicitation, answer_sampling, connect, dump, everything, guard, list_roots, probe

pytestmark = pytest.mark.anyio

CALLS = [
    ("echo", {"message": "hello"}),
    ("get-sum", {"a": 2, "b": 3}),
    ("get-structured-content", {"location": "New York"}),
    ("get-tiny-image", {}),
    ("get-annotated-message", {"messageType": "error", "includeImage": True}),
    ("get-resource-links", {"count": 2}),
    ("get-resource-reference", {"resourceType": "Text", "resourceId": 3}),
    ("echo", {}),  # invalid arguments: a tool error, relayed as such
]


async def snapshot(argv: list[str], mode: str) -> dict[str, object]:
    with anyio.fail_after(60):
        async with connect(
            argv,
            mode,
            elicitation_callback=accept_elicitation,
            sampling_callback=answer_sampling,
            list_roots_callback=list_roots,
        ) as client:
            tools = await client.list_tools()
            resources = await client.list_resources()
            templates = await client.list_resource_templates()
            prompts = await client.list_prompts()
            calls = [dump(await client.call_tool(name, args)) for name, args in CALLS]
            read = dump(await client.read_resource(resources.resources[0].uri))
            prompt = dump(await client.get_prompt("args-prompt", {"city": "Paris", "state": "FR"}))
            return normalize({
                "tools": dump(tools)["tools"],
                "resources": dump(resources)["resources"],
                "templates": dump(templates)["resourceTemplates"],
                "prompts": dump(prompts)["prompts"],
                "calls": calls,
                "read": read,
                "prompt": prompt,
                "protocol": client.protocol_version,
            })


def normalize(data: dict[str, object]) -> dict[str, object]:
    """server-everything stamps some texts with the wall-clock time; that part may differ."""
    text = re.sub(r"\d{1,2}:\d{2}:\d{2}\s?[AP]M", "<time>", json.dumps(data))
    # Cache hints exist only in 2026-07-28 results.
    text = re.sub(r'"(cacheScope|ttlMs)": ("private"|"public"|\d+), ', "", text)
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ERAS)
async def test_server_everything_looks_the_same_through_the_guard(mode: str) -> None:
    # server-everything speaks only the handshake era: a 2026-07-28 client cannot reach it
    # directly, so the baseline is the direct handshake-era view, and the guard translates.
    direct = await snapshot(everything(), "legacy")
    guarded = await snapshot(guard(*everything()), mode)
    assert guarded["protocol"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert [t["name"] for t in guarded["tools"]] == [t["name"] for t in direct["tools"]]  # type: ignore[index]
    # server-everything registers these only for clients that declare the capability.
    names = {t["name"] for t in guarded["tools"]}  # type: ignore[index]
    assert {"trigger-elicitation-request", "trigger-sampling-request", "get-roots-list"} <= names
    for key in ("tools", "resources", "templates", "prompts", "calls", "read", "prompt"):
        assert guarded[key] == direct[key], key


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("upstream_era", ERAS)
async def test_probe_server_results_match_in_every_era_combination(mode: str, upstream_era: str) -> None:
    async def run(argv: list[str]) -> list[object]:
        with anyio.fail_after(30):
            async with connect(argv, mode, elicitation_callback=accept_elicitation) as client:
                return [
                    [t.name for t in (await client.list_tools()).tools],
                    dump(await client.call_tool("echo", {"message": "hi"})),
                    dump(await client.call_tool("fail", {"message": "boom"})),
                    dump(await client.call_tool("confirm", {"action": "deploy"})),
                    dump(await client.read_resource("probe://item/abc")),
                    dump(await client.get_prompt("greet", {"name": "Ada"})),
                ]

    direct = await run(probe())
    guarded = await run(guard(*probe(), options=["--protocol", upstream_era]))
    assert guarded == direct


@pytest.mark.parametrize("mode", ERAS)
async def test_server_everything_interactive_features_work_through_the_guard(mode: str) -> None:
    """Sampling, roots, URL-mode elicitation and completions, asked by a handshake-era server."""
    asked: list[str] = []

    async def elicit(ctx: object, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(getattr(params, "mode", "form") or "form")
        if getattr(params, "url", None):
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content={"name": "Tester", "check": True})

    with anyio.fail_after(60):
        async with connect(
            guard(*everything()), mode, elicitation_callback=elicit, sampling_callback=answer_sampling, list_roots_callback=list_roots
        ) as client:
            sampled = await client.call_tool("trigger-sampling-request", {"prompt": "2+2?", "maxTokens": 10})
            roots = await client.call_tool("get-roots-list", {})
            url = await client.call_tool("trigger-url-elicitation", {"url": "https://example.com/consent"})
            completion = await client.complete(
                types.PromptReference(type="ref/prompt", name="completable-prompt"), {"name": "department", "value": "E"}
            )
    assert "four" in json.dumps(dump(sampled))
    assert "file:///tmp/root-a" in json.dumps(dump(roots))
    assert not url.is_error and "url" in asked
    assert "Engineering" in completion.completion.values
