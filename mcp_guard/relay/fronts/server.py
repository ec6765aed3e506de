"""``mcp-guard serve``'s server: the listening socket, uvicorn, and the task group that holds the
guard, the HTTP front (http.py) and its background checks, and the reviewers' page."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ...auth.caller import Authenticator
from .. import loop
from ..lines import DEFAULT_MAX_MESSAGE_BYTES
from . import headbound
from .callers import Refusals
from .checks import allowed_hosts, host_check
from .http import MAX_SESSIONS_PER_CALLER, SESSION_IDLE_S, HttpFront

if TYPE_CHECKING:
    from ...guard import Guard

# uvicorn under many sessions (benchmarks/serve_load.py measured each):
UVICORN_OPTIONS: dict[str, Any] = {
    "http": "httptools",  # its C parser: h11 in pure Python cost ~0.6 ms of CPU per call
    "log_level": "warning",
    "access_log": False,  # one log record per call is work even when no handler prints it
    # uvicorn would rewrite the client address and scheme from X-Forwarded-* sent from loopback;
    # the guard takes its public URLs from configuration (issue 17), and skips a layer per request.
    "proxy_headers": False,
    # Longer than a load balancer's idle timeout (nginx keeps upstream connections 60 s), so the
    # balancer, not the guard, closes an idle connection: no request is sent into a closing one.
    "timeout_keep_alive": 75,
    "backlog": 4096,  # hundreds of sessions connecting at once must not see refused connections
}


def serve_http(
    guard: Guard | None,
    *,
    host: str,
    port: int,
    extra_hosts: list[str],
    user: str = "",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    review: Any = None,
    routes: list[Any] | None = None,
    idle_s: float = SESSION_IDLE_S,
    on_review_url: Callable[[str], None] | None = None,
    authenticator: Authenticator | None = None,
    max_sessions_per_caller: int = MAX_SESSIONS_PER_CALLER,
    refusals: Refusals | None = None,
) -> int:
    """Serve MCP at /mcp (when ``guard`` is given) and the reviewers' page (when ``review`` is).

    ``on_review_url`` learns the review page's address once the port is bound."""
    import functools

    loop.run(
        functools.partial(
            _serve,
            guard,
            host,
            port,
            extra_hosts,
            user,
            max_message_bytes,
            review,
            routes or [],
            idle_s,
            on_review_url,
            authenticator,
            max_sessions_per_caller,
            refusals,
        )
    )
    return 0


async def _serve(
    guard: Guard | None,
    host: str,
    port: int,
    extra_hosts: list[str],
    user: str,
    max_message_bytes: int,
    review: Any,
    extra: list[Any],
    idle_s: float,
    on_review_url: Callable[[str], None] | None,
    authenticator: Authenticator | None = None,
    max_sessions_per_caller: int = MAX_SESSIONS_PER_CALLER,
    refusals: Refusals | None = None,
) -> None:
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    hosts = allowed_hosts(host, port, extra_hosts)
    # https too: behind a load balancer that ends TLS the page is https://<public name> to the browser.
    origins = {f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")}
    routes = (review(origins=origins) if review is not None else []) + extra
    async with anyio.create_task_group() as tg:
        if guard is not None:
            await tg.start(guard.run)
            front = HttpFront(
                guard,
                tg,
                allowed_hosts=hosts,
                user=user,
                max_message_bytes=max_message_bytes,
                extra_routes=routes,
                idle_s=idle_s,
                authenticator=authenticator,
                max_sessions_per_caller=max_sessions_per_caller,
                refusals=refusals,
            )
            tg.start_soon(front.reap_idle)
            tg.start_soon(front.recheck_streams)
            if authenticator is not None:
                tg.start_soon(authenticator.run)  # e.g. the issuer's keys, refreshed in the background
            app = front.app()
        else:
            from starlette.applications import Starlette

            app = Starlette(
                routes=[Route("/healthz", lambda request: PlainTextResponse("ok")), *routes],
                middleware=[host_check(hosts)],
            )
        # httptools, with each request's head bounded before it is read (headbound.py).
        options = {**UVICORN_OPTIONS, "http": headbound.protocol()}
        config = uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=1, **options)
        server = uvicorn.Server(config)
        if guard is not None:
            print(f"mcp-guard: serving MCP at http://{host}:{port}/mcp", file=sys.stderr, flush=True)
        if review is not None:
            if on_review_url is not None:  # waiting reviewer requests offer it to URL-mode clients
                on_review_url(f"http://{host}:{port}/review")
            print(f"mcp-guard: review page at http://{host}:{port}/review", file=sys.stderr, flush=True)
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()
