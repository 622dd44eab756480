"""Compile JsonLogic targeting into plain Python closures, once per flag-set load.

`Compiler.compile(node, path)` turns a JSON rule into a function of the evaluation
data; nothing walks JSON at evaluation time. While compiling it reports every problem
it finds, located by JSON path, to a sink. A part it cannot compile (an unknown
operator, a `$ref` to no evaluator) becomes a function that raises
`TargetingParseError`, so a flag set loaded leniently behaves as other flagd
evaluators do: that flag resolves with PARSE_ERROR, every other flag still works.

Result positions (the rule itself, the branches of `if`, the buckets of `fractional`)
are compiled by `compile_result`, which also says whether the value came from a
fractional split, and checks literal variant names against the flag's variants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias, TypeVar

from flagd_sdk.evaluation.coercion import to_string
from flagd_sdk.evaluation.problems import Problem, child, given
from flagd_sdk.evaluation.types import Compiled

ResultFn: TypeAlias = Callable[[Any], tuple[Any, bool]]
"""A compiled rule in result position: data in, (variant name or None, came from a split) out."""

Builder: TypeAlias = Callable[["Compiler", Any, str], Compiled]
"""Builds an operator: (compiler, raw arguments, path of the arguments) -> compiled function."""

ResultBuilder: TypeAlias = Callable[["Compiler", Any, str, "frozenset[str] | None"], ResultFn]
"""Builds an operator in result position, passing the position on to its branches."""


T = TypeVar("T")


class TargetingParseError(Exception):
    """Evaluation reached a part of a rule that could not be compiled."""


class Constant:
    """A compiled literal. Operators look for it to fold work into compile time."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, data: Any) -> Any:
        return self.value


class ConstantResult:
    """A literal in result position: always names the same variant, never from a split."""

    __slots__ = ("result", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.result = (value, False)

    def __call__(self, data: Any) -> tuple[Any, bool]:
        return self.result


def broken(message: str) -> Compiled:
    def raise_parse_error(data: Any) -> Any:
        raise TargetingParseError(message)

    return raise_parse_error


class Compiler:
    def __init__(
        self,
        *,
        evaluators: Mapping[str, Any],
        flag_key: str | None,
        sink: list[Problem] | None,
        operators: Mapping[str, Builder],
        result_operators: Mapping[str, ResultBuilder],
    ) -> None:
        self.evaluators = evaluators
        self.flag_key = flag_key
        self.operators = operators
        self.result_operators = result_operators
        self._sink = sink
        self._expanding: tuple[str, ...] = ()
        # Each shared evaluator is compiled once per position (value or result) and reused at
        # every `$ref` to it: compiling costs the distinct rules, not their expansion.
        self._inlined: dict[tuple[str, bool], Any] = {}
        # Set while validating one evaluator: cycles through it are reported even from inside
        # inlined references, whose other problems are reported under their own evaluator.
        self._cycle_sink: list[Problem] | None = None

    def report(self, path: str, message: str) -> None:
        if self._sink is not None:
            self._sink.append(Problem(path, message))

    def compile(self, node: Any, path: str) -> Compiled:
        if isinstance(node, dict):
            if len(node) == 1:
                ((op, args),) = node.items()
                if op == "$ref":
                    return self._expand_ref(args, path, self.compile, broken, result=False)
                builder = self.operators.get(op)
                if builder is None:
                    return self._unknown_operator(op, path)
                return builder(self, args, child(path, op))
            # JsonLogic treats any object that is not a single-key operation as data.
            return Constant(node)
        if isinstance(node, list):
            items = [self.compile(item, child(path, i)) for i, item in enumerate(node)]
            constants = [item.value for item in items if isinstance(item, Constant)]
            if len(constants) == len(items):
                return Constant(constants)
            return lambda data: [item(data) for item in items]
        return Constant(node)

    def compile_evaluator(self, name: str, path: str) -> Compiled:
        """Validate a shared rule of `$evaluators` on its own, as the start of any `$ref` chain."""
        self._expanding, self._cycle_sink = (name,), self._sink
        try:
            return self.compile(self.evaluators[name], path)
        finally:
            self._expanding, self._cycle_sink = (), None

    def compile_args(self, args: Any, path: str) -> list[Compiled]:
        """Compile an operator's arguments; a lone argument stands for a one-element list."""
        if isinstance(args, list):
            return [self.compile(arg, child(path, i)) for i, arg in enumerate(args)]
        return [self.compile(args, path)]

    def compile_result(self, node: Any, path: str, variants: frozenset[str] | None) -> ResultFn:
        if isinstance(node, dict) and len(node) == 1:
            ((op, args),) = node.items()
            if op == "$ref":
                return self._expand_ref(
                    args, path, lambda n, p: self.compile_result(n, p, None), broken_result, result=True
                )
            result_builder = self.result_operators.get(op)
            if result_builder is not None:
                return result_builder(self, args, child(path, op), variants)
        elif variants is not None and not isinstance(node, dict | list):
            self._check_variant_name(node, path, variants)
        compiled = self.compile(node, path)
        if isinstance(compiled, Constant):
            return ConstantResult(compiled.value)
        return lambda data: (compiled(data), False)

    def _check_variant_name(self, value: Any, path: str, variants: frozenset[str]) -> None:
        if value is None:
            return
        name = to_string(value)  # a result names the variant whose key is its JSON text
        if name not in variants:
            known = ", ".join(sorted(variants))
            self.report(path, f'"{name}" is not a variant of this flag (variants: {known})')

    def _expand_ref(
        self,
        name: Any,
        path: str,
        compile_target: Callable[[Any, str], T],
        on_error: Callable[[str], T],
        *,
        result: bool,
    ) -> T:
        if not isinstance(name, str) or name not in self.evaluators:
            message = (
                f"$ref {given(name)} names no evaluator in $evaluators"
                if isinstance(name, str)
                else f"$ref must name an evaluator of $evaluators; got {given(name)}"
            )
            self.report(path, message)
            return on_error(message)
        if name in self._expanding:
            message = f"$ref cycle: {' -> '.join((*self._expanding, name))}"
            if self._sink is None and self._cycle_sink is not None:
                self._cycle_sink.append(Problem(path, message))
            else:
                self.report(path, message)
            return on_error(message)
        inlined: T | None = self._inlined.get((name, result))
        if inlined is not None:
            return inlined
        # The evaluator's own problems are reported once, at $evaluators.<name>; here it is only inlined.
        sink, self._sink = self._sink, None
        self._expanding = (*self._expanding, name)
        try:
            compiled = compile_target(self.evaluators[name], child("$evaluators", name))
        finally:
            self._expanding = self._expanding[:-1]
            self._sink = sink
        self._inlined[(name, result)] = compiled
        return compiled

    def _unknown_operator(self, op: str, path: str) -> Compiled:
        message = f'unknown operator "{op}"'
        self.report(path, message)
        return broken(message)


def broken_result(message: str) -> ResultFn:
    fail = broken(message)
    return lambda data: (fail(data), False)
