"""JSON in and out of the server, with the bounds that keep every stored value renderable.

orjson is fast but refuses some values Python holds: nesting beyond 254 levels when
writing, beyond 1024 when reading, integers beyond 64 bits. Validation keeps new
definitions well inside those bounds (`check_storable`), but rows written by an older
version or by hand may not be; `dumps` and `loads` fall back to the standard library
for those, so one odd row never turns into a failed response or a server that cannot
start.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from flagd_sdk.evaluation import Problem
from flagd_sdk.evaluation.limits import MAX_DEPTH
from flagd_sdk.evaluation.problems import child, given

MAX_DOCUMENT_DEPTH = MAX_DEPTH + 4
"""Deepest nesting accepted anywhere in a flag set: a rule's bound plus flags.<key>.targeting."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# orjson reads integers of 20 or more digits as floats; only a body with a digit run that long
# is read again with exact integers, so a definition is refused rather than silently rounded.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # Deeper than orjson writes, or integers beyond 64 bits: the standard library writes both.
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def loads(data: bytes | str) -> Any:
    """Decode JSON; raises ValueError (never RecursionError) when it cannot."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("the JSON value is nested too deeply to read") from None


def exact(data: bytes, value: Any) -> Any:
    """`value`, which orjson decoded from `data`, with every integer exact (for definitions)."""
    if _LONG_DIGITS.search(data) is None:
        return value
    try:
        return json.loads(data, parse_int=_exact_int)
    except RecursionError:  # orjson reads deeper than json does; such a body is refused later
        return value


def _exact_int(text: str) -> int:
    # int() of a long digit string is slow (and refused past 4300 digits): anything this long
    # is out of range anyway, and check_storable says so.
    return int(text) if len(text) <= 40 else INT64_MAX + 1


MAX_DOCUMENT_NODES = 1_000_000
"""Most values in one flag-set document read by the CLI (a 1 MB request body holds far fewer)."""


def count_nodes(value: Any, cap: int) -> int:
    """How many values `value` holds, counting shared ones each time, stopping just past `cap`."""
    count, stack = 0, [value]
    while stack and count <= cap:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def check_storable(document: Any, limit: int = MAX_DOCUMENT_DEPTH) -> list[Problem]:
    """What keeps a document from being stored and served exactly: depth, NUL, inexact integers, values
    and member names JSON cannot hold (YAML reads `2026-01-01` as a date, `on:` as true, `.nan`, `!!binary`).

    Iterative, and stops at the first part nested too deeply, so its cost is linear in the
    document whatever its shape.
    """
    problems: list[Problem] = []
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack and len(problems) < 20:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= limit:
                problems.append(Problem(path, f"is nested too deeply; the limit is {limit} levels in all"))
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key:
                    problems.append(Problem(path, "a member name contains a NUL character (\\u0000)"))
                    continue
                if isinstance(value, dict) and not isinstance(key, str):
                    problems.append(
                        Problem(child(path, key), "a member name must be text; in YAML, quote it")
                    )
                    continue
                stack.append((item, child(path, key), depth + 1))
        elif isinstance(value, str):
            if "\x00" in value:
                problems.append(Problem(path, "contains a NUL character (\\u0000), which cannot be stored"))
        elif value is not None and not isinstance(value, bool | int | float):
            problems.append(
                Problem(path, f"is {given(value)}, which JSON cannot hold; in YAML, quote it to make it text")
            )
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(path, f"is {given(value)}, which JSON cannot hold; use a finite number"))
        elif type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            problems.append(
                Problem(
                    path,
                    f"the integer {str(value)[:30]} is outside the 64-bit range and cannot be stored exactly; "
                    "use a smaller number, a float or a string",
                )
            )
    return problems
