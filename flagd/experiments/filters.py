"""A metric's event filter: conditions on the event's `properties`, every one of which must hold.

    where:
      currency: {equals: EUR}
      country: {in: [NL, DE]}        # also not_in
      amount: {gte: 10, lt: 1000}    # gt, gte, lt, lte: numbers, and only numeric properties match
      coupon: {exists: true}

One property may carry several operators (each is a condition). `not_in` is the complement of `in`:
an event without the property passes it (add `exists: true` to require one). `exists` means present
and not null. Properties are the event's top-level `properties` members.

Pure: `read_filter` validates a definition once and locates every problem; `flagd.results.sql.filters`
compiles the result to SQL with parameters.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from flagd_sdk.evaluation.problems import FlagSetError, Problem, child, given

OPERATORS = ("equals", "in", "not_in", "gt", "gte", "lt", "lte", "exists")
COMPARISONS = ("gt", "gte", "lt", "lte")
MAX_CONDITIONS = 20
MAX_LISTED = 1_000
"""The most values an `in` or `not_in` lists."""
MAX_PROPERTY_CHARS = 200


@dataclass(frozen=True, slots=True)
class Condition:
    property: str
    op: str
    """One of OPERATORS."""
    operand: object
    """equals: text, a number or true/false; in, not_in: a tuple of those; gt..lte: a float; exists: a bool."""


def _canonical(condition: Condition) -> list[Any]:
    operand = condition.operand
    return [condition.property, condition.op, list(operand) if isinstance(operand, tuple) else operand]


@dataclass(frozen=True, slots=True)
class EventFilter:
    conditions: tuple[Condition, ...]
    """Sorted by property and operator: equal filters are equal values with equal keys."""

    @property
    def key(self) -> str:
        """A short stable text naming the filter (a hash of its canonical form), for roll-up source keys."""
        canonical = orjson.dumps([_canonical(c) for c in self.conditions])
        return hashlib.sha256(canonical).hexdigest()[:16]


def _scalar(value: Any) -> bool:
    """Text, a finite number or true/false: what equals and in compare with."""
    if isinstance(value, str | bool):
        return True
    return isinstance(value, int | float) and math.isfinite(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _operand(op: str, raw: Any, path: str, problems: list[Problem]) -> object | None:
    """The condition's operand, or None with a problem."""
    if op == "equals":
        if _scalar(raw):
            scalar: object = raw
            return scalar
        problems.append(Problem(path, f"must be text, a number or true/false; got {given(raw)}"))
    elif op in ("in", "not_in"):
        if isinstance(raw, list) and 0 < len(raw) <= MAX_LISTED and all(_scalar(v) for v in raw):
            return tuple(raw)
        problems.append(
            Problem(
                path,
                f"must be a list of 1 to {MAX_LISTED} values, each text, a number or true/false; got {given(raw)}",
            )
        )
    elif op in COMPARISONS:
        if _number(raw):
            return float(raw)
        problems.append(Problem(path, f"must be a finite number; got {given(raw)}"))
    elif isinstance(raw, bool):  # exists
        return raw
    else:
        problems.append(Problem(path, f"must be true or false; got {given(raw)}"))
    return None


def read_filter(value: object, path: str, problems: list[Problem] | None = None) -> EventFilter:
    """The filter a `where` member defines. Every problem is appended to `problems` (the filter then
    holds only the conditions that read cleanly: the caller drops the definition); without a list, a
    FlagSetError carries them."""
    found: list[Problem] = []
    conditions: list[Condition] = []
    if not isinstance(value, dict) or not value:
        found.append(
            Problem(
                path,
                "must be an object mapping event properties to conditions, e.g. {currency: {equals: EUR}}; "
                f"got {given(value)}",
            )
        )
        value = {}
    for name, ops in value.items():
        at = child(path, name)
        if not isinstance(name, str) or not 0 < len(name) <= MAX_PROPERTY_CHARS:
            found.append(Problem(at, f"name a property of the event (1 to {MAX_PROPERTY_CHARS} characters)"))
            continue
        if not isinstance(ops, dict) or not ops:
            found.append(
                Problem(at, f"must be an object of one or more of {', '.join(OPERATORS)}; got {given(ops)}")
            )
            continue
        for op, raw in ops.items():
            if op not in OPERATORS:
                found.append(Problem(child(at, op), f"unknown operator; use {', '.join(OPERATORS)}"))
                continue
            operand = _operand(op, raw, child(at, op), found)
            if operand is not None:
                conditions.append(Condition(name, op, operand))
    if len(conditions) > MAX_CONDITIONS:
        found.append(Problem(path, f"has {len(conditions)} conditions; at most {MAX_CONDITIONS} are allowed"))
    if problems is not None:
        problems.extend(found)
    elif found:
        raise FlagSetError(found)
    return EventFilter(tuple(sorted(conditions, key=lambda c: (c.property, c.op))))


def read_value_property(value: object, path: str, problems: list[Problem]) -> str | None:
    """The property a metric takes its value from instead of the event's `value`."""
    if isinstance(value, str) and 0 < len(value) <= MAX_PROPERTY_CHARS:
        return value
    problems.append(
        Problem(
            path,
            f"name the numeric event property the value is read from (1 to {MAX_PROPERTY_CHARS} characters)",
        )
    )
    return None
