"""The concrete pipeline hooks, one small module each, and the default chain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..audit import Audit
    from .metrics import Metrics
    from ..grants import Grants
    from ..pipeline import Hook
    from .policy import PolicySource


def default_hooks(
    policy: PolicySource | None, grants: Grants | None, extra: Sequence[Hook] = (), audit: Audit | None = None,
    metrics: Metrics | None = None,
) -> list[Hook]:
    """The chain in order: operator hooks first (they may add facts), then masking (labels in,
    placeholders back), policy, approval. Masking of results runs in the same order on the way out."""
    hooks: list[Hook] = list(extra)
    if metrics is not None:
        from .metrics import MetricsHook

        hooks.append(MetricsHook(metrics))  # first: it times the approval steps after it
    if policy is not None:
        from .approve import ApprovalHook
        from .integrity import IntegrityHook
        from .mask import MaskHook
        from .policy import PolicyHook

        pins = None
        if grants is not None:
            from ..integrity import Pins

            pins = Pins(grants.store)
        hooks.append(IntegrityHook(policy, pins, audit))

        masking = policy.current.masking
        if masking.enabled:
            hooks.append(MaskHook(masking))
        hooks.append(PolicyHook(policy))
        approvals = page = None
        if grants is not None:  # the same store holds the out-of-band approval requests
            from ..approvals import Approvals
            from ..web.page import ApprovalPage

            approvals = Approvals(grants.store, audit)  # decisions made on the page are chained
            page = ApprovalPage(approvals)
        from ..notify import Notifier

        hooks.append(ApprovalHook(grants, approvals, page, Notifier(audit=audit)))  # failed posts are audited
    if audit is not None:
        from .audit import AuditHook

        hooks.append(AuditHook(audit))  # last: it records what the others decided
    return hooks
