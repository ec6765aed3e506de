"""An MCP server whose tools carry mcp-guard risk tags, one per level.

    mcp-guard run -- python examples/risky_server.py

Python servers tag with ``mcp_guard.risk.risk_meta`` (or ``tag`` on a ``Tool``); servers in any
other language put the same keys in the tool definition's ``_meta``::

    {"name": "wire_money", "_meta": {"mcp-guard/risk": "critical", "mcp-guard/reason": "moves money"}}

Each call is appended to the file named by ``PROBE_LOG``, if set, so tests can see what ran.
"""

from __future__ import annotations

import json
import os

from mcp.server.mcpserver import MCPServer

from mcp_guard.risk import risk_meta

server = MCPServer("risky", version="1.0.0")


def _record(tool: str, **arguments: object) -> None:
    if os.environ.get("PROBE_LOG"):
        with open(os.environ["PROBE_LOG"], "a", encoding="utf-8") as log:
            log.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


@server.tool(meta=risk_meta("low", "reads public data"))
def lookup(term: str) -> str:
    """Look a term up in the public glossary."""
    _record("lookup", term=term)
    return f"{term}: a word"


@server.tool(meta=risk_meta("medium"))
def note(text: str) -> str:
    """Keep a private note."""
    _record("note", text=text)
    return "noted"


@server.tool(meta=risk_meta("high", "sends mail in your name"))
def send_email(to: str, body: str) -> str:
    """Send an email."""
    _record("send_email", to=to, body=body)
    return f"sent to {to}"


@server.tool(meta=risk_meta("critical", "moves money out of the account"))
def wire_money(iban: str, amount: float) -> str:
    """Wire money to an account."""
    _record("wire_money", iban=iban, amount=amount)
    return "wired"


@server.tool()
def untagged(value: str) -> str:
    """A tool its author did not tag."""
    _record("untagged", value=value)
    return value


if __name__ == "__main__":
    server.run()
