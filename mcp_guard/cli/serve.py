"""``mcp-guard serve``: streamable HTTP at /mcp, with the reviewers' page, /metrics and callers' sign-in."""

from __future__ import annotations

import argparse
import functools

from . import auth, signin
from .run import guard_for
from .support import common, config_policy, open_grants, policy_path, requester_name


def register(sub) -> None:  # type: ignore[no-untyped-def]
    serve = sub.add_parser("serve", help="serve streamable HTTP at /mcp in front of the upstream servers")
    common(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port to bind (default 8765; 0 picks a free one)")
    serve.add_argument(
        "--allowed-host", action="append", default=[], help="extra Host header value to accept (DNS-rebinding protection)"
    )
    serve.add_argument(
        "--max-sessions-per-caller", type=_session_cap, default=50, metavar="N",
        help="with --auth oidc|tokens: handshake-era sessions open and 2026-07-28 requests in flight that one "
        "caller may hold at once, together (default 50); each may run its own upstream processes",
    )
    _auth_options(serve)
    signin.add_options(serve)
    serve.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: one stdio upstream server")
    serve.set_defaults(func=cmd_serve, settles=True)


def _session_cap(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of sessions, 1 or more, not {text!r}")
    return value


def _auth_options(serve: argparse.ArgumentParser) -> None:
    from ..auth import setup

    setup.add_options(serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..hooks.metrics import Metrics
    from ..relay.fronts.server import serve_http

    from ..auth.setup import metrics_token
    from ..relay.fronts.callers import Refusals, protected

    args.metrics = Metrics()
    guard, limit, idle_s = guard_for(args)
    authenticator = auth.authenticator(args)  # after _guard: on the config's store, if it names one
    page = signin.page_options(args, functools.partial(_serve_policy, args))
    review = None if args.no_policy else review_routes(page)
    refusals = Refusals(count=lambda reason: args.metrics.auth_refused.labels(reason).inc())
    token = metrics_token(args)
    metrics = _metrics_route(args.metrics, lambda endpoint: protected(endpoint, authenticator, refusals, token))
    offer = functools.partial(_offer_review_url, guard, public=page["public_url"])
    return serve_http(
        guard, host=args.host, port=args.port, extra_hosts=args.allowed_host, user=requester_name(args), max_message_bytes=limit,
        review=review, routes=[metrics], idle_s=idle_s, on_review_url=offer, authenticator=authenticator,
        max_sessions_per_caller=args.max_sessions_per_caller, refusals=refusals,
    )


def _serve_policy(args: argparse.Namespace) -> str:
    from ..config import load_config

    return policy_path(args.policy, config_policy(load_config(args.config), args.config) if args.config else None)


def _offer_review_url(guard, url: str, public: str | None = None) -> None:  # type: ignore[no-untyped-def]
    from ..hooks.approve import ApprovalHook

    url = f"{public}/review" if public else url  # the configured address, not the bound one

    for hook in guard.pipeline.hooks:
        if isinstance(hook, ApprovalHook) and not hook.review_url:  # $MCP_GUARD_REVIEW_URL wins
            hook.review_url = url


def _metrics_route(metrics, guarded=lambda endpoint: endpoint):  # type: ignore[no-untyped-def]
    """GET /metrics: Prometheus text format; approvals pending and the audit's state are read then.

    ``guarded`` puts it behind the callers' authentication or the metrics token (callers.protected)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.responses import Response
    from starlette.routing import Route

    grants = open_grants()

    async def endpoint(request):  # type: ignore[no-untyped-def]
        if grants is not None:
            from ..approvals import Approvals

            metrics.pending.set(len(Approvals(grants.store).pending()))
        if metrics.spool is not None:
            metrics.audit_backlog.set(metrics.spool.backlog)
            metrics.audit_failing.set(1 if metrics.spool.failing else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", guarded(endpoint))


def review_routes(page: dict | None = None):  # type: ignore[no-untyped-def,type-arg]
    """A factory for the reviewers' routes on the store of this home (None without a store).

    ``page``: the sign-in options of signin.page_options (public URL, OpenID provider)."""
    from ..approvals import Approvals, Reviewers
    from ..audit import load_key

    grants = open_grants()
    if grants is None:
        return None
    store = grants.store

    def build(origins: set[str]) -> list:  # type: ignore[type-arg]
        from ..audit import Audit
        from ..web.review import ReviewApp
        from ..web.slack import SlackCallback

        audit = Audit(store)
        approvals = Approvals(store, audit)  # every vote and decision is chained as it is made
        reviewers = Reviewers(store)
        review = ReviewApp(approvals, reviewers, load_key(store.home, "web.key"), origins, audit=audit, **(page or {}))
        return review.routes() + SlackCallback(approvals, reviewers, audit).routes()

    return build
