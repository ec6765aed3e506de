"""Why a call is put to a person, in words: the approval question leads with this.

A rule's own text ("This tool can change or delete things") says what the rule is for, not
what made this call match it: a tool whose description tries to instruct the model reaches the
same high-risk rule as one that deletes files, and the person deciding should know which.
"""

from __future__ import annotations

from typing import Any


def asked_because(call: Any, decision: Any) -> str:
    risk = call.risk
    rule = f"rule '{decision.rule}' asks a person at this risk"
    if risk is None:
        return f"its risk could not be resolved; {rule}"
    if risk.source == "integrity":
        return (f"its description carries instructions to the model (a possible tool poisoning), "
                f"which makes it {risk.level} risk; {rule}")
    if risk.source == "author":
        said = f": {risk.reason}" if risk.reason else ""
        return f"its server's author tags it {risk.level} risk{said}; {rule}"
    if risk.source == "annotations":
        return f"its MCP annotations make it {risk.level} risk (not read-only, or reaching outside); {rule}"
    if risk.source == "policy":
        return f"the policy sets its risk to {risk.level}; {rule}"
    return f"it carries no risk tag or annotations, so it gets the default risk, {risk.level}; {rule}"
