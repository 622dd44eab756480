"""Branching, boolean logic and comparison: `if`/`?:`, `and`, `or`, `!`, `!!`, `==` ... `>=`, `in`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flagd_sdk.evaluation.coercion import (
    less_or_equal,
    less_than,
    loose_equals,
    strict_equals,
    to_string,
    truthy,
)
from flagd_sdk.evaluation.compiler import Compiler, Constant, ResultFn
from flagd_sdk.evaluation.operators._args import as_list, check_arity
from flagd_sdk.evaluation.problems import child
from flagd_sdk.evaluation.types import Compiled


def build_if(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)
    if not fns:
        return Constant(None)
    if len(fns) == 3:
        cond, then, other = fns
        if isinstance(then, Constant) and isinstance(other, Constant):
            yes, no = then.value, other.value
            return lambda data: yes if truthy(cond(data)) else no
        return lambda data: then(data) if truthy(cond(data)) else other(data)
    pairs = [(fns[i], fns[i + 1]) for i in range(0, len(fns) - 1, 2)]
    fallback = fns[-1] if len(fns) % 2 else Constant(None)

    def chain(data: Any) -> Any:
        for cond, then in pairs:
            if truthy(cond(data)):
                return then(data)
        return fallback(data)

    return chain


def build_if_result(compiler: Compiler, args: Any, path: str, variants: frozenset[str] | None) -> ResultFn:
    raw = as_list(args)
    if not raw:
        return lambda data: (None, False)
    conds = [compiler.compile(raw[i], child(path, i)) for i in range(0, len(raw) - 1, 2)]
    thens = [compiler.compile_result(raw[i], child(path, i), variants) for i in range(1, len(raw), 2)]
    if len(raw) % 2:
        fallback = compiler.compile_result(raw[-1], child(path, len(raw) - 1), variants)
    else:
        fallback = _no_result
    if len(conds) == 1:
        cond, then = conds[0], thens[0]
        return lambda data: then(data) if truthy(cond(data)) else fallback(data)
    pairs = list(zip(conds, thens, strict=True))

    def chain(data: Any) -> tuple[Any, bool]:
        for cond, then in pairs:
            if truthy(cond(data)):
                return then(data)
        return fallback(data)

    return chain


def _no_result(data: Any) -> tuple[Any, bool]:
    return None, False


def build_and(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)

    def all_of(data: Any) -> Any:
        value = None
        for fn in fns:
            value = fn(data)
            if not truthy(value):
                return value
        return value

    return all_of


def build_or(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)

    def any_of(data: Any) -> Any:
        value = None
        for fn in fns:
            value = fn(data)
            if truthy(value):
                return value
        return value

    return any_of


def build_not(compiler: Compiler, args: Any, path: str) -> Compiled:
    (fn, *_) = compiler.compile_args(args, path) or [Constant(None)]
    return lambda data: not truthy(fn(data))


def build_truthy(compiler: Compiler, args: Any, path: str) -> Compiled:
    (fn, *_) = compiler.compile_args(args, path) or [Constant(None)]
    return lambda data: truthy(fn(data))


def _binary(test: Callable[[Any, Any], bool], name: str) -> Callable[[Compiler, Any, str], Compiled]:
    def build(compiler: Compiler, args: Any, path: str) -> Compiled:
        raw = as_list(args)
        check_arity(compiler, name, raw, path, 2, 2)
        fns = compiler.compile_args(raw, path) + [Constant(None)] * 2
        left, right = fns[0], fns[1]
        if isinstance(right, Constant):
            constant = right.value
            if test is _fast_loose_equals and type(constant) is str:
                return _equals_text(left, constant)
            return lambda data: test(left(data), constant)
        return lambda data: test(left(data), right(data))

    return build


def _equals_text(left: Compiled, text: str) -> Compiled:
    """`{"==": [<expr>, "literal"]}`, the commonest targeting test, without the coercion call."""

    def equals_text(data: Any) -> bool:
        value = left(data)
        return value == text if type(value) is str else loose_equals(value, text)

    return equals_text


def _not_loose(a: Any, b: Any) -> bool:
    return not loose_equals(a, b)


def _not_strict(a: Any, b: Any) -> bool:
    return not strict_equals(a, b)


def _fast_loose_equals(a: Any, b: Any) -> bool:
    # Same-typed strings are the common case in targeting; skip the coercion ladder for them.
    if type(a) is str and type(b) is str:
        return a == b
    return loose_equals(a, b)


build_loose_equals = _binary(_fast_loose_equals, "==")
build_loose_not_equals = _binary(_not_loose, "!=")
build_strict_equals = _binary(strict_equals, "===")
build_strict_not_equals = _binary(_not_strict, "!==")
build_greater = _binary(lambda a, b: less_than(b, a), ">")
build_greater_or_equal = _binary(lambda a, b: less_or_equal(b, a), ">=")


def _between(test: Callable[[Any, Any], bool], name: str) -> Callable[[Compiler, Any, str], Compiled]:
    """`<` and `<=` also take three arguments: a < b < c (JsonLogic's "between")."""

    def build(compiler: Compiler, args: Any, path: str) -> Compiled:
        raw = as_list(args)
        check_arity(compiler, name, raw, path, 2, 3)
        fns = compiler.compile_args(raw, path) + [Constant(None)] * 2
        if len(raw) == 3:
            low, mid, high = fns[0], fns[1], fns[2]

            def between(data: Any) -> bool:
                middle = mid(data)
                return test(low(data), middle) and test(middle, high(data))

            return between
        left, right = fns[0], fns[1]
        return lambda data: test(left(data), right(data))

    return build


build_less = _between(less_than, "<")
build_less_or_equal = _between(less_or_equal, "<=")


def build_in(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    check_arity(compiler, "in", raw, path, 2, 2)
    fns = compiler.compile_args(raw, path) + [Constant(None)] * 2
    needle_fn, haystack_fn = fns[0], fns[1]
    if isinstance(haystack_fn, Constant) and isinstance(haystack_fn.value, list):
        return _in_literal_list(needle_fn, haystack_fn.value)

    def contains(data: Any) -> bool:
        needle, haystack = needle_fn(data), haystack_fn(data)
        if isinstance(haystack, str):
            return to_string(needle) in haystack
        if isinstance(haystack, list):
            return any(strict_equals(needle, item) for item in haystack)
        return False

    return contains


def _in_literal_list(needle_fn: Compiled, items: list[Any]) -> Compiled:
    """`{"in": [<expr>, ["DE", "FR", ...]]}`: strings found by hashing; anything else as JsonLogic says."""
    texts = frozenset(item for item in items if type(item) is str)

    def contains_literal(data: Any) -> bool:
        needle = needle_fn(data)
        if type(needle) is str:
            return needle in texts
        return any(strict_equals(needle, item) for item in items)

    return contains_literal
