"""``policy show`` and ``policy init``: the policy as it applies to the tools a config's servers list.

Both start the configured servers to list their tools (catalog.py), so what they report is what
the guard would see, not what a person remembers. Messages go to stderr, data to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .support import EXIT_OK, EXIT_PROBLEM, config_policy, config_specs, one_line, policy_path, requester_name
from ..errors import ConfigError

__all__ = ["cmd_policy_check", "cmd_policy_explain", "cmd_policy_init", "cmd_policy_show", "register"]


def register(sub) -> None:  # type: ignore[no-untyped-def]
    policy = sub.add_parser("policy", help="check, explain, show a tool's rules, or write a starting policy")
    psub = policy.add_subparsers(metavar="ACTION")
    check = psub.add_parser(
        "check", help="validate policy files; with --config also find rules that can never match; exit 1 on any problem"
    )
    check.add_argument("files", nargs="*", help="policy YAML (default with --config: the config's policy)")
    check.add_argument("--config", help="the mcpServers JSON: start its servers, list their tools, report dead rules")
    check.set_defaults(func=cmd_policy_check)
    explain = psub.add_parser("explain", help="print the decision for one call and the rule behind it")
    explain.add_argument("--policy", help="policy YAML (default: the shipped default.yaml)")
    explain.add_argument("--server", required=True)
    explain.add_argument("--tool", required=True)
    explain.add_argument("--args", default="{}", help="the call's arguments as JSON")
    explain.add_argument("--risk", choices=("low", "medium", "high", "critical"), help="the author's tag, if any")
    explain.add_argument("--annotations", default=None, help="the tool's MCP annotations as JSON")
    explain.add_argument("--user", default=None)
    explain.add_argument(
        "--root", action="append", default=None, help="a root the server has, for relative paths (repeatable)"
    )
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=cmd_policy_explain)
    show = psub.add_parser("show", help="the risk and rules in force for one listed tool, and where each came from")
    show.add_argument("--config", required=True, help="the mcpServers JSON: its servers are started and listed")
    show.add_argument("--server", required=True, help="the server's name in the config")
    show.add_argument("--tool", required=True, help="the tool's name as the server lists it (not server__tool)")
    show.add_argument("--policy", help="policy YAML (default: $MCP_GUARD_POLICY, the config's, or the shipped default)")
    show.add_argument("--user", default=None, help="the requester rules see (default: $MCP_GUARD_USER or the OS user)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_policy_show)
    init = psub.add_parser("init", help="write a starting policy from the tools the config's servers list")
    init.add_argument("--config", required=True, help="the mcpServers JSON whose servers are started and listed")
    init.add_argument("-o", "--output", help="file to write (default: stdout); an existing one needs --force")
    init.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    init.set_defaults(func=cmd_policy_init)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from ..policy import load_policy
    from ..policy.load import policy_warnings

    files = list(args.files)
    listed: dict[str, list[dict[str, object]] | str] | None = None
    if args.config:
        files, listed = _check_config(args.config, files)
    elif not files:
        raise ConfigError("give one or more policy files, or --config F")
    status = EXIT_OK
    for path in files:
        try:
            policy = load_policy(path, recall=False)  # the check reads the file itself, never a kept result
        except ConfigError as exc:
            print(f"{exc}", file=sys.stderr)
            status = EXIT_PROBLEM
            continue
        if policy.masking.ner not in ("auto", "off"):
            try:  # the named model is loaded as `run` would load it (run refuses to start without it)
                from ..masking.ner import load_ner

                load_ner(policy.masking.ner)
            except ConfigError as exc:
                print(f"{path}: {exc}", file=sys.stderr)
                status = EXIT_PROBLEM
                continue
        for warning in policy_warnings(policy):
            print(f"{path}: warning: {warning}", file=sys.stderr)
        dead = _dead_rules(policy, listed)
        for problem in dead:
            print(f"{path}: {problem}", file=sys.stderr)
        status = EXIT_PROBLEM if dead else status
        verdict = f"{len(dead)} rule(s) can never match" if dead else "ok"
        print(f"{path}: {verdict} ({len(policy.rules)} rules)", file=sys.stderr)
    if listed is not None:
        for name, tools in listed.items():
            if isinstance(tools, str):
                print(
                    f"{args.config}: server {name!r} could not be listed ({tools}); rules on its tools were not checked",
                    file=sys.stderr,
                )
                status = EXIT_PROBLEM
    return status


def _check_config(config_path: str, files: list[str]) -> tuple[list[str], dict[str, list[dict[str, object]] | str]]:
    """The policy files to check (the config's own when none are given) and each server's tools."""
    from ..catalog import list_tools
    from ..config import load_config

    config = load_config(config_path)
    if not files:
        files = [policy_path(None, config_policy(config, config_path))]
    return files, list_tools(config_specs(config))


def _dead_rules(policy: object, listed: dict[str, list[dict[str, object]] | str] | None) -> list[str]:
    """Rules that never match: always those no risk level can meet; with --config, those the servers' tools rule out."""
    from ..policy.reach import dead_matches, impossible_risks, unread_arguments

    if listed is None:
        return impossible_risks(policy)  # type: ignore[arg-type]
    tools = {name: found if isinstance(found, list) else None for name, found in listed.items()}
    servers = {name: None if found is None else [str(t["name"]) for t in found] for name, found in tools.items()}
    return dead_matches(policy, servers) + unread_arguments(policy, tools)  # type: ignore[arg-type]


def cmd_policy_explain(args: argparse.Namespace) -> int:
    import json

    from ..policy import decide, load_policy
    from ..policy.engine import Facts
    from ..policy.paths import UnresolvablePath, resolve
    from ..risk import RISK_KEY, resolve_risk

    try:
        [resolve(r, None) for r in args.root or ()]
    except UnresolvablePath as exc:
        raise ConfigError(f"--root {exc.value!r}: a root is an absolute path or a file:// URI") from None

    policy = load_policy(policy_path(args.policy))
    try:
        arguments = json.loads(args.args)
        annotations = json.loads(args.annotations) if args.annotations else None
    except ValueError as exc:
        raise ConfigError(f"--args/--annotations: not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ConfigError("--args must be a JSON object")
    tool: dict[str, object] = {"name": args.tool}
    if args.risk:
        tool["_meta"] = {RISK_KEY: args.risk}
    if isinstance(annotations, dict):
        tool["annotations"] = annotations
    risk = resolve_risk(policy, args.server, tool, args.tool)
    who = args.user or requester_name(args)
    roots = tuple(resolve(r, None)[0] for r in args.root) if args.root else None
    facts = Facts(args.server, args.tool, risk.level, arguments, who, annotations=annotations or {}, roots=roots)
    decision = decide(policy, facts)
    if args.json:
        print(json.dumps({**decision.to_dict(), "risk": risk.level, "risk_source": risk.source, "user": who}))
    else:
        print(f"{decision.action.upper()}  {args.tool} on {args.server} (risk {risk.level}, from {risk.source})")
        print(f"rule:   {decision.rule}")
        print(f"reason: {decision.reason}")
        if decision.action == "approve":
            print(f"asks:   {decision.approvers}, waits {decision.timeout:.0f} s, grant at most: {decision.scope}")
    return EXIT_OK


def _servers(config_path: str, only: str | None = None) -> tuple[Any, dict[str, list[dict[str, Any]] | str]]:
    from ..catalog import list_tools
    from ..config import load_config

    config = load_config(config_path)
    specs = config_specs(config)
    if only is not None and only not in {s.name for s in specs}:
        known = ", ".join(sorted(s.name for s in specs)) or "none"
        raise ConfigError(f"{config_path}: no enabled server {one_line(only)!r} (configured: {known})")
    return config, list_tools(specs)


def cmd_policy_show(args: argparse.Namespace) -> int:
    from ..policy import load_policy
    from ..policy.show import show_tool

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
    from .term import on_terminal, table_lines

    if args.json:
        print(json.dumps(view.to_dict()))
    else:
        print(render(view.to_dict(), table_lines if on_terminal() else None))
    return EXIT_OK


def _riskiest(policy: Any, server: str, same: list[dict[str, Any]]) -> dict[str, Any]:
    """Of one name's definitions, the one with the highest risk: a harmless twin must not hide a risky one."""
    from ..policy.model import RISKS
    from ..risk import resolve_risk

    return max(same, key=lambda tool: RISKS.index(resolve_risk(policy, server, tool, tool["name"]).level))


def _unlisted(server: str, tool: str, names: list[str]) -> str:
    """The guard refuses calls to a tool its server does not list: say so, and offer the nearest names."""
    import difflib

    near = difflib.get_close_matches(tool, names, n=3) or [n for n in names if n.lower() == tool.lower()]
    hint = f"; did you mean {', '.join(repr(one_line(n)) for n in near)}?" if near else ""
    own = tool[len(server) + 2:] if tool.startswith(f"{server}__") else None
    if own in names:
        hint = f"; policies see the server's own names, not the namespaced ones clients see: --tool {one_line(own)}"
    return (f"tool {one_line(tool)!r} is not listed by {one_line(server)!r}, so the guard refuses any call to it "
            f"({len(names)} tool(s) listed){hint}")


def render(view: dict[str, Any], tables: Any = None) -> str:
    """The human text of ``policy show``; every name that came from a server or a file is escaped to one line.

    ``tables`` (cli/term.table_lines, on a terminal) sets the risk sources and the rules as tables."""
    risk, act = view["risk"], view["no_arguments"]
    out = [f"{one_line(view['tool'])} on {one_line(view['server'])}  (policy {one_line(view['policy'])}, "
           f"user {one_line(view['user'])})", "", f"risk: {risk['level']} (from {risk['source']})"]
    layers = []
    for layer in risk["layers"]:
        mark = "*" if layer.get("in_force") else " "
        level = layer.get("level") or f"ignored ({layer.get('ignored')})"
        extra = f"; {one_line(layer['reason'])}" if layer.get("reason") else ""
        if layer.get("annotations") is not None:
            hints = ", ".join(f"{k}={v}" for k, v in layer["annotations"].items())
            extra += "; " + (one_line(hints) or "no hints set")
        layers.append((mark, layer["source"], level, one_line(layer["from"]) + extra))
    findings = view["integrity"]["findings"]
    if findings:
        layers.append(("*", "integrity", f"description scan found {', '.join(findings)}",
                       f"(integrity.findings: {view['integrity']['mode']})"))
    if tables:
        from .term import RISK_STYLE, Column

        columns = (Column(" ", "keep"), Column("SOURCE", "keep"), Column("LEVEL", style=RISK_STYLE),
                   Column("FROM", "wrap"))
        out += ["  " + line for line in tables(columns, layers)]
    else:
        out += [f"  {mark} {source:<11} {level:<8} {where}" for mark, source, level, where in layers]
    out += ["", f"with no arguments: {act['action'].upper()}  rule {one_line(act['rule'])} "
            f"({one_line(act['from'])})", f"  reason: {one_line(act['reason'])}"]
    if act["action"] == "approve":
        out.append(f"  asks: {act['approvers']}, waits {act['timeout']:.0f} s, grant at most: {act['scope']}")
    if act.get("hidden"):
        out.append("  hidden: the guard leaves this tool out of tools/list and refuses calls to it by name")
    out += ["", "rules that apply to this tool (strictest wins; none: defaults.action):"]
    rules = [(rule["action"], one_line(rule["name"]), one_line(rule["from"]),
              "always" if not rule["depends_on"] else "only when " + "; ".join(one_line(d) for d in rule["depends_on"]))
             for rule in view["rules"]]
    if tables and rules:
        from .term import Column

        columns = (Column("ACTION", "keep", _ACTION_STYLE), Column("RULE"), Column("FROM"), Column("APPLIES", "wrap"))
        out += ["  " + line for line in tables(columns, rules)]
    else:
        out += [f"  {action:<8} {name}  {where}  [{when}]" for action, name, where, when in rules]
    if not view["rules"]:
        out.append("  (none)")
    return "\n".join(out)


# How an action shows in policy show's table on a colour terminal; the words never change.
_ACTION_STYLE = {"allow": "green", "approve": "yellow", "deny": "red"}.get


def cmd_policy_init(args: argparse.Namespace) -> int:
    from ..policy.starter import starter_policy

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
    import os
    import tempfile

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
