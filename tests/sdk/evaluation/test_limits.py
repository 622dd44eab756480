"""Bounded evaluation and bounded definitions: no context or definition can make the evaluator slow,
exhaust its memory or its stack (issue "Hostile input", cases 1, 3, 4 and 10).

A few tests run work in a thread with a generous deadline: they guard against a hang (the
code before this change took hours on these inputs), they do not measure speed; the figures
are bench/hostile.py's.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from flagd_sdk.evaluation import ErrorCode, FlagSetError, FlagType, Reason, load_flag_set
from flagd_sdk.evaluation.coercion import to_number
from flagd_sdk.evaluation.limits import MAX_BUILT_LENGTH, MAX_DEPTH, MAX_ITEMS, MAX_RULE_NODES
from flagd_sdk.evaluation.operators import sem_ver

HANG_GUARD_SECONDS = 30.0


def finishes(work: Callable[[], Any]) -> Any:
    """Run `work` in a thread; fail if it has not finished long after it should have."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_SECONDS)
    assert not thread.is_alive(), f"still running after {HANG_GUARD_SECONDS}s"
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def flag(targeting: Any, **variants: Any) -> dict[str, Any]:
    return {
        "state": "ENABLED",
        "variants": variants or {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": targeting,
    }


ADULT = {"flags": {"adult": flag({"if": [{">=": [{"var": "age"}, 18]}, "on", "off"]})}}


def test_should_convert_a_million_digits_followed_by_a_letter_in_linear_time() -> None:
    # Case 1: the old pattern backtracked quadratically (16,000 digits took 5.5 s; this, hours).
    # A regex holds the GIL, so the guard is a child process with a deadline, not a thread.
    program = (
        "from flagd_sdk.evaluation import load_flag_set, FlagType\n"
        f"flags = load_flag_set({ADULT!r})\n"
        "details = flags.resolve(FlagType.ANY, 'adult', None, {'age': '1' * 1_000_000 + 'x'})\n"
        "from flagd_sdk.evaluation.coercion import parse_float\n"
        "print(details.variant, parse_float('7' * 1_000_000 + 'e'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_SECONDS,
        check=True,
    )
    assert result.stdout.split() == ["off", "inf"]  # NaN >= 18 is false; parseFloat reads the digits


def test_should_read_a_long_zero_padded_number_without_an_exception() -> None:
    # Case 10: int() refused more than 4300 digits, and the ValueError's text reached the caller.
    flags = load_flag_set(ADULT)
    young = flags.resolve(FlagType.ANY, "adult", None, {"age": "0" * 5000 + "1"})
    old = flags.resolve(FlagType.ANY, "adult", None, {"age": "0" * 5000 + "21"})
    assert (young.variant, young.error_code) == ("off", None)
    assert (old.variant, old.error_code) == ("on", None)
    assert to_number("0" * 5000 + "1") == 1


@pytest.mark.parametrize(
    ("text", "number"),
    [("0x1F", 31), ("0b101", 5), ("0o17", 15), ("0x1_0", None), ("١٢", None), ("12e", None), (" 7 ", 7)],
)
def test_should_convert_strings_as_javascript_does(text: str, number: int | None) -> None:
    result = to_number(text)
    assert result == number if number is not None else result != result


def test_should_not_grow_integers_without_bound_in_a_product() -> None:
    rule = {"reduce": [{"var": "xs"}, {"*": [{"var": "accumulator"}, {"var": "current"}]}, 1]}
    flags = load_flag_set({"flags": {"p": flag({"if": [{">": [rule, 0]}, "on", "off"]})}})
    details = finishes(lambda: flags.resolve(FlagType.ANY, "p", None, {"xs": [2**62] * MAX_ITEMS}))
    assert details.variant == "on"  # Infinity > 0, as in JavaScript


def doubling_evaluators(levels: int) -> dict[str, Any]:
    evaluators: dict[str, Any] = {"e0": {"==": [{"var": "x"}, 1]}}
    for n in range(1, levels + 1):
        evaluators[f"e{n}"] = {"or": [{"$ref": f"e{n - 1}"}, {"$ref": f"e{n - 1}"}]}
    return evaluators


def test_should_refuse_a_ref_chain_that_doubles_at_every_level_without_expanding_it() -> None:
    # Case 3: each $ref was expanded again, so 18 levels took 34 s; 60 levels would never end.
    document = {
        "$evaluators": doubling_evaluators(60),
        "flags": {"f": flag({"if": [{"$ref": "e60"}, "on", "off"]})},
    }
    with pytest.raises(FlagSetError) as raised:
        finishes(lambda: load_flag_set(document))
    problems = {p.path: p.message for p in raised.value.problems}
    # eN expands to 7 * 2**N - 2 nodes: e10 (7,166) fits, e11 (14,334) does not.
    assert f"more than {MAX_RULE_NODES} nodes" in problems["$evaluators.e11"]
    assert "$evaluators.e10" not in problems
    assert "flags.f.targeting" in problems


def test_should_resolve_a_flag_over_the_limits_with_parse_error_and_keep_the_others() -> None:
    deep: Any = True
    for _ in range(250):
        deep = {"!": deep}
    document = {"flags": {"deep": flag(deep), "fine": flag({"if": [True, "on", "off"]})}}
    flags = load_flag_set(document, strict=False)
    broken = flags.resolve(FlagType.ANY, "deep", None, {})
    fine = flags.resolve(FlagType.ANY, "fine", None, {})
    assert (broken.reason, broken.error_code) == (Reason.ERROR, ErrorCode.PARSE_ERROR)
    assert f"more than {MAX_DEPTH} levels deep" in (broken.error_message or "")
    assert fine.variant == "on"
    assert [p.path for p in flags.problems] == ["flags.deep.targeting"]


def nested_targeting(depth: int) -> dict[str, Any]:
    """{"if": [{"!!": {"!!": ... true}}, "on", "off"]}, `depth` objects and arrays deep in all."""
    rule: Any = True
    for _ in range(depth - 2):
        rule = {"!!": rule}
    return {"if": [rule, "on", "off"]}


def test_should_accept_a_rule_exactly_at_the_depth_limit_and_refuse_one_deeper() -> None:
    at_limit = load_flag_set({"flags": {"f": flag(nested_targeting(MAX_DEPTH))}})
    assert at_limit.resolve(FlagType.ANY, "f", None, {}).variant == "on"
    with pytest.raises(FlagSetError):
        load_flag_set({"flags": {"f": flag(nested_targeting(MAX_DEPTH + 1))}})


def test_should_count_a_long_reference_chain_without_exhausting_the_stack() -> None:
    evaluators: dict[str, Any] = {"r0": {"var": "x"}}
    for n in range(1, 5000):
        evaluators[f"r{n}"] = {"!!": {"$ref": f"r{n - 1}"}}
    document = {"$evaluators": evaluators, "flags": {"f": flag({"if": [{"$ref": "r4999"}, "on", "off"]})}}
    flags = load_flag_set(document, strict=False)
    assert flags.resolve(FlagType.ANY, "f", None, {}).error_code is ErrorCode.PARSE_ERROR
    assert any("levels deep" in p.message for p in flags.problems)


def test_should_refuse_a_variant_value_nested_too_deeply() -> None:
    value: Any = {}
    for _ in range(MAX_DEPTH + 1):
        value = {"a": value}
    with pytest.raises(FlagSetError) as raised:
        load_flag_set({"flags": {"o": {"state": "ENABLED", "variants": {"v": value}, "defaultVariant": "v"}}})
    assert raised.value.problems[0].path == "flags.o.variants.v"


def test_should_not_cache_versions_longer_than_any_real_one() -> None:
    # Case 4: 600 distinct 1 MB strings stayed in an entry-bounded cache (660 MB).
    flags = load_flag_set(
        {"flags": {"v": flag({"if": [{"sem_ver": [{"var": "v"}, ">=", "1.0.0"]}, "on", "off"]})}}
    )
    sem_ver._parse_cached.cache_clear()
    for n in range(50):
        details = flags.resolve(FlagType.ANY, "v", None, {"v": f"1.{n}." + "9" * 100_000})
        assert details.variant == "off"  # not a version: the default
    assert sem_ver._parse_cached.cache_info().currsize == 0
    assert flags.resolve(FlagType.ANY, "v", None, {"v": "1.2.3"}).variant == "on"


def test_should_fail_one_evaluation_that_walks_an_array_over_the_limit() -> None:
    rule = {"some": [{"var": "xs"}, {"==": [{"var": ""}, 1]}]}
    flags = load_flag_set({"flags": {"s": flag({"if": [rule, "on", "off"]})}})
    over = flags.resolve(FlagType.ANY, "s", None, {"xs": [0] * (MAX_ITEMS + 1)})
    within = flags.resolve(FlagType.ANY, "s", None, {"xs": [0] * (MAX_ITEMS - 1) + [1]})
    assert over.error_code is ErrorCode.GENERAL
    assert f"the limit is {MAX_ITEMS}" in (over.error_message or "")
    assert within.variant == "on"


def test_should_stop_an_accumulating_reduce_at_the_built_length_limit() -> None:
    grow = {"reduce": [{"var": "xs"}, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]}
    flags = load_flag_set({"flags": {"g": flag({"if": [grow, "on", "off"]})}})
    details = finishes(lambda: flags.resolve(FlagType.ANY, "g", None, {"xs": list(range(64))}))
    assert details.error_code is ErrorCode.GENERAL
    assert f"the limit is {MAX_BUILT_LENGTH}" in (details.error_message or "")


def test_should_never_show_python_exception_text_to_callers() -> None:
    # A var path into a list with a non-ASCII digit used to raise ValueError inside int().
    flags = load_flag_set({"flags": {"d": flag({"if": [{"var": "xs.²"}, "on", "off"]})}})
    details = flags.resolve(FlagType.ANY, "d", None, {"xs": [True, True, True]})
    assert details.error_code is None
    assert details.variant == "off"
