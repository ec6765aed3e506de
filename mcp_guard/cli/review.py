"""`mcp-guard review approve|deny` and `review token`: decisions made with a reviewer credential.

A decision needs a reviewer token: ``$MCP_GUARD_REVIEW_TOKEN``, ``--token-file F``, or a prompt
that does not echo when stdin is a terminal. The token says who decides; ``--as NAME`` is kept
only as a check a script can make (it must name the token's own reviewer, or nothing is
decided), never as an identity.

Two ways to reach the queue: the store in ``--home`` (the same-user setup), or ``--url`` of a
running ``mcp-guard serve`` / ``review serve``, whose API checks the token itself. The second
is how a reviewer decides when the guard's store and keys belong to an account they (and the
agent) cannot read.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import settings
from ..errors import ConfigError
from . import serve, signin
from .support import (
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    approvals_for,
    audit_for,
    one_line,
    requester_name,
    reviewer_options,
    state,
)

__all__ = ["cmd_review_decide", "cmd_review_list", "cmd_review_show", "cmd_review_token", "register", "reviewer_token"]


def register(sub) -> None:  # type: ignore[no-untyped-def]
    review = sub.add_parser("review", help="list and decide calls waiting for approval")
    rsub = review.add_subparsers(metavar="ACTION")
    rlist = rsub.add_parser("list", help="pending approval requests (with the approval page's link)")
    rlist.add_argument("--json", action="store_true")
    reviewer_options(rlist)
    state(rlist)
    rlist.set_defaults(func=cmd_review_list)
    rshow = rsub.add_parser("show", help="one request: the preview the approver sees")
    rshow.add_argument("id")
    rshow.add_argument("--json", action="store_true")
    reviewer_options(rshow)
    state(rshow)
    rshow.set_defaults(func=cmd_review_show)
    rserve = rsub.add_parser("serve", help="serve only the reviewers' web page and API (no MCP)")
    rserve.add_argument("--host", default="127.0.0.1")
    rserve.add_argument("--port", type=int, default=8766)
    rserve.add_argument("--allowed-host", action="append", default=[])
    state(rserve)
    signin.add_options(rserve, with_policy=True)
    rserve.set_defaults(func=cmd_review_serve)
    token = rsub.add_parser("token", help="reviewer tokens: create NAME --role ROLE | list | revoke NAME")
    token.add_argument("token_action", choices=("create", "list", "revoke"))
    token.add_argument("name", nargs="?", default="")
    token.add_argument("--role", default="reviewer", help="a policy group name the reviewer decides for, or admin")
    state(token)
    token.set_defaults(func=cmd_review_token)
    for verb in ("approve", "deny"):
        decide = rsub.add_parser(verb, help=f"{verb} a pending request")
        decide.add_argument("id")
        decide.add_argument(
            "--as", dest="as_name", default=None, help="a check only: must name the token's reviewer, who is the one deciding"
        )
        decide.add_argument("--reason", default="")
        if verb == "approve":
            decide.add_argument("--scope", default="once", help="once (default), session, or the policy's ttl:...")
        reviewer_options(decide)
        state(decide)
        decide.set_defaults(func=cmd_review_decide, approve=verb == "approve", scope="once")


def cmd_review_list(args: argparse.Namespace) -> int:
    import json
    import time

    if args.url:  # a served review API: the store may be another account's
        return cmd_review_remote_list(args)
    items = approvals_for(args).pending()
    if args.json:
        print(json.dumps([{**r.public(), "page_url": r.page_url} for r in items]))
        return EXIT_OK
    if not items:
        print("no calls are waiting for approval", file=sys.stderr)
    from .term import on_terminal

    if on_terminal():
        _pending_table([{**r.public(), "page_url": r.page_url} for r in items])
        return EXIT_OK
    for r in items:
        left = max(0, int(r.expires - time.time()))
        print(f"{r.id}  {one_line(r.user)} wants {one_line(r.tool)} on {one_line(r.server)} (risk {one_line(r.risk)},"
              f" rule {one_line(r.rule)}), {left} s left")
        if r.page_url:
            print(f"          {r.page_url}")
    return EXIT_OK


def _pending_table(items: list[dict[str, Any]]) -> None:
    """Pending requests (the store's, or a served API's) as a table, each page link under its row."""
    import time

    from .term import RISK_STYLE, Column, print_table

    columns = (Column("ID", "keep", lambda _: "bold"), Column("REQUESTER"), Column("TOOL"), Column("SERVER"),
               Column("RISK", "keep", RISK_STYLE), Column("RULE"), Column("LEFT", "keep", right=True),
               Column("PAGE", "below"))
    now = time.time()
    print_table(columns, [(r.get("id"), r.get("user"), r.get("tool"), r.get("server"), r.get("risk"), r.get("rule"),
                           f"{max(0, int(r['expires'] - now))} s" if isinstance(r.get("expires"), (int, float)) else "",
                           r.get("page_url")) for r in items])


def cmd_review_show(args: argparse.Namespace) -> int:
    import json

    if args.url:
        return cmd_review_remote_show(args)
    request = approvals_for(args).get(args.id)
    if request is None:
        print(f"mcp-guard: no approval request {args.id!r}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(request.public()))
    else:
        print(f"{request.id}: {one_line(request.tool)} on {one_line(request.server)}, risk {one_line(request.risk)},"
              f" rule {one_line(request.rule)}, {request.state}, requested by {one_line(request.user)}")
        # The stored preview is escaped when built; each line is passed through again so nothing in
        # the store can move the cursor or clear the terminal.
        print("\n".join(one_line(line) for line in request.preview.rstrip("\n").split("\n")))
        print(f"Preview: {len(request.preview)} characters, shown in full; sha256 {request.preview_sha256}")
    return EXIT_OK


def cmd_review_serve(args: argparse.Namespace) -> int:
    from ..relay.fronts.server import serve_http

    review = serve.review_routes(signin.page_options(args, lambda: args.policy))
    if review is None:
        raise ConfigError("the mcp-guard store cannot be opened")
    return serve_http(None, host=args.host, port=args.port, extra_hosts=args.allowed_host, review=review)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def reviewer_token(args: argparse.Namespace) -> str:
    """The reviewer's token: --token-file, else the environment, else a no-echo prompt on a terminal."""
    token = ""
    if getattr(args, "token_file", None):
        token = _token_from_file(Path(args.token_file))
    token = token or settings.current().review_token
    if not token and sys.stdin.isatty():
        token = getpass.getpass("reviewer token: ").strip()
    if not token:
        raise ConfigError(
            "deciding needs a reviewer token: set MCP_GUARD_REVIEW_TOKEN, give --token-file F, or run it in a terminal "
            "to be asked (tokens come from `mcp-guard review token create NAME`)"
        )
    return token


def _token_from_file(path: Path) -> str:
    """The token in ``path``, refused (as ssh refuses a key) when other accounts may read the file."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--token-file: cannot read it: {exc}") from None
    if sys.platform != "win32" and mode & 0o077:
        raise ConfigError(f"--token-file: {path} may be read by other accounts; `chmod 600` it (the token was not used)")
    return text


def cmd_review_decide(args: argparse.Namespace) -> int:
    token = reviewer_token(args)
    if args.url:
        return _decide_remote(args, token)
    from ..approvals import Reviewers, may_decide
    from ..reviewers import same_person

    approvals = approvals_for(args, audited=True)
    who = Reviewers(approvals.store).identify(token)
    if who is None:
        print("mcp-guard: that reviewer token is not valid (unknown or revoked); nothing was decided", file=sys.stderr)
        return EXIT_PROBLEM
    if args.as_name is not None and not same_person(args.as_name, who[0]):
        print(f"mcp-guard: --as {args.as_name!r} is not the token's reviewer ({who[0]}); nothing was decided", file=sys.stderr)
        return EXIT_USAGE
    request = approvals.get(args.id)
    refusal = f"no approval request {args.id!r}" if request is None else may_decide(request, *who)
    try:
        if refusal:
            raise ValueError(refusal)
        decided = approvals.decide(args.id, approve=args.approve, by=who[0], channel="cli", scope=args.scope, reason=args.reason)
    except ValueError as exc:
        print(f"mcp-guard: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{decided.id} {decided.state} by {who[0]}", file=sys.stderr)
    return EXIT_OK


def _decide_remote(args: argparse.Namespace, token: str) -> int:
    verb = "approve" if args.approve else "deny"
    if args.as_name is not None:
        print("mcp-guard: --as is checked against the store's tokens and cannot be used with --url", file=sys.stderr)
        return EXIT_USAGE
    status, body = _api(args.url, token, "POST", f"/api/review/{args.id}/{verb}", {"reason": args.reason, "scope": args.scope})
    if status != 200:
        print(f"mcp-guard: {body.get('error', f'the review API answered {status}')}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{body.get('id')} {body.get('state')} via {args.url}", file=sys.stderr)
    return EXIT_OK


def cmd_review_remote_show(args: argparse.Namespace) -> int:
    """`review show ID --url`: one request and its preview, from the served API."""
    status, body = _api(args.url, reviewer_token(args), "GET", f"/api/review/{args.id}", None)
    if status != 200:
        print(f"mcp-guard: {body.get('error', f'the review API answered {status}')}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(body))
    else:
        print(f"{body['id']}: {body['tool']} on {body['server']}, risk {body['risk']}, rule {body['rule']}, {body['state']}")
        print(body["preview"])
    return EXIT_OK


def cmd_review_remote_list(args: argparse.Namespace) -> int:
    """`review list --url`: what the served API shows this reviewer."""
    status, body = _api(args.url, reviewer_token(args), "GET", "/api/review/pending", None)
    if status != 200:
        print(f"mcp-guard: {body.get('error', f'the review API answered {status}')}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(body))
        return EXIT_OK
    from .term import on_terminal

    if on_terminal():
        _pending_table(body)
    else:
        for r in body:
            print(f"{one_line(str(r['id']))}  {one_line(str(r['user']))} wants {one_line(str(r['tool']))} on"
                  f" {one_line(str(r['server']))} (risk {one_line(str(r['risk']))}, rule {one_line(str(r['rule']))})")
    if not body:
        print("no calls are waiting for review", file=sys.stderr)
    return EXIT_OK


def _api(url: str, token: str, method: str, path: str, payload: dict[str, Any] | None) -> tuple[int, Any]:
    import httpx

    base = _checked_base(url)
    try:
        response = httpx.request(
            method, base + path, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        raise ConfigError(f"--url: cannot reach the review API at {base}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 and not isinstance(body, dict):
        body = {}
    return response.status_code, body


def _checked_base(url: str) -> str:
    """The API's base URL; a token is only sent over HTTPS, or plain HTTP to this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--url: not an http(s) URL: {url!r}")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigError("--url: a reviewer token is sent only over https:// (or plain http to this machine)")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def cmd_review_token(args: argparse.Namespace) -> int:
    from ..approvals import Reviewers

    reviewers = Reviewers(approvals_for(args).store)
    if args.token_action == "create":
        try:
            token = reviewers.create(args.name, args.role)
        except ValueError as exc:
            print(f"mcp-guard: {exc}", file=sys.stderr)
            return EXIT_USAGE
        _audit(args, "created", args.name, args.role)
        print(token)  # the only time it is shown: it is stored hashed
        print(f"reviewer token for {args.name.strip()} ({args.role}) created; keep it secret", file=sys.stderr)
    elif args.token_action == "revoke":
        if not reviewers.revoke(args.name):
            print(f"mcp-guard: no live token for {args.name!r}", file=sys.stderr)
            return EXIT_PROBLEM
        _audit(args, "revoked", args.name, None)
        print(f"revoked the token of {args.name}; its web sessions ended with it", file=sys.stderr)
    else:
        _token_list(reviewers.list())
    return EXIT_OK


def _token_list(tokens: list[dict[str, Any]]) -> None:
    """JSON for a script; a table for a person at a terminal (no token is ever stored to show)."""
    from .term import STATE_STYLE, Column, moment, print_records

    columns = (Column("NAME"), Column("ROLE"), Column("CREATED", "keep"), Column("STATE", "keep", STATE_STYLE),
               Column("REVOKED", "keep"))
    print_records(tokens, columns, lambda t: (t["name"], t["role"], moment(t["created"]),
                                              "revoked" if t["revoked"] else "live", moment(t["revoked"])),
                  "no reviewer tokens: `mcp-guard review token create NAME --role ROLE` makes one")


def _audit(args: argparse.Namespace, action: str, name: str, role: str | None) -> None:
    """Who was made (or unmade) a reviewer, and by which OS account: deciders are part of the evidence."""
    body = {"action": action, "name": name.strip(), "by": requester_name(argparse.Namespace(user=None))}
    audit_for(args, writer=True).append("reviewer.token", {**body, "role": role} if role else body)
