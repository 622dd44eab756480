"""flagd's `sem_ver` operator: {"sem_ver": [version, operator, version]}.

Gives null, not false, when an argument is not a version or the operator is unknown,
so the flag falls back to its default variant instead of naming a variant "false".
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from flagd_sdk.evaluation.compiler import Compiler, Constant
from flagd_sdk.evaluation.operators._args import as_list, check_arity
from flagd_sdk.evaluation.problems import child
from flagd_sdk.evaluation.semver import COMPARATORS, MAX_VERSION_LENGTH, Version, parse_version
from flagd_sdk.evaluation.types import Compiled

_OPERATORS = " ".join(COMPARATORS)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Version | None:
    # Versions in contexts repeat (a fleet runs a handful of app versions): parse each once.
    # Only strings of at most MAX_VERSION_LENGTH characters get here, so the cache holds at
    # most 4096 x 256 characters (about 2 MB with its entries), whatever callers send.
    return parse_version(text)


def _parse(value: Any) -> Version | None:
    if type(value) is str:
        return _parse_cached(value) if len(value) <= MAX_VERSION_LENGTH else None
    return parse_version(value)


def build_sem_ver(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    if not check_arity(compiler, "sem_ver", raw, path, 3, 3):
        return Constant(None)
    left_fn, op_fn, right_fn = compiler.compile_args(raw, path)
    for index, fn in ((0, left_fn), (2, right_fn)):
        if isinstance(fn, Constant) and _parse(fn.value) is None:
            compiler.report(child(path, index), f"{json.dumps(fn.value)} is not a semantic version")
    if isinstance(op_fn, Constant):
        comparator = COMPARATORS.get(op_fn.value) if isinstance(op_fn.value, str) else None
        if comparator is None:
            compiler.report(
                child(path, 1), f"unknown sem_ver operator {json.dumps(op_fn.value)}; use one of {_OPERATORS}"
            )
            return Constant(None)
        if isinstance(right_fn, Constant):
            target = _parse(right_fn.value)

            def compare_to_target(data: Any) -> bool | None:
                version = _parse(left_fn(data))
                if version is None or target is None:
                    return None
                return comparator(version, target)

            return compare_to_target

    def compare(data: Any) -> bool | None:
        op = op_fn(data)
        fn = COMPARATORS.get(op) if isinstance(op, str) else None
        left, right = _parse(left_fn(data)), _parse(right_fn(data))
        if fn is None or left is None or right is None:
            return None
        return fn(left, right)

    return compare
