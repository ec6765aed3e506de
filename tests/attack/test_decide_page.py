"""Red team, who decides: the loopback approval page for `approvers: user`. Only the request's own
token, with the page's CSRF token, from the page's own origin, decides; guessed, missing and
borrowed tokens do not, and nothing is decided by a GET."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.conftest import connect, guard, node_server
from tests.hooks.test_out_of_band import pending, policy
from tests.reviewing import review

pytestmark = pytest.mark.anyio


async def test_the_approval_page_decides_nothing_without_its_own_token_csrf_and_origin(
    tmp_path: Path, guard_home: Path
) -> None:
    target = tmp_path / "out.txt"
    result: list[Any] = []
    with anyio.fail_after(60):
        async with connect(
            guard(*node_server("server-filesystem", str(tmp_path)), policy=policy(tmp_path, wait=40))
        ) as client:

            async def call() -> None:
                result.append(await client.call_tool("write_file", {"path": str(target), "content": "via page"}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                request = await pending(guard_home)
                url = request["page_url"]
                origin, token = url.split("/r/")[0], url.split("t=")[1]
                decide = url.split("?")[0] + "/decide"
                async with httpx.AsyncClient() as http:
                    page = await http.get(url)
                    csrf = re.search(r"name='csrf' value='([0-9a-f]+)'", page.text).group(1)  # type: ignore[union-attr]
                    for path in (url.split("?")[0], url.split("?")[0] + "?t=", url.split("?")[0] + "?t=" + token[:-1]):
                        assert "via page" not in (await http.get(path)).text, path  # no preview without the token
                    await http.get(decide + f"?t={token}&csrf={csrf}&decision=approve&scope=once")
                    forms = [
                        ({"csrf": csrf, "decision": "approve", "scope": "once"}, {"Origin": origin}),
                        ({"t": "", "csrf": csrf, "decision": "approve"}, {"Origin": origin}),
                        (
                            {"t": token[:-1] + ("0" if token[-1] != "0" else "1"), "csrf": csrf, "decision": "approve"},
                            {"Origin": origin},
                        ),
                        ({"t": token, "decision": "approve"}, {"Origin": origin}),
                        ({"t": token, "csrf": "0" * len(csrf), "decision": "approve"}, {"Origin": origin}),
                        ({"t": token, "csrf": csrf, "decision": "approve"}, {"Origin": "http://127.0.0.1:1"}),
                        ({"t": token, "csrf": csrf, "decision": "approve"}, {"Origin": "null"}),
                        ({"t": token, "csrf": csrf, "decision": "approve"}, {}),
                        ({"t": token, "csrf": csrf, "decision": "approve", "scope": "ttl:999999h"}, {"Origin": origin}),
                    ]
                    for form, headers in forms:
                        await http.post(decide, data=form, headers=headers)
                        state = review(guard_home, "show", request["id"], "--json").stdout
                        assert '"pending"' in state, (sorted(form), headers, "a forged page form decided")
                    done = await http.post(
                        decide, data={"t": token, "csrf": csrf, "decision": "deny"}, headers={"Origin": origin}
                    )
                    assert done.status_code == 200
    assert result[0].is_error and not target.exists()
