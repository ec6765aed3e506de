"""Prometheus metrics and OpenTelemetry spans for each call (served at /metrics by `serve`).

Metrics: calls and decisions by action, outcome, upstream errors, approval wait time, masking
counts by label, latency, requests refused by caller authentication (by reason). Approvals
pending is read from the store at scrape time. Spans: one per call (``mcp-guard tools/call``),
with the decision, risk and outcome as attributes; they go wherever the OpenTelemetry SDK sends
them (the standard OTEL_* variables), and nowhere when no SDK is configured. Labels and
attributes carry names, never argument values.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..auth.caller import REASONS
from ..pipeline import Call, Hook

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_WAIT_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls = Counter("mcp_guard_calls", "Calls through the pipeline", ["method", "server", "outcome"], registry=r)
        self.decisions = Counter("mcp_guard_decisions", "Policy decisions on tool calls", ["action", "rule"], registry=r)
        self.errors = Counter("mcp_guard_upstream_errors", "Calls that failed at the upstream", ["server"], registry=r)
        self.masked = Counter("mcp_guard_masked_values", "Values masked in results, by label", ["label"], registry=r)
        self.latency = Histogram("mcp_guard_call_seconds", "Time from request to answer", ["method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.approval_wait = Histogram("mcp_guard_approval_wait_seconds", "Time calls waited for a person", ["channel"], buckets=_WAIT_BUCKETS, registry=r)
        self.pending = Gauge("mcp_guard_approvals_pending", "Approval requests waiting for a decision", registry=r)
        self.audit_backlog = Gauge("mcp_guard_audit_backlog", "Audit records spooled, not yet chained in the store", registry=r)
        self.audit_failing = Gauge("mcp_guard_audit_failing", "1 while the store refuses audit records (calls are refused)", registry=r)
        self.auth_refused = Counter(
            "mcp_guard_auth_refused", "Requests refused by caller authentication, by reason", ["reason"], registry=r)
        for reason in REASONS:  # every reason is there from the start, at 0: a rate needs a baseline
            self.auth_refused.labels(reason)
        self.spool: Any = None  # the audit spool of this process, read at scrape time


class MetricsHook(Hook):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._tracer: Any = None
        try:
            from opentelemetry import trace

            self._tracer = trace.get_tracer("mcp_guard")
        except ImportError:
            pass

    async def request(self, call: Call) -> None:
        call.approval_started = time.monotonic()

    async def finish(self, call: Call) -> None:
        m = self.metrics
        outcome = call.outcome
        m.calls.labels(call.method, call.upstream, outcome).inc()
        decision = call.decision
        if decision is not None:
            m.decisions.labels(decision.action, decision.rule).inc()
        if call.error:
            m.errors.labels(call.upstream).inc()
        for label, count in (call.masked or {}).items():
            m.masked.labels(label).inc(count)
        started = call.started
        if started is not None:
            m.latency.labels(call.method).observe(time.monotonic() - started)
        if call.approved and call.approval_started is not None:
            m.approval_wait.labels(str((call.approval_channel or "elicitation"))).observe(time.monotonic() - call.approval_started)
        self._span(call, outcome, started)

    def _span(self, call: Call, outcome: str, started: float | None) -> None:
        if self._tracer is None:
            return
        start_ns = time.time_ns() - int((time.monotonic() - started) * 1e9) if started is not None else None
        span = self._tracer.start_span(f"mcp-guard {call.method}", start_time=start_ns)
        span.set_attribute("mcp.server", call.upstream)
        span.set_attribute("mcp.name", call.name)
        span.set_attribute("mcp_guard.outcome", outcome)
        decision, risk = call.decision, call.risk
        if decision is not None:
            span.set_attribute("mcp_guard.decision", decision.action)
            span.set_attribute("mcp_guard.rule", decision.rule)
        if risk is not None:
            span.set_attribute("mcp_guard.risk", risk.level)
        span.end()
