"""Policies: the YAML schema (model), loading with precise errors (load), and decide() (engine)."""

from .engine import Decision, decide
from .load import load_policy, parse_policy
from .model import Policy

__all__ = ["Decision", "Policy", "decide", "load_policy", "parse_policy"]
