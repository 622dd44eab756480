"""Array operations: `map`, `filter`, `reduce`, `all`, `none`, `some`, `merge`.

The rule given to map/filter/all/none/some sees each element as its data; reduce's
rule sees `{"current": element, "accumulator": value so far}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flagd_sdk.evaluation.coercion import truthy
from flagd_sdk.evaluation.compiler import Compiler, Constant
from flagd_sdk.evaluation.limits import check_built, check_items
from flagd_sdk.evaluation.operators._args import as_list, check_arity
from flagd_sdk.evaluation.types import Compiled


def _array_and_rule(compiler: Compiler, op: str, args: Any, path: str) -> tuple[Compiled, Compiled]:
    raw = as_list(args)
    check_arity(compiler, op, raw, path, 2, 2)
    fns = compiler.compile_args([*raw, None, None][:2], path)
    return fns[0], fns[1]


def build_map(compiler: Compiler, args: Any, path: str) -> Compiled:
    array_fn, rule = _array_and_rule(compiler, "map", args, path)

    def map_each(data: Any) -> list[Any]:
        items = array_fn(data)
        return [rule(item) for item in check_items(items, "map")] if isinstance(items, list) else []

    return map_each


def build_filter(compiler: Compiler, args: Any, path: str) -> Compiled:
    array_fn, rule = _array_and_rule(compiler, "filter", args, path)

    def keep(data: Any) -> list[Any]:
        items = array_fn(data)
        if not isinstance(items, list):
            return []
        return [item for item in check_items(items, "filter") if truthy(rule(item))]

    return keep


def build_reduce(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    check_arity(compiler, "reduce", raw, path, 2, 3)
    array_fn, rule, initial_fn = compiler.compile_args([*raw, None, None, None][:3], path)

    def fold(data: Any) -> Any:
        accumulator = initial_fn(data)
        items = array_fn(data)
        if not isinstance(items, list):
            return accumulator
        for item in check_items(items, "reduce"):
            accumulator = rule({"current": item, "accumulator": accumulator})
        return accumulator

    return fold


def _quantifier(op: str, test: Callable[[list[bool]], bool], empty: bool) -> Callable[..., Compiled]:
    def build(compiler: Compiler, args: Any, path: str) -> Compiled:
        array_fn, rule = _array_and_rule(compiler, op, args, path)

        def quantify(data: Any) -> bool:
            items = array_fn(data)
            if not isinstance(items, list) or not items:
                return empty
            return test([truthy(rule(item)) for item in check_items(items, op)])

        return quantify

    return build


build_all = _quantifier("all", all, empty=False)
build_some = _quantifier("some", any, empty=False)
build_none = _quantifier("none", lambda results: not any(results), empty=True)


def build_merge(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)

    def merge(data: Any) -> list[Any]:
        merged: list[Any] = []
        for fn in fns:
            value = fn(data)
            if isinstance(value, list):
                check_built(len(merged) + len(value), "merge")
                merged.extend(value)
            else:
                check_built(len(merged) + 1, "merge")
                merged.append(value)
        return merged

    if all(isinstance(fn, Constant) for fn in fns):
        return Constant(merge(None))
    return merge
