"""JavaScript conversions as JsonLogic uses them (ECMAScript ToBoolean, ToNumber, ToString, ==, ===, <)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flagd_sdk.evaluation.coercion import (
    less_or_equal,
    less_than,
    loose_equals,
    parse_float,
    strict_equals,
    to_number,
    to_string,
    truthy,
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (float("nan"), False),
        (1, True),
        (-1, True),
        ("", False),
        ("0", True),
        ("false", True),
        ([], False),
        ([0], True),
        ({}, True),
    ],
)
def test_truthiness(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        (True, 1),
        (False, 0),
        ("", 0),
        ("  ", 0),
        (" 12 ", 12),
        ("1.5", 1.5),
        ("-3", -3),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("0x1A", 26),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ([], 0),
        ([7], 7),
        (["8"], 8),
    ],
)
def test_to_number(value: Any, expected: float) -> None:
    assert to_number(value) == expected


@pytest.mark.parametrize("value", ["abc", "1,5", [1, 2], {"a": 1}, "12px"])
def test_to_number_gives_nan(value: Any) -> None:
    assert math.isnan(to_number(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12px", 12), ("  3.5kg", 3.5), ("-2e2x", -200.0), ("Infinityx", math.inf), (7, 7)],
)
def test_parse_float_reads_the_numeric_prefix(value: Any, expected: float) -> None:
    assert parse_float(value) == expected


@pytest.mark.parametrize("value", ["", "px12", None, True, []])
def test_parse_float_gives_nan(value: Any) -> None:
    assert math.isnan(parse_float(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (1, "1"),
        (1.0, "1"),
        (1.5, "1.5"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (float("nan"), "NaN"),
        (math.inf, "Infinity"),
        ([1, None, "a", [2, 3]], "1,,a,2,3"),
        ({"a": 1}, "[object Object]"),
    ],
)
def test_to_string(value: Any, expected: str) -> None:
    assert to_string(value) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, "1", True),
        (0, "", True),
        (0, False, True),
        ("1", True, True),
        (None, None, True),
        (None, 0, False),
        (None, False, False),
        ("", False, True),
        ([1], 1, True),
        ([1, 2], "1,2", True),
        ([], [], False),
        ("a", "A", False),
        (float("nan"), float("nan"), False),
    ],
)
def test_loose_equality(a: Any, b: Any, expected: bool) -> None:
    assert loose_equals(a, b) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 1.0, True),
        (1, "1", False),
        (True, 1, False),
        (True, True, True),
        (None, None, True),
        ("a", "a", True),
        ([], [], False),
    ],
)
def test_strict_equality(a: Any, b: Any, expected: bool) -> None:
    assert strict_equals(a, b) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("a", "b", True),
        ("10", "9", True),
        (10, "9", False),
        ("10", 9, False),
        (None, 1, True),
        ("x", 1, False),
        ([2], 3, True),
    ],
)
def test_less_than(a: Any, b: Any, expected: bool) -> None:
    assert less_than(a, b) is expected


@given(json_scalars, json_scalars)
def test_equality_is_symmetric(a: Any, b: Any) -> None:
    assert loose_equals(a, b) == loose_equals(b, a)
    assert strict_equals(a, b) == strict_equals(b, a)


@given(json_scalars, json_scalars)
def test_strict_equality_implies_loose_equality(a: Any, b: Any) -> None:
    if strict_equals(a, b):
        assert loose_equals(a, b)


@given(json_scalars, json_scalars)
def test_less_or_equal_is_less_or_loosely_equal_for_numbers(a: Any, b: Any) -> None:
    if (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        assert less_or_equal(a, b) == (less_than(a, b) or a == b)
