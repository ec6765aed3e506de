"""The approval hook: a call the policy marks ``approve`` waits for a person's yes.

``approvers: user`` asks the person at the client through elicitation: mid-call for
handshake-era clients, as an input-required round for 2026-07-28 clients (``call.asker``
hides the difference). No answer, a decline, a cancel, a timeout, or a client that cannot be
asked all mean the call is not run, with a message saying why and what to do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import time

import anyio

from .. import settings
from ..approvals import Approvals, call_binding
from ..errors import RPCError
from ..grants import Grants, offered_scopes
from ..pipeline import Call, Hook
from ..approval.escape import one_line
from ..approval.preview import Preview, build as build_preview, excerpt, fits
from .why import asked_because

if TYPE_CHECKING:  # the page (and html) are imported only where one is served
    from ..web.page import ApprovalPage

logger = logging.getLogger(__name__)

APPROVE_KEY = "mcp-guard/approve"
# How often a waiting call tells the client it is still waiting.
WAITING_NOTE_S = 5.0
# How long the reviewers' channels may take to hear of a request (they post beside the wait).
NOTIFY_TIMEOUT_S = 15.0
# How long the client may take to acknowledge the review page's link (it changes nothing).
REVIEW_LINK_TIMEOUT_S = 600.0
# The most of the canonical preview one elicitation question carries: clients show the message
# in a dialog, and a very long one is cut or scrolled past. Past it, head and tail, the digest
# and where to read it all (`review show`).
ELICIT_PREVIEW_CHARS = 3000

SCOPE_TITLES = {"once": "Only this call", "session": "This tool, for the rest of this session"}


class ApprovalHook(Hook):
    def __init__(
        self, grants: Grants | None, approvals: Approvals | None = None, page: ApprovalPage | None = None, notifier: Any = None
    ) -> None:
        self.grants = grants
        self.approvals = approvals
        self.page = page
        self.notifier = notifier
        # The review page's address, once `serve` is listening: clients that take URL-mode
        # elicitation are offered a link to the request there.
        self.review_url: str | None = settings.current().review_url or None

    async def request(self, call: Call) -> None:
        decision = call.decision
        if decision is None or decision.action != "approve" or call.verdict is not None:
            return
        if call.preapproved:
            return
        if self._granted(call, decision):
            return
        # The preview runs the detectors over every value: off the event loop, once, before any surface.
        await anyio.to_thread.run_sync(hashed, call, decision)
        binding = call_binding(call.upstream, call.name, call.shown_arguments, call.policy_version)
        if decision.approvers == "reviewers":
            await self._reviewers(call, decision, binding)
            return
        if self.approvals is not None:
            earlier = self.approvals.take_decision(binding, call.user)
            if earlier is not None:
                self._settle(call, earlier)
                return
        scopes = offered_scopes(decision.scope)
        if "elicitation" in decision.channels and call.asker is not None and call.asker.can_elicit:
            if await self._elicit(call, decision, scopes):
                return
        elif not self._out_of_band_possible(decision):
            call.deny(
                f"{call.name} on {call.upstream} needs your approval (rule '{decision.rule}': {decision.reason}), "
                "but this MCP client does not support elicitation, the way mcp-guard asks. "
                "The call was not run. Use a client with elicitation support, or change the policy.",
                "approve",
            )
            return
        if call.verdict is None:
            await self._out_of_band(call, decision, binding)

    async def close_session(self, session_id: str) -> None:
        """A session's grants end with it: a later client never runs on them."""
        if self.grants is not None:
            self.grants.end_session(session_id)

    def _granted(self, call: Call, decision: Any) -> bool:
        """Whether a grant made for exactly this (requester, tool, rule, policy, approver kind) lets it through."""
        if self.grants is None:
            return False
        grant = self.grants.find(
            call.user, call.session_id, call.upstream, call.name,
            kind=decision.approvers, rule=decision.rule, policy_version=call.policy_version,
        )
        if grant is None:
            return False
        call.grant = grant.id
        return True

    async def _elicit(self, call: Call, decision: Any, scopes: list[str]) -> bool:
        """Ask in the client. True when that settled the call (approved or denied)."""
        assert call.asker is not None
        message = self._question(call, decision)
        if message is None:
            call.deny(
                f"the preview of {call.name} is too long for the client's question, and this policy offers no other "
                "place to read it in full (channels: page or cli, and the review queue), so it was not run.", "approve",
            )
            return True
        params = {"mode": "form", "message": message, "requestedSchema": schema(scopes)}
        # A 2026 client's answer arrives in a retry: the time to answer runs from when the
        # question went out (sealed in the state), not from the retry's arrival.
        asked_at = call.asked_at if APPROVE_KEY in call.answers else None
        started = asked_at if asked_at is not None else time.monotonic()
        try:
            answer = await call.asker.ask(APPROVE_KEY, "elicitation/create", params, decision.timeout)
        except TimeoutError:
            self._close_reading(call)
            call.deny(f"no one approved {call.name} within {decision.timeout:.0f} s, so it was not run.", "approve")
            return True
        except RPCError as exc:
            if self._out_of_band_possible(decision):
                call.client_could_not_ask = f"elicitation failed: {exc.message}"
                return False
            call.deny(f"asking for approval failed ({exc.message}), so {call.name} was not run.", "approve")
            return True
        waited = time.monotonic() - started
        if waited > decision.timeout:
            call.deny(
                f"the answer about {call.name} came {waited:.0f} s after it was asked, later than the "
                f"{decision.timeout:.0f} s the policy allows, so it was not run.", "approve",
            )
            return True
        verdict = _read(answer, scopes)
        call.preview_sha256 = hashed(call, decision).sha256
        if verdict is not None:
            self._approved(call, verdict, "elicitation", call.user)
            self._close_reading(call)
            return True
        action = answer.get("action") if isinstance(answer, dict) else None
        elapsed_ms = waited * 1000
        automatic = action in ("decline", "cancel") and elapsed_ms < decision.min_human_ms
        if automatic and self._out_of_band_possible(decision):
            # Faster than anyone can read: the client answered by itself. Never a yes; ask elsewhere.
            call.client_could_not_ask = f"{action} after {elapsed_ms:.0f} ms, faster than a person"
            logger.info("call %s: %s came back in %.0f ms; asking out of band", call.name, action, elapsed_ms)
            return False
        self._close_reading(call)
        what = {"decline": "declined", "cancel": "cancelled"}.get(str(action), "did not approve")
        call.deny(f"the user {what} {call.name} on {call.upstream}; it was not run. Do not retry it unless the user asks.", "approve")
        return True

    def _question(self, call: Call, decision: Any) -> str | None:
        """The elicitation message: the canonical preview, or its head and tail with the digest
        and a request whose `review show` has it all; None when it cannot be shown in full anywhere."""
        shown = hashed(call, decision)
        if fits(shown, ELICIT_PREVIEW_CHARS):
            return excerpt(shown, ELICIT_PREVIEW_CHARS, "")
        if not self._out_of_band_possible(decision):
            return None  # a request `review show` could read would be one the CLI could decide: not allowed here
        binding = call_binding(call.upstream, call.name, call.shown_arguments, call.policy_version)
        request = self._open(call, decision, binding, max(decision.timeout, decision.wait))
        return excerpt(shown, ELICIT_PREVIEW_CHARS, f"run `mcp-guard review show {request.id}` in a terminal")

    def _close_reading(self, call: Call) -> None:
        """The request opened only so the whole preview could be read: answered in the client."""
        if call.approval_request and self.approvals is not None:
            self.approvals.cancel(call.approval_request, "answered in the client")

    async def _reviewers(self, call: Call, decision: Any, binding: str) -> None:
        """Suspend the call in the review queue until reviewers decide, or it times out."""
        if self.approvals is None:
            call.deny(f"{call.name} on {call.upstream} needs a reviewer's approval, but the review queue (the mcp-guard store) is unavailable. The call was not run.", "approve")
            return
        earlier = self.approvals.take_decision(binding, call.user)
        if earlier is not None:
            self._settle(call, earlier)
            return
        opened_at = time.time()
        request = self._open(
            call, decision, binding, decision.timeout, approvers="reviewers",
            reviewers=list(decision.reviewers) if decision.reviewers is not None else None, quorum=decision.quorum,
            group=decision.group,
        )
        logger.warning("review request %s for %s on %s is waiting for %d reviewer(s)", request.id, call.name, call.upstream, decision.quorum)
        announce = self.notifier is not None and self.notifier.enabled and request.created >= opened_at  # not a retry's
        review_url = self.review_url
        async with anyio.create_task_group() as tg:
            if announce:
                tg.start_soon(self._announce, request)  # beside the wait: a slow channel never holds the call
            if review_url and call.asker is not None and getattr(call.asker, "can_elicit_url", False):
                tg.start_soon(self._show_review_link, call, f"{review_url.rstrip('/')}#req-{request.id}", request.id)
            decided = await self._wait(call, request.id, decision.timeout, f"waiting for a security reviewer (request {request.id})", cancel_on_exit=True)
            tg.cancel_scope.cancel()
        if decided is None:
            call.deny(f"no reviewer decided on {call.name} within {decision.timeout:.0f} s (request {request.id}), so it was not run.", "approve")
            return
        self._take(call, decision, binding, decided)

    async def _announce(self, request: Any) -> None:
        """Tell the reviewers' channels (Slack, webhooks, Teams); a failure there decides nothing."""
        try:
            with anyio.move_on_after(NOTIFY_TIMEOUT_S):
                await self.notifier.request_opened(request)
        except Exception:
            logger.exception("notifying reviewers of request %s failed", request.id)

    async def _show_review_link(self, call: Call, url: str, request_id: str) -> None:
        """URL-mode elicitation: the client can offer the person the review page's link."""
        assert call.asker is not None
        params = {
            "mode": "url",
            "message": f"mcp-guard: {one_line(call.name)} on {one_line(call.upstream)} waits for a security reviewer"
            f" (request {request_id}).",
            "url": url,
            "elicitationId": f"mcp-guard-review-{request_id}",
        }
        try:
            await call.asker.ask(f"mcp-guard/review-link-{request_id}", "elicitation/create", params, REVIEW_LINK_TIMEOUT_S)
        except (TimeoutError, RPCError):
            pass  # showing the link is a courtesy; the decision comes from the queue

    def _out_of_band_possible(self, decision: Any) -> bool:
        return self.approvals is not None and any(c in decision.channels for c in ("page", "cli", "notify"))

    def _open(self, call: Call, decision: Any, binding: str, lifetime: float, **kind: Any) -> Any:
        """The pending request for this exact call (an identical retry finds the same one)."""
        assert self.approvals is not None
        risk = call.risk
        request = self.approvals.open(
            user=call.user, session=call.session_id, server=call.upstream, tool=call.name, binding=binding,
            rule=decision.rule, risk=risk.level if risk else "unknown", preview=hashed(call, decision).text,
            max_scope=decision.scope, lifetime=lifetime, **kind,
        )
        call.approval_request = request.id
        return request

    async def _out_of_band(self, call: Call, decision: Any, binding: str) -> None:
        request = self._open(call, decision, binding, max(decision.timeout, decision.wait))
        # The link carries the request's token: it goes to the person (notification, progress shown
        # by the client, `mcp-guard review list`), never into text the model reads.
        # Nothing the model reads says how to approve (no command, no page, no link): a model with a
        # shell or a web tool would follow it. It learns that the user was asked, and the request id.
        asked, link = [], None
        if "page" in decision.channels and self.page is not None:
            try:
                link = request.page_url or self.page.url(request)
            except Exception:
                logger.exception("the approval page could not start")
            if link:
                if request.page_url is None:
                    self.approvals.set_page(request.id, link)
                asked.append("page")
                if "notify" in decision.channels:
                    notify(f"mcp-guard: approve {one_line(call.name)} on {one_line(call.upstream)}?", link)
        if "cli" in decision.channels:
            asked.append("cli")
        logger.warning("approval request %s for %s on %s is waiting (%s)", request.id, call.name, call.upstream, ", ".join(asked))
        note = f"approve {link}" if link else f"the user was asked out of band (request {request.id})"
        decided = await self._wait(call, request.id, decision.wait, note)
        if decided is None:
            call.deny(
                f"{call.name} on {call.upstream} is waiting for the user's approval (request {request.id}); "
                "the user was asked outside this conversation. Once they have decided, call the tool again "
                "with exactly the same arguments.",
                "approve",
            )
            return
        self._take(call, decision, binding, decided)

    async def _wait(self, call: Call, request_id: str, wait: float, how: str, cancel_on_exit: bool = False) -> Any:
        assert self.approvals is not None
        deadline = time.monotonic() + wait
        label = f"mcp-guard: {one_line(call.name)} on {one_line(call.upstream)} is waiting for approval (request {request_id})"
        try:
            with _terminal_line(label):
                return await self._poll(call, request_id, deadline, how, cancel_on_exit)
        except anyio.get_cancelled_exc_class():
            # The client went away (or cancelled the call): nobody is left to run it.
            with anyio.CancelScope(shield=True):
                self.approvals.cancel(request_id, "the caller cancelled the call or went away")
            raise

    async def _poll(self, call: Call, request_id: str, deadline: float, how: str, cancel_on_exit: bool) -> Any:
        assert self.approvals is not None
        next_note = time.monotonic()
        while time.monotonic() < deadline:
            request = self.approvals.get(request_id)
            if request is None or request.state in ("approved", "denied", "expired", "cancelled"):
                return request if request is not None and request.state in ("approved", "denied") else None
            if time.monotonic() >= next_note and call.asker is not None:
                await call.asker.progress(f"mcp-guard: waiting for approval: {how}")
                next_note = time.monotonic() + WAITING_NOTE_S
            await self.approvals.wait_changed(request_id, max(0.0, min(deadline, next_note) - time.monotonic()))
        if cancel_on_exit:
            self.approvals.cancel(request_id, "no decision in time")
        return None

    def _take(self, call: Call, decision: Any, binding: str, decided: Any) -> None:
        """Use the decision this call waited for, unless an identical call in flight used it first."""
        assert self.approvals is not None
        taken = self.approvals.take_decision(binding, call.user)
        if taken is not None:
            self._settle(call, taken)
        elif decided.state == "approved" and self._granted(call, decision):
            pass  # the other call's approval was wider than once and left a grant that covers this one
        elif decided.state == "approved":
            call.deny(
                f"the approval of request {decided.id} was for one call, and an identical call used it; "
                f"{call.name} was not run a second time.", "approve",
            )
        else:
            self._settle(call, decided)

    def _settle(self, call: Call, request: Any) -> None:
        if request.state == "approved":
            approver = request.decided_by or call.user
            if request.approvers == "reviewers" and self.approvals is not None:
                approver = ",".join(v["reviewer"] for v in self.approvals.votes(request.id) if v["decision"] == "approve")
            self._approved(call, request.scope or "once", request.channel or "page", approver, request.approvers)
            call.approval_request = request.id
            call.preview_sha256 = request.preview_sha256
        else:
            reason = f": {request.reason}" if request.reason else ""
            who = "a reviewer" if request.approvers == "reviewers" else "the user"
            call.deny(f"{who} ({request.decided_by}, via {request.channel}) denied {call.name} on {call.upstream}{reason}. It was not run.", "approve")

    def _approved(self, call: Call, scope: str, channel: str, approver: str, kind: str = "user") -> None:
        call.approved = scope
        call.approval_channel = channel
        call.approver = approver
        if self.grants is not None and scope != "once":
            grant = self.grants.add(
                user=call.user, session=call.session_id, server=call.upstream, tool=call.name,
                scope=scope, approver=approver, channel=channel, kind=kind,
                rule=call.decision.rule if call.decision is not None else "", policy_version=call.policy_version,
            )
            if grant is not None:
                call.grant = grant.id


def notify(title: str, body: str) -> None:
    """A desktop notification where the OS offers one; skipped quietly elsewhere."""
    import shutil
    import subprocess
    import sys

    if sys.platform == "darwin" and shutil.which("osascript"):
        script = f'display notification {json.dumps(body)} with title {json.dumps(title)}'
        argv = ["osascript", "-e", script]
    elif shutil.which("notify-send"):
        argv = ["notify-send", "--app-name=mcp-guard", title, body]
    else:
        return
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        pass


def _read(answer: Any, scopes: list[str]) -> str | None:
    """The approved scope, or None when the answer is anything but an explicit yes."""
    if not isinstance(answer, dict) or answer.get("action") != "accept":
        return None
    content = answer.get("content")
    if not isinstance(content, dict) or content.get("approve") is not True:
        return None
    scope = content.get("scope", "once")
    return scope if scope in scopes else "once"


def schema(scopes: list[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "approve": {"type": "boolean", "title": "Approve this call", "default": False},
    }
    if len(scopes) > 1:
        properties["scope"] = {
            "type": "string",
            "title": "Approve for",
            "oneOf": [{"const": s, "title": SCOPE_TITLES.get(s, f"This tool for {s[4:]}")} for s in scopes],
            "default": "once",
        }
    return {"type": "object", "properties": properties, "required": ["approve"]}


def hashed(call: Call, decision: Any) -> Preview:
    """The call's canonical preview, built once and kept on the call (every surface shows it)."""
    if not call.preview:
        risk = call.risk
        call.preview = build_preview(
            server=call.upstream, tool=call.name, risk=risk.level if risk else "unknown", rule=decision.rule,
            reason=decision.reason, arguments=call.shown_arguments, placeholders=call.placeholders,
            why=asked_because(call, decision),
        ).text
    return Preview(call.preview)


def preview(call: Call, decision: Any) -> str:
    return hashed(call, decision).text


_line_shown = False


@contextlib.contextmanager
def _terminal_line(label: str) -> Iterator[None]:
    """A live line on stderr while a call waits, when stderr is a person's terminal (one at a time:
    two waits at once would redraw over each other). Nothing at all in a client's log file."""
    global _line_shown
    if _line_shown or not sys.stderr.isatty():
        yield
        return
    from ..progress import Progress

    _line_shown = True
    try:
        with Progress(sys.stderr).step(label):
            yield
    finally:
        _line_shown = False
