"""Every standard JsonLogic operation, with the examples and corner cases of jsonlogic.com."""

from __future__ import annotations

import math
from typing import Any

import pytest

from flagd_sdk.evaluation import FlagSetError, compile_rule

PIES = {"pies": [{"filling": "pumpkin", "temp": 110}, {"filling": "rhubarb", "temp": 210}]}
INTEGERS = {"integers": [1, 2, 3, 4, 5]}

CASES: list[tuple[str, Any, Any, Any]] = [
    # var: paths, defaults, arrays, whole data
    ("var string", {"var": "a"}, {"a": 1}, 1),
    ("var list", {"var": ["a"]}, {"a": 1}, 1),
    ("var missing", {"var": ["b"]}, {"a": 1}, None),
    ("var default", {"var": ["b", 26]}, {"a": 1}, 26),
    ("var default not used for present falsy", {"var": ["a", 26]}, {"a": 0}, 0),
    ("var dotted", {"var": "a.b.c"}, {"a": {"b": {"c": "deep"}}}, "deep"),
    ("var dotted missing", {"var": ["a.x.c", "d"]}, {"a": {"b": 1}}, "d"),
    ("var array index", {"var": 1}, ["apple", "banana"], "banana"),
    ("var array index string", {"var": "1"}, ["apple", "banana"], "banana"),
    ("var nested index", {"var": "list.0.name"}, {"list": [{"name": "x"}]}, "x"),
    ("var empty is all data", {"var": ""}, {"a": 1}, {"a": 1}),
    ("var no args is all data", {"var": []}, 7, 7),
    ("var on null data", {"var": "a"}, None, None),
    ("var computed path", {"var": {"cat": ["a", ".b"]}}, {"a": {"b": 3}}, 3),
    ("var default computed", {"var": ["x", {"cat": ["d", "e"]}]}, {}, "de"),
    # missing, missing_some
    ("missing none", {"missing": ["a", "b"]}, {"a": 1, "b": 2}, []),
    ("missing some", {"missing": ["a", "b"]}, {"a": 1}, ["b"]),
    ("missing empty string counts", {"missing": ["a"]}, {"a": ""}, ["a"]),
    ("missing dotted", {"missing": ["a.b"]}, {"a": {"c": 1}}, ["a.b"]),
    ("missing from merge", {"missing": {"merge": ["vin", ["apr"]]}}, {"vin": 1}, ["apr"]),
    ("missing_some satisfied", {"missing_some": [1, ["a", "b", "c"]]}, {"a": "apple"}, []),
    ("missing_some short", {"missing_some": [2, ["a", "b", "c"]]}, {"a": "apple"}, ["b", "c"]),
    # if and ?:
    ("if true", {"if": [True, "yes", "no"]}, None, "yes"),
    ("if false", {"if": [False, "yes", "no"]}, None, "no"),
    ("if no else", {"if": [False, "yes"]}, None, None),
    ("if empty", {"if": []}, None, None),
    ("if single", {"if": ["apple"]}, None, "apple"),
    ("if empty array falsy", {"if": [[], "yes", "no"]}, None, "no"),
    ("if string zero truthy", {"if": ["0", "yes", "no"]}, None, "yes"),
    ("if zero falsy", {"if": [0, "yes", "no"]}, None, "no"),
    ("if elseif", {"if": [False, "a", True, "b", "c"]}, None, "b"),
    ("if elseif else", {"if": [False, "a", False, "b", "c"]}, None, "c"),
    ("if elseif no else", {"if": [False, "a", False, "b"]}, None, None),
    ("ternary", {"?:": [True, 1, 2]}, None, 1),
    (
        "fizzbuzz",
        {
            "if": [
                {"==": [{"%": [{"var": "i"}, 15]}, 0]},
                "fizzbuzz",
                {"==": [{"%": [{"var": "i"}, 3]}, 0]},
                "fizz",
                {"==": [{"%": [{"var": "i"}, 5]}, 0]},
                "buzz",
                {"var": "i"},
            ]
        },
        {"i": 10},
        "buzz",
    ),
    # equality
    ("== numbers", {"==": [1, 1]}, None, True),
    ("== coerces string", {"==": [1, "1"]}, None, True),
    ("== coerces bool", {"==": [0, False]}, None, True),
    ("== null null", {"==": [None, None]}, None, True),
    ("== null zero", {"==": [None, 0]}, None, False),
    ("== array string", {"==": [[1, 2], "1,2"]}, None, True),
    ("== strings", {"==": ["a", "b"]}, None, False),
    ("=== strict", {"===": [1, "1"]}, None, False),
    ("=== int float", {"===": [1, 1.0]}, None, True),
    ("=== bool int", {"===": [True, 1]}, None, False),
    ("!= ", {"!=": [1, 2]}, None, True),
    ("!= coerces", {"!=": [1, "1"]}, None, False),
    ("!== ", {"!==": [1, "1"]}, None, True),
    # negation and truthiness
    ("! true", {"!": [True]}, None, False),
    ("! lone", {"!": True}, None, False),
    ("! empty array", {"!": [[]]}, None, True),
    ("!! empty array", {"!!": [[]]}, None, False),
    ("!! string zero", {"!!": ["0"]}, None, True),
    ("!! object", {"!!": [{"a": 1, "b": 2}]}, None, True),
    # and / or return values, short-circuit
    ("or first truthy", {"or": [False, 0, "a"]}, None, "a"),
    ("or all falsy returns last", {"or": [False, 0]}, None, 0),
    ("and all truthy returns last", {"and": [True, "a", 3]}, None, 3),
    ("and first falsy", {"and": [True, "", 3]}, None, ""),
    ("and short-circuits", {"and": [False, {"var": "x.y.z"}]}, None, False),
    ("or empty", {"or": []}, None, None),
    # comparison
    ("> ", {">": [2, 1]}, None, True),
    (">= equal", {">=": [1, 1]}, None, True),
    ("< ", {"<": [1, 2]}, None, True),
    ("<= equal", {"<=": [2, 2]}, None, True),
    ("< between", {"<": [1, 2, 3]}, None, True),
    ("< between edge", {"<": [1, 1, 3]}, None, False),
    ("<= between edge", {"<=": [1, 1, 3]}, None, True),
    ("< strings lexicographic", {"<": ["10", "9"]}, None, True),
    ("< number and string numeric", {"<": [10, "9"]}, None, False),
    ("< not a number", {"<": ["abc", 1]}, None, False),
    ("> null is zero", {">": [1, None]}, None, True),
    # arithmetic
    ("max", {"max": [1, 2, 3]}, None, 3),
    ("min", {"min": [1, 2, 3]}, None, 1),
    ("max strings", {"max": ["1", "12"]}, None, 12),
    ("max empty", {"max": []}, None, None),
    ("+ ", {"+": [4, 2]}, None, 6),
    ("+ many", {"+": [2, 2, 2, 2, 2]}, None, 10),
    ("+ unary cast", {"+": "3.14"}, None, 3.14),
    ("+ parseFloat prefix", {"+": ["3a"]}, None, 3),
    ("+ empty", {"+": []}, None, 0),
    ("- ", {"-": [4, 2]}, None, 2),
    ("- unary", {"-": 2}, None, -2),
    ("* ", {"*": [4, 2]}, None, 8),
    ("* floats", {"*": [1.5, 2]}, None, 3.0),
    ("/ ", {"/": [4, 2]}, None, 2.0),
    ("/ fraction", {"/": [1, 4]}, None, 0.25),
    ("/ by zero", {"/": [1, 0]}, None, math.inf),
    ("% ", {"%": [101, 2]}, None, 1),
    ("% negative dividend", {"%": [-7, 3]}, None, -1),
    # arrays
    ("map", {"map": [{"var": "integers"}, {"*": [{"var": ""}, 2]}]}, INTEGERS, [2, 4, 6, 8, 10]),
    ("map not array", {"map": [{"var": "nope"}, {"var": ""}]}, INTEGERS, []),
    ("filter", {"filter": [{"var": "integers"}, {"%": [{"var": ""}, 2]}]}, INTEGERS, [1, 3, 5]),
    (
        "reduce",
        {"reduce": [{"var": "integers"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]},
        INTEGERS,
        15,
    ),
    ("reduce not array", {"reduce": [{"var": "nope"}, {"var": "current"}, 7]}, {}, 7),
    ("all", {"all": [[1, 2, 3], {">": [{"var": ""}, 0]}]}, None, True),
    ("all empty", {"all": [[], {">": [{"var": ""}, 0]}]}, None, False),
    ("some", {"some": [[-1, 0, 1], {">": [{"var": ""}, 0]}]}, None, True),
    ("some objects", {"some": [{"var": "pies"}, {"==": [{"var": "filling"}, "rhubarb"]}]}, PIES, True),
    ("some empty", {"some": [[], True]}, None, False),
    ("none", {"none": [[-3, -2, -1], {">": [{"var": ""}, 0]}]}, None, True),
    ("none empty", {"none": [[], True]}, None, True),
    ("merge", {"merge": [[1, 2], [3, 4]]}, None, [1, 2, 3, 4]),
    ("merge scalars", {"merge": [1, 2, [3, 4]]}, None, [1, 2, 3, 4]),
    ("merge one level", {"merge": [[1, [2]], 3]}, None, [1, [2], 3]),
    ("merge dynamic", {"merge": [{"var": "a"}, 3]}, {"a": [1, 2]}, [1, 2, 3]),
    # strings and membership
    ("in array", {"in": ["Spring", ["Spring", "Summer"]]}, None, True),
    ("in array strict", {"in": [1, ["1"]]}, None, False),
    ("in string", {"in": ["Spring", "Springfield"]}, None, True),
    ("in neither", {"in": ["a", 5]}, None, False),
    ("cat", {"cat": ["I love", " pie"]}, None, "I love pie"),
    ("cat var", {"cat": ["I love ", {"var": "filling"}, " pie"]}, {"filling": "apple"}, "I love apple pie"),
    ("cat js strings", {"cat": [1, 2.0, 2.5, None, True, [1, 2]]}, None, "122.5nulltrue1,2"),
    ("substr start", {"substr": ["jsonlogic", 4]}, None, "logic"),
    ("substr negative start", {"substr": ["jsonlogic", -5]}, None, "logic"),
    ("substr length", {"substr": ["jsonlogic", 1, 3]}, None, "son"),
    ("substr negative length", {"substr": ["jsonlogic", 4, -2]}, None, "log"),
    ("substr number source", {"substr": [12345, 1, 2]}, None, "23"),
    # data that only looks like logic
    ("multi-key object is data", {"if": [True, {"a": 1, "b": 2}, None]}, None, {"a": 1, "b": 2}),
    ("literal array evaluated", [{"var": "a"}, 2], {"a": 1}, [1, 2]),
]


@pytest.mark.parametrize(("rule", "data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_should_match_jsonlogic_semantics(rule: Any, data: Any, expected: Any) -> None:
    result = compile_rule(rule)(data)
    assert result == expected
    assert type(result) is type(expected) or (
        isinstance(expected, int | float) and isinstance(result, int | float)
    )


def test_should_give_nan_for_arithmetic_on_non_numbers() -> None:
    assert math.isnan(compile_rule({"-": ["a", 1]})(None))
    assert math.isnan(compile_rule({"%": [1, 0]})(None))


def test_should_not_evaluate_the_branch_not_taken() -> None:
    # The untaken branch names an operator whose evaluation would fail: it must never run.
    rule = {"if": [True, "safe", {"/": [1, {"var": "zero"}]}]}
    assert compile_rule(rule)({"zero": 0}) == "safe"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"fractionl": [1]}, 'rule: unknown operator "fractionl"'),
        ({"if": [True, {"nope": []}]}, 'rule.if[1]: unknown operator "nope"'),
        ({"==": [1]}, 'rule["=="]: == takes 2 arguments, got 1'),
        ({"<": [1, 2, 3, 4]}, 'rule["<"]: < takes 2 to 3 arguments, got 4'),
        ({"substr": ["a"]}, "rule.substr: substr takes 2 to 3 arguments, got 1"),
        ({"map": [[1]]}, "rule.map: map takes 2 arguments, got 1"),
        ({"var": [True]}, "rule.var[0]: var takes a path: a string, a number or an expression"),
    ],
)
def test_should_locate_rule_problems(rule: Any, message: str) -> None:
    with pytest.raises(FlagSetError) as caught:
        compile_rule(rule)
    assert [str(p) for p in caught.value.problems] == [message]
