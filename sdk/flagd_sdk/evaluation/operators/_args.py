"""Helpers the operator modules share for argument lists and arity."""

from __future__ import annotations

from typing import Any

from flagd_sdk.evaluation.compiler import Compiler


def as_list(args: Any) -> list[Any]:
    """JsonLogic lets a lone argument stand for a one-element list."""
    return args if isinstance(args, list) else [args]


def check_arity(compiler: Compiler, op: str, args: list[Any], path: str, low: int, high: int | None) -> bool:
    """Report a wrong argument count; True when the count is acceptable."""
    count = len(args)
    if count >= low and (high is None or count <= high):
        return True
    if high is None:
        expected = f"at least {low}"
    elif low == high:
        expected = str(low)
    else:
        expected = f"{low} to {high}"
    compiler.report(path, f"{op} takes {expected} argument{'s' if expected != '1' else ''}, got {count}")
    return False
