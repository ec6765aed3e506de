"""The loopback approval page: one random, unguessable URL per request, started on demand.

Lifecycle: the first out-of-band request starts a small HTTP server on 127.0.0.1 (a free port)
in a daemon thread of the guard process; it lives as long as the process. It reads and writes
only the approvals store, which is also what the waiting call watches, so a decision made here,
from the CLI, or from another guard reaches the call the same way.

Refused: requests without the request's token, a POST whose Origin is not this page, and any
client that is not on loopback (the socket is bound to 127.0.0.1 as well). No JavaScript, no
external assets: the form posts back with a CSRF token derived from the request's token.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import html
import logging
import threading
import time
from typing import Any

from ..approval.escape import one_line
from ..approvals import Approvals, Request
from .cookies import PAGE_HEADERS as _NO_CACHE, framed_nowhere

logger = logging.getLogger(__name__)

# How long start() waits for the server thread to listen before giving up (fail closed).
START_TIMEOUT_S = 5.0


def _csrf(request: Request) -> str:
    return hmac.new(request.page_token.encode(), b"csrf", hashlib.sha256).hexdigest()


def _token_ok(request: Request | None, token: str | None) -> bool:
    return request is not None and token is not None and hmac.compare_digest(request.page_token, token)


class ApprovalPage:
    def __init__(self, approvals: Approvals) -> None:
        self.approvals = approvals
        self.port: int | None = None
        self._lock = threading.Lock()
        self._server: Any = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, request: Request) -> str:
        self.start()
        return f"{self.origin}/r/{request.id}?t={request.page_token}"

    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            import socket

            import uvicorn

            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            server = uvicorn.Server(uvicorn.Config(self.app(), log_level="warning", lifespan="off"))
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the guard owns signals
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mcp-guard-approval-page", daemon=True)
            thread.start()
            deadline = time.monotonic() + START_TIMEOUT_S
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.01)
            if not server.started:
                raise RuntimeError("the approval page did not start")
            self._server = server
            logger.info("approval page listening on %s", self.origin)

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request as HttpRequest
        from starlette.responses import HTMLResponse, PlainTextResponse
        from starlette.routing import Route

        def loopback(req: HttpRequest) -> bool:
            return req.client is not None and req.client.host in ("127.0.0.1", "::1")

        async def show(req: HttpRequest) -> Any:
            if not loopback(req):
                return PlainTextResponse("approval pages answer only on this machine", status_code=403)
            request = self.approvals.get(req.path_params["rid"])
            if not _token_ok(request, req.query_params.get("t")):
                return PlainTextResponse("unknown request or wrong link", status_code=404)
            assert request is not None
            return HTMLResponse(render(request, _csrf(request)), headers=_NO_CACHE)

        async def decide(req: HttpRequest) -> Any:
            if not loopback(req):
                return PlainTextResponse("approval pages answer only on this machine", status_code=403)
            if req.headers.get("origin") != self.origin:
                return PlainTextResponse("this form may only be sent from its own page", status_code=403)
            form = await req.form()
            request = self.approvals.get(req.path_params["rid"])
            if not _token_ok(request, str(form.get("t", ""))) or not hmac.compare_digest(str(form.get("csrf", "")), _csrf(request)):  # type: ignore[arg-type]
                return PlainTextResponse("unknown request or wrong link", status_code=404)
            assert request is not None
            approve = form.get("decision") == "approve"
            try:
                decided = self.approvals.decide(
                    request.id, approve=approve, by=_os_user(), channel="page",
                    scope=str(form.get("scope", "once")), reason=str(form.get("reason", "")),
                )
            except ValueError as exc:
                return HTMLResponse(_page("Nothing to decide", f"<p>{html.escape(str(exc))}</p>"), status_code=409)
            verdict = "approved" if decided.state == "approved" else "denied"
            return HTMLResponse(_page(f"Call {verdict}", f"<p>{html.escape(decided.tool)} on {html.escape(decided.server)} was {verdict}. You can close this page.</p>"), headers=_NO_CACHE)

        return Starlette(routes=[
            Route("/r/{rid}", framed_nowhere(show)), Route("/r/{rid}/decide", framed_nowhere(decide), methods=["POST"]),
        ])


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local user"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>mcp-guard: " + html.escape(title) + "</title>"
        "<style>body{font:15px system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "pre{background:#f4f4f4;padding:1rem;white-space:pre-wrap;word-break:break-word}"
        "button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.6rem}.risk{font-weight:bold}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def safe_text(text: str) -> str:
    """A name from a call (tool, server, user) for HTML: one line, hidden characters as codes."""
    return html.escape(one_line(text))


def preview_html(request: Request) -> str:
    """The canonical preview in full, with its size and digest (the reviewers' page shows the same)."""
    return (
        f"<pre class='preview'>{html.escape(request.preview)}</pre>"
        f"<p class='digest'>Preview: {len(request.preview)} characters, shown in full; "
        f"sha256 <code>{html.escape(request.preview_sha256)}</code></p>"
    )


def render(request: Request, csrf: str) -> str:
    from ..grants import offered_scopes

    if request.state != "pending":
        return _page("Already decided", f"<p>This request is {html.escape(request.state)}.</p>")
    left = max(0, int(request.expires - time.time()))
    scopes = "".join(
        f"<option value='{html.escape(s)}'>{html.escape({'once': 'Only this call', 'session': 'This tool for the rest of the session'}.get(s, 'This tool for ' + s[4:]))}</option>"
        for s in offered_scopes(request.max_scope)
    )
    hidden = f"<input type='hidden' name='t' value='{html.escape(request.page_token)}'><input type='hidden' name='csrf' value='{csrf}'>"
    body = (
        f"<p>An AI agent wants to call <b>{safe_text(request.tool)}</b> on server <b>{safe_text(request.server)}</b>."
        f" Risk: <span class='risk'>{safe_text(request.risk)}</span>. Rule: {safe_text(request.rule)}.</p>"
        f"{preview_html(request)}"
        f"<p>Requested by {safe_text(request.user)}; this request expires in {left // 60} min {left % 60} s.</p>"
        f"<form method='post' action='/r/{html.escape(request.id)}/decide'>{hidden}"
        f"<p><label>Approve for <select name='scope'>{scopes}</select></label></p>"
        "<button name='decision' value='approve'>Approve</button><button name='decision' value='deny'>Deny</button>"
        "</form>"
    )
    return _page("Approve this call?", body)
