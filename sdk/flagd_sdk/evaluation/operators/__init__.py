"""The operator tables the compiler dispatches on: JsonLogic's standard set plus flagd's own."""

from __future__ import annotations

from collections.abc import Mapping

from flagd_sdk.evaluation.compiler import Builder, ResultBuilder
from flagd_sdk.evaluation.operators import arithmetic, arrays, data, logic, strings
from flagd_sdk.evaluation.operators.fractional import build_fractional, build_fractional_result
from flagd_sdk.evaluation.operators.sem_ver import build_sem_ver

STANDARD: Mapping[str, Builder] = {
    "var": data.build_var,
    "missing": data.build_missing,
    "missing_some": data.build_missing_some,
    "if": logic.build_if,
    "?:": logic.build_if,
    "==": logic.build_loose_equals,
    "===": logic.build_strict_equals,
    "!=": logic.build_loose_not_equals,
    "!==": logic.build_strict_not_equals,
    "!": logic.build_not,
    "!!": logic.build_truthy,
    "or": logic.build_or,
    "and": logic.build_and,
    "<": logic.build_less,
    "<=": logic.build_less_or_equal,
    ">": logic.build_greater,
    ">=": logic.build_greater_or_equal,
    "in": logic.build_in,
    "max": arithmetic.build_max,
    "min": arithmetic.build_min,
    "+": arithmetic.build_add,
    "-": arithmetic.build_subtract,
    "*": arithmetic.build_multiply,
    "/": arithmetic.build_divide,
    "%": arithmetic.build_remainder,
    "map": arrays.build_map,
    "filter": arrays.build_filter,
    "reduce": arrays.build_reduce,
    "all": arrays.build_all,
    "none": arrays.build_none,
    "some": arrays.build_some,
    "merge": arrays.build_merge,
    "cat": strings.build_cat,
    "substr": strings.build_substr,
}

FLAGD: Mapping[str, Builder] = {
    "fractional": build_fractional,
    "sem_ver": build_sem_ver,
    "starts_with": strings.build_starts_with,
    "ends_with": strings.build_ends_with,
}

OPERATORS: Mapping[str, Builder] = {**STANDARD, **FLAGD}

RESULT_OPERATORS: Mapping[str, ResultBuilder] = {
    "if": logic.build_if_result,
    "?:": logic.build_if_result,
    "fractional": build_fractional_result,
}
