"""Approvals, moving here piece by piece (ARCHITECTURE.md): for now the one canonical preview."""
