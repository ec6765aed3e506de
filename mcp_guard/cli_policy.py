"""``policy show`` and ``policy init``: the policy as it applies to the tools a config's servers list.

Both start the configured servers to list their tools (catalog.py), so what they report is what
the guard would see, not what a person remembers. Messages go to stderr, data to stdout.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .approval.escape import one_line
from .cli_support import EXIT_OK, EXIT_PROBLEM, config_policy, config_specs, policy_path, requester_name
from .errors import ConfigError

__all__ = ["cmd_policy_init", "cmd_policy_show"]


def _servers(config_path: str, only: str | None = None) -> tuple[Any, dict[str, list[dict[str, Any]] | str]]:
    from .catalog import list_tools
    from .config import load_config

    config = load_config(config_path)
    specs = config_specs(config)
    if only is not None and only not in {s.name for s in specs}:
        known = ", ".join(sorted(s.name for s in specs)) or "none"
        raise ConfigError(f"{config_path}: no enabled server {one_line(only)!r} (configured: {known})")
    return config, list_tools(specs)


def cmd_policy_show(args: argparse.Namespace) -> int:
    from .policy import load_policy
    from .policy.show import show_tool

    # Every server is listed, not only this one: a description that names another server's tool
    # is shadowing, which the guard raises to high risk.
    config, listed = _servers(args.config, args.server)
    path = policy_path(args.policy, config_policy(config, args.config))
    policy = load_policy(path)
    tools = listed[args.server]
    others = {t["name"] for name, found in listed.items() if name != args.server and not isinstance(found, str)
              for t in found}
    if isinstance(tools, str):
        why = one_line(tools)
        print(f"{args.config}: server {one_line(args.server)!r} could not be listed ({why})", file=sys.stderr)
        return EXIT_PROBLEM
    same = [t for t in tools if t["name"] == args.tool]
    tool = _riskiest(policy, args.server, same) if same else None
    if tool is None:
        print(_unlisted(args.server, args.tool, [t["name"] for t in tools]), file=sys.stderr)
        return EXIT_PROBLEM
    text = Path(path).read_text(encoding="utf-8")
    view = show_tool(policy, path, text, args.server, tool, args.user or requester_name(args), others)
    if len(same) > 1:
        print(f"warning: {one_line(args.server)!r} lists {one_line(args.tool)!r} {len(same)} times; shown is the "
              "riskiest definition (the guard's pins hold a tool whose definitions differ)", file=sys.stderr)
    if args.json:
        print(json.dumps(view.to_dict()))
    else:
        print(render(view.to_dict()))
    return EXIT_OK


def _riskiest(policy: Any, server: str, same: list[dict[str, Any]]) -> dict[str, Any]:
    """Of one name's definitions, the one with the highest risk: a harmless twin must not hide a risky one."""
    from .policy.model import RISKS
    from .risk import resolve_risk

    return max(same, key=lambda tool: RISKS.index(resolve_risk(policy, server, tool, tool["name"]).level))


def _unlisted(server: str, tool: str, names: list[str]) -> str:
    """The guard refuses calls to a tool its server does not list: say so, and offer the nearest names."""
    near = difflib.get_close_matches(tool, names, n=3) or [n for n in names if n.lower() == tool.lower()]
    hint = f"; did you mean {', '.join(repr(one_line(n)) for n in near)}?" if near else ""
    own = tool[len(server) + 2:] if tool.startswith(f"{server}__") else None
    if own in names:
        hint = f"; policies see the server's own names, not the namespaced ones clients see: --tool {one_line(own)}"
    return (f"tool {one_line(tool)!r} is not listed by {one_line(server)!r}, so the guard refuses any call to it "
            f"({len(names)} tool(s) listed){hint}")


def render(view: dict[str, Any]) -> str:
    """The human text of ``policy show``; every name that came from a server or a file is escaped to one line."""
    risk, act = view["risk"], view["no_arguments"]
    out = [f"{one_line(view['tool'])} on {one_line(view['server'])}  (policy {one_line(view['policy'])}, "
           f"user {one_line(view['user'])})", "", f"risk: {risk['level']} (from {risk['source']})"]
    for layer in risk["layers"]:
        mark = "*" if layer.get("in_force") else " "
        level = layer.get("level") or f"ignored ({layer.get('ignored')})"
        extra = f"; {one_line(layer['reason'])}" if layer.get("reason") else ""
        if layer.get("annotations") is not None:
            hints = ", ".join(f"{k}={v}" for k, v in layer["annotations"].items())
            extra += "; " + (one_line(hints) or "no hints set")
        out.append(f"  {mark} {layer['source']:<11} {level:<8} {one_line(layer['from'])}{extra}")
    findings = view["integrity"]["findings"]
    if findings:
        out.append(f"  * integrity   description scan found {', '.join(findings)} "
                   f"(integrity.findings: {view['integrity']['mode']})")
    out += ["", f"with no arguments: {act['action'].upper()}  rule {one_line(act['rule'])} "
            f"({one_line(act['from'])})", f"  reason: {one_line(act['reason'])}"]
    if act["action"] == "approve":
        out.append(f"  asks: {act['approvers']}, waits {act['timeout']:.0f} s, grant at most: {act['scope']}")
    if act.get("hidden"):
        out.append("  hidden: the guard leaves this tool out of tools/list and refuses calls to it by name")
    out += ["", "rules that apply to this tool (strictest wins; none: defaults.action):"]
    for rule in view["rules"]:
        when = "always" if not rule["depends_on"] else "only when " + "; ".join(one_line(d) for d in rule["depends_on"])
        out.append(f"  {rule['action']:<8} {one_line(rule['name'])}  {one_line(rule['from'])}  [{when}]")
    if not view["rules"]:
        out.append("  (none)")
    return "\n".join(out)


def cmd_policy_init(args: argparse.Namespace) -> int:
    from .policy.starter import starter_policy

    target = Path(args.output) if args.output else None
    if target is not None and (target.exists() or target.is_symlink()) and not args.force:
        raise ConfigError(f"{args.output}: already exists; give --force to replace it")
    _, listed = _servers(args.config)
    if not listed:
        raise ConfigError(f"{args.config}: no enabled servers to write a policy for")
    text = starter_policy(args.config, listed)
    status = EXIT_OK
    for name, tools in listed.items():
        if isinstance(tools, str):
            print(f"{args.config}: server {one_line(name)!r} could not be listed ({one_line(tools)}); "
                  "its tools have no rules of their own", file=sys.stderr)
            status = EXIT_PROBLEM
    if target is None:
        sys.stdout.write(text)
        return status
    _write(target, text, args.force)
    count = sum(len(t) for t in listed.values() if not isinstance(t, str))
    print(f"{args.output}: wrote a starting policy for {count} tool(s) on {len(listed)} server(s)", file=sys.stderr)
    return status


def _write(target: Path, text: str, force: bool) -> None:
    """Never clobbers without --force, even if the file appears meanwhile; with it, replaces atomically."""
    try:
        if not force:
            with open(target, "x", encoding="utf-8") as handle:
                handle.write(text)
            return
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except FileExistsError:
        raise ConfigError(f"{target}: already exists; give --force to replace it") from None
    except OSError as exc:
        raise ConfigError(f"{target}: cannot write the policy: {exc.strerror or exc}") from None
