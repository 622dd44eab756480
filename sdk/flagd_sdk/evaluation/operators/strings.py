"""String operations: JsonLogic's `cat` and `substr`, flagd's `starts_with` and `ends_with`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flagd_sdk.evaluation.coercion import to_number, to_string
from flagd_sdk.evaluation.compiler import Compiler, Constant
from flagd_sdk.evaluation.limits import check_built
from flagd_sdk.evaluation.operators._args import as_list, check_arity
from flagd_sdk.evaluation.types import Compiled


def _bounded(text: str) -> str:
    check_built(len(text), "cat")
    return text


def build_cat(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)
    if len(fns) == 2:
        first, second = fns
        if isinstance(first, Constant) and isinstance(first.value, str):
            prefix = first.value
            return lambda data: _bounded(prefix + to_string(second(data)))
        return lambda data: _bounded(to_string(first(data)) + to_string(second(data)))
    return lambda data: _bounded("".join(to_string(fn(data)) for fn in fns))


def _integer(value: Any) -> int:
    number = to_number(value)
    if number != number:
        return 0
    if math.isinf(number):
        return 2**31 if number > 0 else -(2**31)
    return int(number)


def substr(source: Any, start: Any, length: Any = None) -> str:
    """JavaScript's String.prototype.substr, with json-logic-js's negative-length rule."""
    text = to_string(source)
    begin = _integer(start)
    if begin < 0:
        begin = max(len(text) + begin, 0)
    tail = text[begin:]
    if length is None:
        return tail
    count = _integer(length)
    return tail[: len(tail) + count] if count < 0 else tail[:count]


def build_substr(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    check_arity(compiler, "substr", raw, path, 2, 3)
    fns = compiler.compile_args(raw, path)
    source: Compiled = fns[0] if fns else Constant("")
    start: Compiled = fns[1] if len(fns) > 1 else Constant(0)
    if len(fns) >= 3:
        length = fns[2]
        return lambda data: substr(source(data), start(data), length(data))
    return lambda data: substr(source(data), start(data))


def _string_test(op: str, test: Callable[[str, str], bool]) -> Callable[[Compiler, Any, str], Compiled]:
    """flagd's string operators: null (not false) unless both arguments are strings."""

    def build(compiler: Compiler, args: Any, path: str) -> Compiled:
        raw = as_list(args)
        if not check_arity(compiler, op, raw, path, 2, 2):
            return Constant(None)
        subject_fn, affix_fn = compiler.compile_args(raw, path)

        def string_test(data: Any) -> bool | None:
            subject, affix = subject_fn(data), affix_fn(data)
            if type(subject) is str and type(affix) is str:
                return test(subject, affix)
            return None

        return string_test

    return build


build_starts_with = _string_test("starts_with", str.startswith)
build_ends_with = _string_test("ends_with", str.endswith)
