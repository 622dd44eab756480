"""The bounds that make the cost of loading and evaluating a flag set independent of its input.

Definitions are checked against these before anything is compiled (`measure_rule`,
`deepest`); a part over a bound is reported as a located problem and never compiled.
Evaluation checks the run-time bounds as it goes and fails the one evaluation
(`EvaluationLimitExceeded`, resolved as GENERAL) instead of running on.

Worst case of one evaluation. A rule has at most MAX_RULE_NODES nodes after every
`$ref` is expanded, nested at most MAX_DEPTH deep, so compiling it costs O(MAX_RULE_NODES)
and evaluating it visits each node once, each node costing time linear in the values
it reads (conversions, comparisons, hashing and `in` are linear; no regex backtracks;
versions longer than 256 characters are not versions). The iteration operators (map,
filter, reduce, all, some, none) run their rule once per element and refuse arrays of
more than MAX_ITEMS elements; merge and cat refuse to build an array or a string longer
than MAX_BUILT_LENGTH. So one evaluation costs at most
O(MAX_RULE_NODES x context size) plus, for a rule that accumulates in `reduce`,
MAX_ITEMS x MAX_BUILT_LENGTH element copies: bounded whatever the context holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of a rule (after `$ref` expansion) or of a variant value."""

MAX_RULE_NODES = 10_000
"""Most JSON nodes in one flag's targeting or one evaluator, with every `$ref` expanded."""

MAX_SET_NODES = 500_000
"""Most expanded nodes over a whole flag set (flags and evaluators), which bounds compiling it."""

MAX_ITEMS = 10_000
"""Longest array map, filter, reduce, all, some and none will walk in one evaluation."""

MAX_BUILT_LENGTH = 100_000
"""Longest array (merge) or string (cat) an evaluation may build."""


class EvaluationLimitExceeded(Exception):
    """One evaluation reached a run-time bound; its message says which (safe to show)."""


def check_items(items: list[Any], op: str) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise EvaluationLimitExceeded(f"{op} was given {len(items)} elements; the limit is {MAX_ITEMS}")
    return items


def check_built(length: int, op: str) -> None:
    if length > MAX_BUILT_LENGTH:
        raise EvaluationLimitExceeded(f"{op} would build {length} elements; the limit is {MAX_BUILT_LENGTH}")


def deepest(node: Any) -> int:
    """The nesting depth of a JSON value (a scalar is 0, [] and {} are 1), without recursion."""
    depth, stack = 0, [(node, 1)]
    while stack:
        value, level = stack.pop()
        children = _children(value)
        if children is None:
            continue
        depth = max(depth, level)
        stack.extend((item, level + 1) for item in children)
    return depth


def _children(value: Any) -> Iterator[Any] | None:
    if isinstance(value, dict):
        return iter(value.values())
    if isinstance(value, list):
        return iter(value)
    return None


class RuleMeasure:
    """Size and depth of rules with `$ref` expanded, each evaluator measured once.

    `measure(rule)` returns (nodes, depth) with both saturating just above their bounds,
    so a reference chain that doubles at every level costs one pass over the document,
    not its expansion. A `$ref` to a missing evaluator, or one that closes a cycle,
    counts as one node (those are reported elsewhere).
    """

    def __init__(self, evaluators: Mapping[str, Any]) -> None:
        self._evaluators = evaluators
        self._measured: dict[str, tuple[int, int]] = {}
        self._in_progress: set[str] = set()

    def evaluator(self, name: str) -> tuple[int, int]:
        # Reference chains may be long: measure the evaluators a rule needs bottom-up with an
        # explicit stack, so no chain can exhaust Python's recursion limit.
        pending = [name]
        while pending:
            current = pending[-1]
            if current in self._measured:
                pending.pop()
                continue
            unmeasured = [
                ref
                for ref in dict.fromkeys(_refs(self._evaluators[current]))  # each name once, in order
                if ref in self._evaluators and ref not in self._measured and ref not in self._in_progress
            ]
            if unmeasured:
                self._in_progress.add(current)
                pending.extend(unmeasured)
                continue
            self._measured[current] = self.measure(self._evaluators[current])
            self._in_progress.discard(current)
            pending.pop()
        return self._measured[name]

    def measure(self, rule: Any) -> tuple[int, int]:
        nodes, depth, stack = 0, 0, [(rule, 1)]
        while stack and nodes <= MAX_RULE_NODES and depth <= MAX_DEPTH:
            value, level = stack.pop()
            ref = _ref_name(value)
            if ref is not None and ref in self._measured:
                ref_nodes, ref_depth = self._measured[ref]
                nodes, depth = nodes + ref_nodes, max(depth, level - 1 + ref_depth)
                continue
            nodes += 1
            children = _children(value)
            if children is None:
                continue
            depth = max(depth, level)
            stack.extend((item, level + 1) for item in children)
        return min(nodes, MAX_RULE_NODES + 1), min(depth, MAX_DEPTH + 1)


def _ref_name(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        name = value.get("$ref")
        if isinstance(name, str):
            return name
    return None


def _refs(rule: Any) -> list[str]:
    names, stack = [], [rule]
    while stack:
        value = stack.pop()
        name = _ref_name(value)
        if name is not None:
            names.append(name)
            continue
        children = _children(value)
        if children is not None:
            stack.extend(children)
    return names
