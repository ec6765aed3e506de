"""The reviewers' web page and HTTP API, served by `mcp-guard serve` and `mcp-guard review serve`.

Reviewers sign in with a token from `mcp-guard review token create NAME --role ROLE`, or, when
an OpenID provider is configured, through it alone (web/signin.py: the provider's session and
groups then decide who is signed in; tokens stay for the API). The page keeps them signed in
with a cookie (HttpOnly; ``__Host-`` and Secure when the public URL is HTTPS) holding a random
session secret whose hash the store keeps: every request looks the session up again, so signing
out or revoking the token ends it at once, and the web key (which only signs CSRF tokens)
cannot mint one. Every form carries a CSRF token bound to that cookie, and must
come from the page's own Origin. The JSON API takes the token as ``Authorization: Bearer``. Both only call the approvals engine: who may
decide is `approvals.may_decide`, the first settling decision wins, the requester never decides.

No JavaScript frameworks and no external assets: the machine may have no internet.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from typing import Any

from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..approvals import Approvals, Request, may_decide
from ..reviewers import SESSION_S, Reviewers, same_person
from .bodies import BadBody, bounded, decision_fields
from .cookies import PAGE_HEADERS as _HEADERS, Cookies, framed_nowhere
from .idp_sessions import IdpSessions
from .page import preview_html, safe_text as _safe
from .signin import ProviderUnavailable, Signed, Signin, SigninSettings

COOKIE = "mcp_guard_review"  # over HTTPS: "__Host-mcp_guard_review"
_STYLE = (
    "body{font:15px system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#1d1d1f}"
    "header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:1px solid #ddd}"
    ".card{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}"
    ".risk-high,.risk-critical{color:#b00020;font-weight:bold}.risk-medium{color:#a15c00}.meta{color:#555;font-size:.9em}"
    "pre{background:#f5f5f7;padding:.8rem;white-space:pre-wrap;word-break:break-word;border-radius:6px}"
    "button{font-size:1rem;padding:.45rem 1.1rem;margin-right:.5rem;cursor:pointer}"
    "button.approve{background:#0a7d32;color:#fff;border:0;border-radius:5px}button.deny{background:#fff;border:1px solid #b00020;color:#b00020;border-radius:5px}"
    "input[type=text],input[type=password]{padding:.4rem;width:22rem}table{border-collapse:collapse}td{padding:.15rem .6rem .15rem 0}"
)


class ReviewApp:
    def __init__(
        self, approvals: Approvals, reviewers: Reviewers, key: bytes, origins: set[str],
        public_url: str | None = None, signin: SigninSettings | None = None, audit: Any = None,
    ) -> None:
        self.approvals = approvals
        self.reviewers = reviewers
        self.key = key
        # scheme://host:port values a form may be sent from: the bound addresses and the public URL.
        self.origins = origins | ({public_url.rstrip("/")} if public_url else set())
        self.cookies = Cookies(secure=bool(public_url and public_url.startswith("https://")))
        self.signin = None
        if signin is not None:
            self.signin = Signin(signin, IdpSessions(reviewers.store, key), self.cookies, _html, audit)

    def routes(self) -> list[Route]:
        routes = [
            Route("/review", self.index),
            Route("/review/login", self.login, methods=["GET", "POST"]),
            Route("/review/logout", self.logout, methods=["POST"]),
            Route("/review/{rid}/decide", self.decide, methods=["POST"]),
            Route("/api/review/pending", self.api_pending),
            Route("/api/review/{rid}", self.api_show),
            Route("/api/review/{rid}/{verb}", self.api_decide, methods=["POST"]),
            *(self.signin.routes() if self.signin is not None else []),
        ]
        return [Route(r.path, framed_nowhere(bounded(r.endpoint)), methods=list(r.methods or ())) for r in routes]

    # -- identity -------------------------------------------------------------------------------

    def _sign(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()

    async def _who(self, req: HttpRequest) -> Signed | None:
        """The signed-in reviewer, from the live session in the store (never from the cookie alone).

        With a provider configured only its sessions count, re-checked with it when due (which
        raises ProviderUnavailable when it cannot answer)."""
        secret = self.cookies.read(req, "session")
        if self.signin is not None:
            return await self.signin.current(secret)
        found = self.reviewers.session(secret)
        return Signed(found[0], (found[1],)) if found else None

    def _csrf(self, req: HttpRequest) -> str:
        return self._sign("csrf|" + self.cookies.read(req, "session"))

    def _form_ok(self, req: HttpRequest, form: Any) -> bool:
        origin = req.headers.get("origin")
        return origin in self.origins and hmac.compare_digest(str(form.get("csrf", "")), self._csrf(req))

    def _bearer(self, req: HttpRequest) -> tuple[str, str] | None:
        auth = req.headers.get("authorization", "")
        return self.reviewers.identify(auth[7:].strip()) if auth.lower().startswith("bearer ") else None

    # -- pages ----------------------------------------------------------------------------------

    async def login(self, req: HttpRequest) -> Response:
        if self.signin is not None:
            if req.method != "GET":  # a token session would outlive the provider's say: API use only
                return _html("Sign in", _provider_form(), status=403)
            return _html("Sign in", _provider_form())
        if req.method == "GET":
            return _html("Sign in", _login_form())
        if req.headers.get("origin") not in self.origins:
            return PlainTextResponse("sign-in forms are accepted from this site only", status_code=403)
        form = await req.form()
        secret = self.reviewers.open_session(str(form.get("token", "")))
        if secret is None:
            return _html("Sign in", "<p>That token is not valid.</p>" + _login_form(), status=401)
        response = RedirectResponse("/review", status_code=303)
        self.cookies.set(response, "session", secret, max_age=SESSION_S, samesite="strict")
        return response

    async def logout(self, req: HttpRequest) -> Response:
        secret = self.cookies.read(req, "session")
        self.reviewers.end_session(secret)  # the old cookie is dead even if kept
        elsewhere = await self.signin.sign_out(secret) if self.signin is not None else None
        response: Response = RedirectResponse("/review/login", status_code=303)
        if elsewhere:
            # Not a redirect: CSP form-action 'self' rightly stops a form's redirect off this site.
            link = html.escape(elsewhere, quote=True)
            body = (
                f"<p>You are signed out of the review page. <a href='{link}' id='provider-logout'>"
                "Sign out at the identity provider too</a>.</p>"
            )
            response = _html("Signed out", body, head=f"<meta http-equiv='refresh' content='0;url={link}'>")
        self.cookies.delete(response, "session")
        return response

    async def index(self, req: HttpRequest) -> Response:
        try:
            who = await self._who(req)
        except ProviderUnavailable as exc:
            return _unconfirmed(exc)
        if who is None:
            return RedirectResponse("/review/login", status_code=303)
        name, roles = who.name, who.roles
        csrf = self._csrf(req)
        pending = [r for r in self.approvals.pending() if r.approvers == "reviewers"]
        cards = [self._card(r, name, _role_for(r, roles), csrf) for r in pending]
        notice = req.query_params.get("done", "")
        body = (
            f"<header><h1>Calls waiting for review</h1><span class='meta'>"
            f"{html.escape(name)} ({html.escape(', '.join(roles))}) "
            f"<form method='post' action='/review/logout' style='display:inline'><button>Sign out</button></form></span></header>"
            + (f"<p class='meta'>{html.escape(notice)}</p>" if notice else "")
            + ("".join(cards) or "<p>Nothing is waiting. This page does not refresh by itself: reload it to check again.</p>")
        )
        return _html("Review queue", body)

    def _card(self, r: Request, name: str, role: str, csrf: str) -> str:
        refusal = may_decide(r, name, role)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created))
        left = max(0, int(r.expires - time.time()))
        votes = self.approvals.votes(r.id)
        history = self.approvals.history(r.server, r.tool, 5)
        past = "".join(
            f"<tr><td>{time.strftime('%m-%d %H:%M', time.localtime(h.created))}</td><td>{html.escape(h.user)}</td>"
            f"<td>{html.escape(h.state)}</td><td>{html.escape(h.decided_by or '')}</td><td>{html.escape(h.reason or '')}</td></tr>"
            for h in history
        )
        actions = (
            f"<p class='meta'>{html.escape(refusal)}</p>"
            if refusal
            else f"<form method='post' action='/review/{html.escape(r.id)}/decide'><input type='hidden' name='csrf' value='{csrf}'>"
            f"<p><input type='text' name='reason' placeholder='Reason (shown to the requester and in the audit)' aria-label='reason'></p>"
            "<button class='approve' name='decision' value='approve'>Approve</button>"
            "<button class='deny' name='decision' value='deny'>Deny</button></form>"
        )
        return (
            f"<div class='card' id='req-{html.escape(r.id)}'><h2>{_safe(r.tool)} on {_safe(r.server)}</h2>"
            f"<p class='meta'>Requested by <b>{_safe(r.user)}</b> at {when} · risk <span class='risk-{html.escape(r.risk)}'>{html.escape(r.risk)}</span>"
            f" · rule {html.escape(r.rule)} · {len([v for v in votes if v['decision'] == 'approve'])} of {r.quorum} approval(s) · expires in {left} s</p>"
            f"{preview_html(r)}"
            + (f"<details><summary>Similar calls</summary><table>{past}</table></details>" if past else "")
            + actions
            + "</div>"
        )

    async def decide(self, req: HttpRequest) -> Response:
        form = await req.form()
        if not self._form_ok(req, form):
            return PlainTextResponse("this form may only be sent from the review page itself", status_code=403)
        try:
            signed = await self._who(req)  # re-checked with the provider first when the last check is old
        except ProviderUnavailable as exc:
            return _unconfirmed(exc)
        if signed is None:
            return RedirectResponse("/review/login", status_code=303)
        request = self.approvals.get(req.path_params["rid"])
        who = (signed.name, _role_for(request, signed.roles) if request is not None else signed.roles[0])
        outcome = self._decide(req.path_params["rid"], who, form.get("decision") == "approve", str(form.get("reason", "")), "web")
        if isinstance(outcome, str):
            return _html("Not decided", f"<p>{html.escape(outcome)}</p><p><a href='/review'>Back to the queue</a></p>", status=409)
        return RedirectResponse(f"/review?done={outcome.id}+{outcome.state}", status_code=303)

    def _decide(
        self, rid: str, who: tuple[str, str], approve: bool, reason: str, channel: str, scope: str = "once"
    ) -> Request | str:
        request = self.approvals.get(rid)
        if request is None:
            return f"no request {rid}"
        refusal = may_decide(request, *who)
        if refusal:
            return refusal
        try:
            return self.approvals.decide(rid, approve=approve, by=who[0], channel=channel, scope=scope, reason=reason)
        except ValueError as exc:
            return str(exc)

    # -- JSON API -------------------------------------------------------------------------------

    async def api_pending(self, req: HttpRequest) -> Response:
        who = self._bearer(req)
        if who is None:
            return JSONResponse({"error": "a reviewer token is required (Authorization: Bearer ...)"}, status_code=401)
        items = [r.public() for r in self.approvals.pending() if r.approvers == "reviewers" or same_person(r.user, who[0])]
        return JSONResponse(items, headers=_HEADERS)

    async def api_show(self, req: HttpRequest) -> Response:
        """One request with its full preview: what `review show --url` prints before a decision."""
        who = self._bearer(req)
        if who is None:
            return JSONResponse({"error": "a reviewer token is required (Authorization: Bearer ...)"}, status_code=401)
        request = self.approvals.get(req.path_params["rid"])
        if request is None or (request.approvers != "reviewers" and not same_person(request.user, who[0])):
            return JSONResponse({"error": f"no request {req.path_params['rid']}"}, status_code=404)
        return JSONResponse(request.public(), headers=_HEADERS)

    async def api_decide(self, req: HttpRequest) -> Response:
        who = self._bearer(req)
        if who is None:
            return JSONResponse({"error": "a reviewer token is required (Authorization: Bearer ...)"}, status_code=401)
        verb = req.path_params["verb"]
        if verb not in ("approve", "deny"):
            return JSONResponse({"error": "use /approve or /deny"}, status_code=404)
        try:
            reason, scope = decision_fields(await req.body())
        except BadBody as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        outcome = self._decide(req.path_params["rid"], who, verb == "approve", reason, "api", scope)
        if isinstance(outcome, str):
            return JSONResponse({"error": outcome}, status_code=409)
        return JSONResponse(outcome.public())


def _role_for(request: Request, roles: tuple[str, ...]) -> str:
    """The one of a reviewer's roles that lets them decide ``request``, if any (else the first)."""
    for role in roles:
        if request.grp is not None and same_person(role, request.grp):
            return role
    return next((role for role in roles if same_person(role, "admin")), roles[0])


def _unconfirmed(exc: ProviderUnavailable) -> Response:
    body = (
        "<p>Your sign-in is due to be confirmed with the identity provider, which cannot be reached now"
        f" ({html.escape(str(exc))}). Nothing was decided; try again shortly.</p>"
    )
    return _html("Cannot confirm your sign-in", body, 503)


def _provider_form() -> str:
    return (
        "<p><a href='/review/oidc/start'><button type='button'>"
        "Sign in with your organisation's account</button></a></p>"
        "<p class='meta'>Reviewer tokens (<code>mcp-guard review token create</code>) work for the API only here.</p>"
    )


def _login_form() -> str:
    return (
        "<form method='post' action='/review/login'><p><label>Reviewer token<br>"
        "<input type='password' name='token' autocomplete='off' aria-label='token'></label></p><button>Sign in</button></form>"
        "<p class='meta'>Tokens come from <code>mcp-guard review token create NAME --role ROLE</code>.</p>"
    )


def _html(title: str, body: str, status: int = 200, head: str = "") -> HTMLResponse:
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'>{head}<title>mcp-guard: {html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return HTMLResponse(page, status_code=status, headers=_HEADERS)
