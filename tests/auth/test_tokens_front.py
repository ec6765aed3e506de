"""`serve --auth tokens` at the front door: every /mcp request is authenticated before anything
else, a session belongs to the caller that opened it, and revocation bites on the next request."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.auth.support import ACCEPT, LEGACY_INIT, bearer, cli, create_token, gateway, stdio, tenant

pytestmark = pytest.mark.anyio

LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


async def _open_session(http: httpx.AsyncClient, url: str, token: str) -> str:
    opened = await http.post(url, json=LEGACY_INIT, headers={**ACCEPT, **bearer(token)})
    assert opened.status_code == 200, opened.text
    sid = opened.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await http.post(url, json=note, headers={**ACCEPT, **bearer(token), "Mcp-Session-Id": sid})
    return sid


async def _list(http: httpx.AsyncClient, url: str, token: str, sid: str) -> httpx.Response:
    headers = {**ACCEPT, **bearer(token), "Mcp-Session-Id": sid, "Accept": "application/json"}
    return await http.post(url, json=LIST, headers=headers)


@pytest.mark.parametrize("verb", ["POST", "GET", "DELETE"])
async def test_a_request_without_a_token_gets_401_with_a_bearer_challenge_and_opens_nothing(tmp_path, verb: str) -> None:
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                body = LEGACY_INIT if verb == "POST" else None
                refused = await http.request(verb, url, json=body, headers={**ACCEPT, "Mcp-Session-Id": "x" * 32})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert "mcp-session-id" not in refused.headers


@pytest.mark.parametrize(
    "authorization",
    ["Bearer mgc_" + "A" * 43, "Bearer not-even-ours", "Basic YWxpY2U6cHc="],
    ids=["unknown-token", "foreign-token", "basic-scheme"],
)
async def test_a_token_the_guard_did_not_issue_is_refused(tmp_path, authorization: str) -> None:
    create_token("alice")
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                refused = await http.post(url, json=LEGACY_INIT, headers={**ACCEPT, "Authorization": authorization})
    assert refused.status_code in (400, 401)
    assert refused.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"] or refused.status_code == 400


async def test_a_valid_token_in_the_query_string_is_refused_header_only(tmp_path) -> None:
    token = create_token("alice")
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                refused = await http.post(f"{url}?access_token={token}", json=LEGACY_INIT, headers=ACCEPT)
                both = await http.post(f"{url}?access_token={token}", json=LEGACY_INIT, headers={**ACCEPT, **bearer(token)})
    assert refused.status_code == 400 and both.status_code == 400
    assert 'error="invalid_request"' in refused.headers["www-authenticate"]
    assert token not in refused.text and token not in refused.headers["www-authenticate"]


async def test_a_token_revoked_while_its_session_is_open_is_refused_on_the_next_request(tmp_path) -> None:
    token = create_token("alice")
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                sid = await _open_session(http, url, token)
                assert (await _list(http, url, token, sid)).status_code == 200
                revoked = cli("auth", "token", "revoke", "alice")
                assert revoked.returncode == 0, revoked.stderr
                after = await _list(http, url, token, sid)
                stream = await http.get(url, headers={**bearer(token), "Mcp-Session-Id": sid, "Accept": "text/event-stream"})
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["www-authenticate"]
    assert stream.status_code == 401


async def test_an_open_get_stream_of_a_revoked_caller_is_ended_and_its_session_with_it(tmp_path) -> None:
    token = create_token("alice")
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(60):
            async with httpx.AsyncClient(timeout=httpx.Timeout(60)) as http:
                sid = await _open_session(http, url, token)
                headers = {**bearer(token), "Mcp-Session-Id": sid, "Accept": "text/event-stream"}
                async with http.stream("GET", url, headers=headers) as stream:
                    assert stream.status_code == 200
                    chunks = stream.aiter_bytes()
                    assert b"stream open" in await chunks.__anext__()
                    assert cli("auth", "token", "revoke", "alice").returncode == 0
                    async for _ in chunks:  # ends once the guard sees the revocation
                        pass
                # The session ended with the stream: a new token for the same person does not bring it back.
                renewed = await _list(http, url, create_token("alice"), sid)
    assert renewed.status_code == 404


async def test_another_callers_token_on_a_session_id_is_answered_as_if_the_session_did_not_exist(tmp_path) -> None:
    alice, bob = create_token("alice"), create_token("bob")
    async with gateway(tmp_path, {"tenant": stdio(tenant())}) as url:
        with anyio.fail_after(60):
            async with httpx.AsyncClient() as http:
                sid = await _open_session(http, url, alice)
                posted = await _list(http, url, bob, sid)
                streamed = await http.get(url, headers={**bearer(bob), "Mcp-Session-Id": sid, "Accept": "text/event-stream"})
                deleted = await http.delete(url, headers={**bearer(bob), "Mcp-Session-Id": sid})
                made_up = await _list(http, url, bob, "f" * 32)
                still_alices = await _list(http, url, alice, sid)
    assert (posted.status_code, streamed.status_code, deleted.status_code) == (404, 404, 404)
    assert posted.text == made_up.text.replace("f" * 32, sid)  # nothing tells Bob that the session exists
    assert still_alices.status_code == 200 and "tools" in still_alices.json()["result"]


def test_token_create_prints_the_token_once_and_the_store_and_list_never_hold_it(guard_home) -> None:
    token = create_token("carol", "ops", "devs")
    listed = cli("auth", "token", "list")
    assert listed.returncode == 0
    assert token not in listed.stdout
    entry = next(e for e in __import__("json").loads(listed.stdout) if e["name"] == "carol")
    assert entry["groups"] == ["devs", "ops"] and entry["last_used"] is None and entry["revoked"] is None
    stored = b"".join(p.read_bytes() for p in guard_home.rglob("*") if p.is_file())
    assert token.encode() not in stored
    assert token[4:].encode() not in stored


def test_a_second_live_token_for_the_same_or_a_lookalike_name_is_refused() -> None:
    create_token("dave")
    again = cli("auth", "token", "create", "DAVE ")
    lookalike = cli("auth", "token", "create", "d\u0430ve")  # Cyrillic a
    assert again.returncode == 2 and "exists already" in again.stderr
    assert lookalike.returncode == 2 and "looks like" in lookalike.stderr


def test_serve_without_authentication_refuses_to_listen_beyond_loopback() -> None:
    refused = cli("serve", "--host", "0.0.0.0", "--port", "0", "--no-policy", "--", "true")
    assert refused.returncode == 2
    assert "--auth none" in refused.stderr
