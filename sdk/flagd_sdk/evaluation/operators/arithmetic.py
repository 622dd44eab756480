"""Arithmetic: `+ - * / %`, `max`, `min`, with JavaScript's number rules.

As in json-logic-js, `+` and `*` read their operands with parseFloat, the others with
Number(); division by zero gives Infinity or NaN rather than an exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from flagd_sdk.evaluation.coercion import NAN, parse_float, to_double, to_number
from flagd_sdk.evaluation.compiler import Compiler
from flagd_sdk.evaluation.operators._args import as_list, check_arity
from flagd_sdk.evaluation.types import Compiled

Number = int | float


def build_add(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)

    def add(data: Any) -> Number:
        total: Number = 0
        for fn in fns:
            total += parse_float(fn(data))
        return total

    return add


_SAFE_INTEGER = 2**53


def build_multiply(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)
    check_arity(compiler, "*", as_list(args), path, 1, None)

    def multiply(data: Any) -> Number:
        product: Number = 1
        for fn in fns:
            product *= parse_float(fn(data))
            if type(product) is int and not -_SAFE_INTEGER < product < _SAFE_INTEGER:
                # JavaScript numbers are doubles: a product past 2**53 is one, and never a
                # Python integer that grows (and slows) without bound inside a reduce.
                product = to_double(product)
        return product

    return multiply


def build_subtract(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    check_arity(compiler, "-", raw, path, 1, 2)
    fns = compiler.compile_args(raw, path)
    if len(fns) == 1:
        only = fns[0]
        return lambda data: -to_number(only(data))
    left, right = fns[0], fns[1]
    return lambda data: to_number(left(data)) - to_number(right(data))


def divide(a: Number, b: Number) -> Number:
    if b == 0:
        if a == 0 or a != a:
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def remainder(a: Number, b: Number) -> Number:
    """JavaScript's %: the sign follows the dividend."""
    if b == 0 or math.isinf(a) or a != a or b != b:
        return NAN
    if type(a) is int and type(b) is int:
        magnitude = abs(a) % abs(b)
        return -magnitude if a < 0 else magnitude
    return math.fmod(a, b)


def build_divide(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    check_arity(compiler, "/", raw, path, 2, 2)
    left, right = _two(compiler, raw, path)
    return lambda data: divide(to_number(left(data)), to_number(right(data)))


def build_remainder(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    check_arity(compiler, "%", raw, path, 2, 2)
    left, right = _two(compiler, raw, path)
    return lambda data: remainder(to_number(left(data)), to_number(right(data)))


def _two(compiler: Compiler, raw: list[Any], path: str) -> tuple[Compiled, Compiled]:
    fns = compiler.compile_args([*raw, None, None][:2], path)
    return fns[0], fns[1]


def _extremum(pick: Callable[[list[Number]], Number]) -> Callable[[Compiler, Any, str], Compiled]:
    """`max` and `min`: Math.max/Math.min over the arguments as numbers; NaN if any is not one."""

    def build(compiler: Compiler, args: Any, path: str) -> Compiled:
        fns = compiler.compile_args(args, path)

        def extremum(data: Any) -> Number | None:
            values = [to_number(fn(data)) for fn in fns]
            if not values:
                return None
            return NAN if any(v != v for v in values) else pick(values)

        return extremum

    return build


build_max = _extremum(max)
build_min = _extremum(min)
