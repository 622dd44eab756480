"""Load a flag set in the flagd definition format: validate it whole, then compile it.

`load_flag_set(document)` checks everything before anything is used and raises
`FlagSetError` listing every problem with its JSON path. With `strict=False` it loads
what it can the way other flagd evaluators do: a flag whose definition is unusable
resolves with PARSE_ERROR, a rule part that cannot be compiled fails (or yields null)
when it is reached, and the problems are kept on the result for the caller to show.

Size and depth are checked (flagd_sdk.evaluation.limits) before anything is compiled,
so no document, however large or deep, can make loading slow or exhaust the stack:
a part over a bound is reported and resolves with PARSE_ERROR.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from flagd_sdk.evaluation.compiler import Compiler, ResultFn, broken_result
from flagd_sdk.evaluation.flag import Flag
from flagd_sdk.evaluation.flag_set import FlagSet
from flagd_sdk.evaluation.limits import MAX_DEPTH, MAX_RULE_NODES, MAX_SET_NODES, RuleMeasure, deepest
from flagd_sdk.evaluation.operators import OPERATORS, RESULT_OPERATORS
from flagd_sdk.evaluation.problems import FlagSetError, Problem, child, given
from flagd_sdk.evaluation.types import MetadataValue

_STATES = {"ENABLED": True, "DISABLED": False}
_FLAG_MEMBERS = {"state", "variants", "defaultVariant", "targeting", "metadata"}
# Members flagd's own sync machinery adds to flags; harmless, so tolerated.
_TOLERATED_MEMBERS = {"key", "source", "selector"}


def load_flag_set(document: Any, *, strict: bool = True) -> FlagSet:
    """A compiled flag set from a decoded JSON document (or its JSON text)."""
    problems: list[Problem] = []
    if isinstance(document, str | bytes | bytearray):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise FlagSetError([Problem("", f"the flag set is not valid JSON: {exc}")]) from None
        except RecursionError:
            raise FlagSetError(
                [Problem("", f"the flag set is nested too deeply (limit {MAX_DEPTH})")]
            ) from None
    flags_doc, evaluators, set_metadata = _read_root(document, problems)
    budget = _Budget(evaluators)
    _validate_evaluators(evaluators, budget, problems)
    flags = {
        key: _load_flag(key, definition, path, evaluators, set_metadata, budget, problems)
        for key, definition, path in _flag_entries(flags_doc, problems)
    }
    if strict and problems:
        raise FlagSetError(problems)
    return FlagSet(flags=flags, metadata=set_metadata, problems=tuple(problems), document=document)


def _read_root(
    document: Any, problems: list[Problem]
) -> tuple[Any, dict[str, Any], Mapping[str, MetadataValue]]:
    if not isinstance(document, dict):
        problems.append(Problem("", 'a flag set must be a JSON object with a "flags" member'))
        return {}, {}, MappingProxyType({})
    if "flags" not in document:
        problems.append(Problem("flags", 'is missing; a flag set needs a "flags" object (it may be empty)'))
    evaluators = document.get("$evaluators", {})
    if not isinstance(evaluators, dict):
        problems.append(Problem("$evaluators", "must be an object of named rules"))
        evaluators = {}
    metadata = _metadata(document.get("metadata"), "metadata", problems)
    return document.get("flags", {}), evaluators, metadata


def _flag_entries(flags_doc: Any, problems: list[Problem]) -> list[tuple[str, Any, str]]:
    """(key, definition, path) for each flag, from the object form or flagd's array form."""
    if isinstance(flags_doc, dict):
        entries = []
        for key, definition in flags_doc.items():
            if not key:
                problems.append(Problem("flags", "a flag key must not be empty"))
                continue
            entries.append((key, definition, child("flags", key)))
        return entries
    if isinstance(flags_doc, list):
        entries, seen = [], set()
        for index, definition in enumerate(flags_doc):
            path = child("flags", index)
            key = definition.get("key") if isinstance(definition, dict) else None
            if not isinstance(key, str) or not key:
                problems.append(Problem(path, 'a flag in the array form needs a non-empty "key"'))
                continue
            if key in seen:
                problems.append(Problem(child(path, "key"), f'flag "{key}" is defined more than once'))
                continue
            seen.add(key)
            entries.append((key, definition, path))
        return entries
    problems.append(Problem("flags", "must be an object mapping flag keys to flag definitions"))
    return []


class _Budget:
    """The expanded size of what this load compiles, against the per-rule and per-set bounds."""

    def __init__(self, evaluators: Mapping[str, Any]) -> None:
        self.measure = RuleMeasure(evaluators)
        self.spent = 0

    def admit(self, nodes: int, depth: int, what: str) -> str | None:
        """Why a rule of this size may not be compiled, or None (and the size is spent)."""
        if depth > MAX_DEPTH:
            return (
                f"{what} is nested more than {MAX_DEPTH} levels deep (with every $ref expanded); simplify it"
            )
        if nodes > MAX_RULE_NODES:
            return (
                f"{what} has more than {MAX_RULE_NODES} nodes (with every $ref expanded); "
                "split it or share less through nested $ref"
            )
        if self.spent + nodes > MAX_SET_NODES:
            return (
                f"the flag set's rules have more than {MAX_SET_NODES} nodes in all (with every $ref expanded); "
                f"{what} does not fit"
            )
        self.spent += nodes
        return None


def _validate_evaluators(evaluators: dict[str, Any], budget: _Budget, problems: list[Problem]) -> None:
    compiler = _compiler(evaluators, None, problems)  # one for all, so each evaluator compiles once
    for name, rule in evaluators.items():
        path = child("$evaluators", name)
        if not isinstance(rule, dict):
            problems.append(Problem(path, "an evaluator must be a JsonLogic rule (an object)"))
            continue
        refused = budget.admit(*budget.measure.evaluator(name), "this evaluator")
        if refused is not None:
            problems.append(Problem(path, refused))
            continue
        compiler.compile_evaluator(name, path)


def _compiler(evaluators: Mapping[str, Any], flag_key: str | None, sink: list[Problem] | None) -> Compiler:
    return Compiler(
        evaluators=evaluators,
        flag_key=flag_key,
        sink=sink,
        operators=OPERATORS,
        result_operators=RESULT_OPERATORS,
    )


def _load_flag(
    key: str,
    definition: Any,
    path: str,
    evaluators: Mapping[str, Any],
    set_metadata: Mapping[str, MetadataValue],
    budget: _Budget,
    problems: list[Problem],
) -> Flag:
    first_problem = len(problems)
    if not isinstance(definition, dict):
        problems.append(Problem(path, "a flag must be an object with state and variants"))
        definition = {}
    for member in definition:
        if member not in _FLAG_MEMBERS and member not in _TOLERATED_MEMBERS:
            allowed = ", ".join(sorted(_FLAG_MEMBERS))
            problems.append(Problem(child(path, member), f"unknown member; a flag has {allowed}"))
    enabled = _state(definition, path, problems)
    variants = _variants(definition, path, problems)
    default_variant = _default_variant(definition, path, variants, problems)
    metadata = MappingProxyType(
        {**set_metadata, **_metadata(definition.get("metadata"), child(path, "metadata"), problems)}
    )
    rule = _rule(key, definition, path, evaluators, variants, budget, problems)
    structural = [p for p in problems[first_problem:] if not p.path.startswith(child(path, "targeting"))]
    return Flag(
        key=key,
        enabled=enabled,
        variants=MappingProxyType(variants),
        default_variant=default_variant,
        rule=rule,
        metadata=metadata,
        broken=f'flag "{key}" is invalid: {structural[0]}' if structural else None,
    )


def _state(definition: Mapping[str, Any], path: str, problems: list[Problem]) -> bool:
    state = definition.get("state")
    if not isinstance(state, str) or state not in _STATES:
        shown = f"got {given(state)}" if "state" in definition else "it is missing"
        problems.append(Problem(child(path, "state"), f'must be "ENABLED" or "DISABLED"; {shown}'))
        return False
    return _STATES[state]


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return None


def _variants(definition: Mapping[str, Any], path: str, problems: list[Problem]) -> dict[str, Any]:
    at = child(path, "variants")
    variants = definition.get("variants")
    if not isinstance(variants, dict) or not variants:
        problems.append(Problem(at, "must be a non-empty object mapping variant names to values"))
        return {}
    kinds: dict[str, str] = {}
    for name, value in variants.items():
        if not isinstance(name, str):
            problems.append(Problem(child(at, name), "a variant name must be text (quote it in YAML)"))
            continue
        if deepest(value) > MAX_DEPTH:
            problems.append(Problem(child(at, name), f"is nested more than {MAX_DEPTH} levels deep"))
            continue
        kind = _kind(value)
        if kind is None:
            problems.append(
                Problem(
                    child(at, name),
                    f"a variant is a boolean, string, number or object; got {given(value)}",
                )
            )
        elif kind not in kinds.values() and kinds:
            first_name, first_kind = next(iter(kinds.items()))
            problems.append(
                Problem(
                    child(at, name),
                    f'is a {kind} but "{first_name}" is a {first_kind}; all variants of a flag share one type',
                )
            )
        else:
            kinds[name] = kind
    return {name: value for name, value in variants.items() if isinstance(name, str)}


def _default_variant(
    definition: Mapping[str, Any], path: str, variants: Mapping[str, Any], problems: list[Problem]
) -> str | None:
    default = definition.get("defaultVariant")
    if default is None or default == "":
        return None
    at = child(path, "defaultVariant")
    if not isinstance(default, str):
        problems.append(Problem(at, f"must be a variant name or null; got {given(default)}"))
        return None
    if variants and default not in variants:
        known = ", ".join(variants)
        problems.append(Problem(at, f'"{default}" is not one of the variants ({known})'))
        return None
    return default


def _metadata(metadata: Any, path: str, problems: list[Problem]) -> Mapping[str, MetadataValue]:
    if metadata is None:
        return MappingProxyType({})
    if not isinstance(metadata, dict):
        problems.append(Problem(path, "must be an object of string, number or boolean values"))
        return MappingProxyType({})
    valid = {}
    for name, value in metadata.items():
        if isinstance(value, bool | int | float | str):
            valid[name] = value
        else:
            problems.append(
                Problem(child(path, name), f"must be a string, number or boolean; got {given(value)}")
            )
    return MappingProxyType(valid)


def _rule(
    key: str,
    definition: Mapping[str, Any],
    path: str,
    evaluators: Mapping[str, Any],
    variants: Mapping[str, Any],
    budget: _Budget,
    problems: list[Problem],
) -> ResultFn | None:
    targeting = definition.get("targeting")
    if targeting is None or targeting == {}:
        return None
    at = child(path, "targeting")
    if not isinstance(targeting, dict):
        problems.append(Problem(at, "must be a JsonLogic rule (an object), or {} for none"))
        return None
    refused = budget.admit(*budget.measure.measure(targeting), "this rule")
    if refused is not None:
        problems.append(Problem(at, refused))
        return broken_result(refused)
    compiler = _compiler(evaluators, key, problems)
    return compiler.compile_result(targeting, at, frozenset(variants) if variants else None)


def compile_rule(
    rule: Any, *, evaluators: Mapping[str, Any] | None = None, flag_key: str | None = None
) -> Callable[[Any], Any]:
    """A standalone JsonLogic rule (with flagd's operators) as a function of the data.

    Raises FlagSetError with every located problem; the compiled function itself may
    raise when it reaches an operation that failed at run time, so callers that must
    not fail wrap it.
    """
    problems: list[Problem] = []
    budget = _Budget(evaluators or {})
    refused = budget.admit(*budget.measure.measure(rule), "the rule")
    if refused is not None:
        raise FlagSetError([Problem("rule", refused)])
    compiled = _compiler(evaluators or {}, flag_key, problems).compile(rule, "rule")
    if problems:
        raise FlagSetError(problems)
    return compiled
