"""Reading the evaluation data: `var`, `missing`, `missing_some`.

`$flagd.flagKey` and `$flagd.timestamp` are injected by the evaluator, not read from
the caller's context; the flag key is known when the rule is compiled, so it is folded
into a constant.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from flagd_sdk.evaluation.compiler import Compiler, Constant
from flagd_sdk.evaluation.operators._args import as_list, check_arity
from flagd_sdk.evaluation.problems import child
from flagd_sdk.evaluation.types import Compiled

_MISSING = object()


def lookup(data: Any, parts: tuple[str, ...]) -> Any:
    """The value at a dotted path, or _MISSING; list elements are addressed by index."""
    for part in parts:
        if isinstance(data, Mapping):
            data = data.get(part, _MISSING)
        elif isinstance(data, list) and _is_index(part) and int(part) < len(data):
            data = data[int(part)]
        else:
            return _MISSING
        if data is _MISSING:
            return _MISSING
    return data


def _is_index(part: str) -> bool:
    # ASCII digits only ("²".isdigit() is true), and short: int() is quadratic in the length.
    return len(part) <= 18 and part.isascii() and part.isdigit()


def split_path(key: Any) -> tuple[str, ...] | None:
    """The parts of a var path; None for the whole data (an empty path or null)."""
    if key is None or key == "" or key == []:
        return None
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    return tuple(str(key).split("."))


def build_var(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    if not raw:
        return lambda data: data
    check_arity(compiler, "var", raw, path, 1, 2)
    key_node = raw[0]
    default = compiler.compile(raw[1], child(path, 1)) if len(raw) > 1 else Constant(None)
    if isinstance(key_node, dict | list):
        key_fn = compiler.compile(key_node, child(path, 0))
        return _dynamic_var(key_fn, default, compiler.flag_key)
    if isinstance(key_node, bool) or not isinstance(key_node, str | int | float | type(None)):
        compiler.report(child(path, 0), "var takes a path: a string, a number or an expression")
    parts = split_path(key_node)
    if parts is None:
        return lambda data: data
    if parts[0] == "$flagd":
        return _flagd_var(parts[1:], default, compiler.flag_key or "")
    return _static_var(parts, default)


def _static_var(parts: tuple[str, ...], default: Compiled) -> Compiled:
    if len(parts) == 1 and isinstance(default, Constant):
        key, fallback = parts[0], default.value

        def get_key(data: Any) -> Any:
            if type(data) is dict:
                return data.get(key, fallback)
            value = lookup(data, parts)
            return fallback if value is _MISSING else value

        return get_key

    def get_path(data: Any) -> Any:
        value = lookup(data, parts)
        return default(data) if value is _MISSING else value

    return get_path


def _flagd_var(rest: tuple[str, ...], default: Compiled, flag_key: str) -> Compiled:
    if rest == ("flagKey",):
        return Constant(flag_key)
    if rest == ("timestamp",):
        return lambda data: int(time.time())

    def get_injected(data: Any) -> Any:
        value = lookup({"flagKey": flag_key, "timestamp": int(time.time())}, rest)
        return default(data) if value is _MISSING else value

    return get_injected


def _dynamic_var(key_fn: Compiled, default: Compiled, flag_key: str | None) -> Compiled:
    def get_dynamic(data: Any) -> Any:
        parts = split_path(key_fn(data))
        if parts is None:
            return data
        if parts[0] == "$flagd":
            source: Any = {"$flagd": {"flagKey": flag_key or "", "timestamp": int(time.time())}}
            value = lookup(source, parts)
        else:
            value = lookup(data, parts)
        return default(data) if value is _MISSING else value

    return get_dynamic


def _missing_keys(data: Any, keys: list[Any]) -> list[Any]:
    absent = []
    for key in keys:
        parts = split_path(key)
        value = data if parts is None else lookup(data, parts)
        if value is _MISSING or value is None or value == "":
            absent.append(key)
    return absent


def build_missing(compiler: Compiler, args: Any, path: str) -> Compiled:
    fns = compiler.compile_args(args, path)

    def missing(data: Any) -> list[Any]:
        values = [fn(data) for fn in fns]
        keys = values[0] if values and isinstance(values[0], list) else values
        return _missing_keys(data, keys)

    return missing


def build_missing_some(compiler: Compiler, args: Any, path: str) -> Compiled:
    raw = as_list(args)
    if not check_arity(compiler, "missing_some", raw, path, 2, 2):
        return Constant([])
    need_fn, keys_fn = compiler.compile_args(raw, path)

    def missing_some(data: Any) -> list[Any]:
        keys = keys_fn(data)
        keys = keys if isinstance(keys, list) else [keys]
        absent = _missing_keys(data, keys)
        need = need_fn(data)
        return [] if isinstance(need, int | float) and len(keys) - len(absent) >= need else absent

    return missing_some
