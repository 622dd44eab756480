"""Guarded rollouts: a flag's variant released through stages, watched on its guardrails (issue 24)."""
