"""flagd's `fractional` operator, bucketing generation v2.

    {"fractional": [<bucket key>?, [<variant>, <weight>?], ...]}

The bucket key defaults to flagKey + targetingKey. Its MurmurHash3 x86_32 (seed 0),
read as an unsigned 32-bit h, picks bucket `(h * total_weight) >> 32`, and the
cumulative integer weights say whose it is (flagd's "fractional v2", which unlike v1
gives every weight exactly its share of the 2^32 hash space). A missing weight is 1;
negative weights count as 0. Variants and weights may be rules themselves.

The result is null when there is no usable key (no targetingKey, or a key rule that
gives anything but a non-empty string), when every weight is 0, or when a computed
weight is not an integer.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

from flagd_sdk.evaluation.compiler import Compiler, Constant, ConstantResult, ResultFn
from flagd_sdk.evaluation.murmur import hash_text
from flagd_sdk.evaluation.operators._args import as_list
from flagd_sdk.evaluation.problems import child
from flagd_sdk.evaluation.types import Compiled

MAX_TOTAL_WEIGHT = 2**31 - 1
"""flagd caps the weight sum at the largest signed 32-bit integer."""


def bucket_index(hash_value: int, cumulative: Sequence[int]) -> int | None:
    """Index of the bucket that an unsigned 32-bit hash falls in, or None if all weights are 0."""
    total = cumulative[-1] if cumulative else 0
    if total <= 0:
        return None
    return bisect_right(cumulative, (hash_value * total) >> 32)


def build_fractional(compiler: Compiler, args: Any, path: str) -> Compiled:
    key_fn, names, weights = _parse(compiler, args, path, lambda node, at: compiler.compile(node, at))
    pick = _picker(compiler.flag_key or "", key_fn, weights)
    constant_names = [n.value for n in names if isinstance(n, Constant)]
    if len(constant_names) == len(names):

        def choose_constant(data: Any) -> Any:
            index = pick(data)
            return None if index is None else constant_names[index]

        return choose_constant

    def choose(data: Any) -> Any:
        index = pick(data)
        return None if index is None else names[index](data)

    return choose


def build_fractional_result(
    compiler: Compiler, args: Any, path: str, variants: frozenset[str] | None
) -> ResultFn:
    key_fn, names, weights = _parse(
        compiler, args, path, lambda node, at: compiler.compile_result(node, at, variants)
    )
    pick = _picker(compiler.flag_key or "", key_fn, weights)
    constant_results = [(n.value, True) for n in names if isinstance(n, ConstantResult)]
    if len(constant_results) == len(names):

        def choose_constant_split(data: Any) -> tuple[Any, bool]:
            index = pick(data)
            return (None, False) if index is None else constant_results[index]

        return choose_constant_split

    def choose_split(data: Any) -> tuple[Any, bool]:
        index = pick(data)
        if index is None:
            return None, False
        return names[index](data)[0], True

    return choose_split


def _parse(
    compiler: Compiler, args: Any, path: str, compile_name: Callable[[Any, str], Any]
) -> tuple[Compiled | None, list[Any], list[Compiled]]:
    raw = as_list(args)
    key_fn: Compiled | None = None
    first_bucket = 0
    if raw and not isinstance(raw[0], list):
        key_fn = compiler.compile(raw[0], child(path, 0))
        first_bucket = 1
    buckets = raw[first_bucket:]
    if not buckets:
        compiler.report(path, "fractional needs at least one bucket: [variant, weight]")
    names: list[Any] = []
    weights: list[Compiled] = []
    for offset, bucket in enumerate(buckets):
        at = child(path, first_bucket + offset)
        if not isinstance(bucket, list) or not 1 <= len(bucket) <= 2:
            compiler.report(at, "a fractional bucket must be [variant] or [variant, weight]")
            names.append(compile_name(None, at))
            weights.append(Constant(0))
            continue
        names.append(compile_name(bucket[0], child(at, 0)))
        weights.append(_weight(compiler, bucket, at))
    _check_total(compiler, weights, path)
    return key_fn, names, weights


def _weight(compiler: Compiler, bucket: list[Any], at: str) -> Compiled:
    if len(bucket) == 1:
        return Constant(1)
    weight = bucket[1]
    if isinstance(weight, dict):
        return compiler.compile(weight, child(at, 1))
    if isinstance(weight, bool) or not isinstance(weight, int):
        compiler.report(child(at, 1), f"weight must be a whole number, got {json.dumps(weight)}")
        return Constant(weight)
    if weight < 0:
        compiler.report(child(at, 1), f"weight must not be negative, got {weight}")
    return Constant(weight)


def _check_total(compiler: Compiler, weights: list[Compiled], path: str) -> None:
    constants = [w.value for w in weights if isinstance(w, Constant)]
    if len(constants) != len(weights) or not all(_is_int(v) for v in constants):
        return
    total = sum(max(0, v) for v in constants)
    if weights and total == 0:
        compiler.report(path, "every fractional weight is 0, so no variant can be chosen")
    elif total > MAX_TOTAL_WEIGHT:
        compiler.report(path, f"fractional weights add up to {total}, more than {MAX_TOTAL_WEIGHT}")


def _is_int(value: Any) -> bool:
    return type(value) is int


def _picker(flag_key: str, key_fn: Compiled | None, weights: list[Compiled]) -> Callable[[Any], int | None]:
    """A function from data to the chosen bucket's index (None when nothing can be chosen)."""

    def bucket_key(data: Any) -> str | None:
        if key_fn is None:
            targeting_key = data.get("targetingKey") if isinstance(data, dict) else None
            return flag_key + targeting_key if type(targeting_key) is str and targeting_key else None
        key = key_fn(data)
        return key if type(key) is str and key else None

    constants = [w.value for w in weights if isinstance(w, Constant)]
    if len(constants) == len(weights):
        cumulative = _cumulative(constants)
        if not cumulative or cumulative[-1] <= 0:
            return lambda data: None
        total = cumulative[-1]
        if key_fn is None:
            # The common shape, {"fractional": [[variant, weight], ...]}: bucket_index inlined for speed.

            def pick_by_targeting_key(data: Any) -> int | None:
                targeting_key = data.get("targetingKey") if type(data) is dict else None
                if type(targeting_key) is not str or not targeting_key:
                    return None
                return bisect_right(cumulative, (hash_text(flag_key + targeting_key, 0, False) * total) >> 32)

            return pick_by_targeting_key

        def pick_static(data: Any) -> int | None:
            key = bucket_key(data)
            return None if key is None else bucket_index(hash_text(key, 0, False), cumulative)

        return pick_static

    def pick_dynamic(data: Any) -> int | None:
        # Weights computed per evaluation: one pass to total them, one to walk them, no lists built
        # beyond the values themselves (this path runs on every evaluation of a ramped rollout).
        key = bucket_key(data)
        if key is None:
            return None
        values = [w(data) for w in weights]
        total = 0
        for value in values:
            if type(value) is not int:
                return None
            if value > 0:
                total += value
        if total <= 0 or total > MAX_TOTAL_WEIGHT:
            return None
        bucket = (hash_text(key, 0, False) * total) >> 32
        end = 0
        for index, value in enumerate(values):
            if value > 0:
                end += value
                if bucket < end:
                    return index
        return None

    return pick_dynamic


def _cumulative(weights: list[Any]) -> list[int] | None:
    if not all(_is_int(w) for w in weights):
        return None
    cumulative = list(accumulate(max(0, w) for w in weights))
    if cumulative and cumulative[-1] > MAX_TOTAL_WEIGHT:
        return None
    return cumulative
