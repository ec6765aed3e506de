"""Paths judged where the server reads them: links on this machine, the server's own HOME, and an
allow that must hold for every path a call carries (not only the key the rule names)."""

from __future__ import annotations

from pathlib import Path

from mcp_guard.policy import decide
from mcp_guard.policy.engine import Facts, path_like_values
from mcp_guard.policy.load import parse_policy
from mcp_guard.policy.paths import Host, host_of
from mcp_guard.relay.transports.stdio import StdioTransport

LOCAL = Host(local=True)


def deny_on(place: Path) -> str:
    return (
        "version: 1\ndefaults: {action: allow}\nrules:\n  - name: no-secret\n"
        f'    match: {{args: {{"$.path": "{place}/*"}}}}\n    action: deny\n'
    )


def allow_only(*places: Path, keys: tuple[str, ...] = ("$.path",)) -> str:
    args = ", ".join(f'"{key}": "{place}/*"' for key, place in zip(keys, places))
    return (
        "version: 1\ndefaults: {action: deny}\nrules:\n  - name: work-only\n"
        f"    match: {{args: {{{args}}}}}\n    action: allow\n"
    )


def action(policy: str, arguments: dict[str, object], host: Host | None = LOCAL, tool: str = "read") -> str:
    return decide(parse_policy(policy), Facts("files", tool, "low", arguments, host=host)).action


def test_a_link_into_a_denied_folder_is_denied_for_a_local_server(tmp_path: Path) -> None:
    secret, work = tmp_path / "secret", tmp_path / "work"
    secret.mkdir()
    work.mkdir()
    (work / "innocent").symlink_to(secret)
    assert action(deny_on(secret), {"path": str(work / "innocent" / "key.txt")}) == "deny"


def test_a_link_out_of_an_allowed_folder_is_not_allowed_for_a_local_server(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "out").symlink_to("/etc")
    assert action(allow_only(work), {"path": str(work / "notes.txt")}) == "allow"
    assert action(allow_only(work), {"path": str(work / "out" / "hosts")}) == "deny"


def test_links_are_not_followed_for_a_server_whose_disk_the_guard_cannot_see(tmp_path: Path) -> None:
    # The documented limit for HTTP upstreams: the written form alone is judged.
    secret, work = tmp_path / "secret", tmp_path / "work"
    secret.mkdir()
    work.mkdir()
    (work / "innocent").symlink_to(secret)
    remote = Host(local=False)
    assert action(deny_on(secret), {"path": str(work / "innocent" / "key.txt")}, host=remote) == "allow"


def test_a_stdio_server_is_local_and_takes_the_home_its_config_sets(tmp_path: Path) -> None:
    host = host_of(StdioTransport("files", "true", env={"HOME": str(tmp_path)}))
    assert host == Host(local=True, home=str(tmp_path))
    assert host_of(StdioTransport("files", "true")).home is None


def test_a_tilde_value_expands_to_the_servers_home_not_the_guards(tmp_path: Path) -> None:
    home = tmp_path / "svc"
    home.mkdir()
    assert action(deny_on(home), {"path": "~/secret.txt"}, host=Host(local=True, home=str(home))) == "deny"


def test_a_nul_byte_in_a_path_is_judged_not_a_crash(tmp_path: Path) -> None:
    assert action(deny_on(tmp_path), {"path": f"{tmp_path}/x\u0000"}) == "deny"
    assert action(allow_only(tmp_path), {"path": "/etc/hosts\u0000"}) == "deny"


def test_a_decoy_key_does_not_carry_an_allow_for_the_paths_a_tool_reads(tmp_path: Path) -> None:
    decoy = {"paths": ["/etc/hosts"], "path": str(tmp_path / "x")}
    assert action(allow_only(tmp_path), decoy) == "deny"
    nested = {"path": str(tmp_path / "x"), "options": {"also": ["file:///etc/hosts"]}}
    assert action(allow_only(tmp_path), nested) == "deny"
    relative = {"path": str(tmp_path / "x"), "source": "../../etc/hosts"}  # no roots: where it points is unknown
    assert action(allow_only(tmp_path), relative) == "deny"


def test_an_allow_on_two_path_keys_takes_a_move_between_its_two_folders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    policy = allow_only(a, b, keys=("$.source", "$.destination"))
    assert action(policy, {"source": str(a / "x"), "destination": str(b / "x")}) == "allow"
    assert action(policy, {"source": str(a / "x"), "destination": str(b / "x"), "backup": "/etc/passwd"}) == "deny"


def test_file_contents_with_several_lines_are_not_taken_for_paths() -> None:
    values = list(path_like_values({"path": "/w/x.js", "content": "// a comment\nlet x = 1\n", "n": 3}))
    assert values == ["/w/x.js"]
    edit = {"path": "/w/rc", "edits": [{"oldText": "/usr/bin/old", "newText": "/usr/local/bin/new"}], "to": "/etc/x"}
    assert sorted(path_like_values(edit)) == ["/etc/x", "/w/rc"]


def test_an_allowed_folder_reached_through_a_link_still_allows_its_files(tmp_path: Path) -> None:
    # macOS's /tmp is /private/tmp: the resolved path must not fall outside an allow on the link.
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "work").symlink_to(data)
    policy = allow_only(tmp_path / "work")
    assert action(policy, {"path": str(tmp_path / "work" / "notes.txt")}) == "allow"
    assert action(policy, {"path": str(data / "notes.txt")}) == "allow"
    assert action(policy, {"path": str(tmp_path / "work" / ".." / "other.txt")}) == "deny"
