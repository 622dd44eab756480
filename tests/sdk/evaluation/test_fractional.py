"""fractional: v2 bucketing, its edge cases, and the properties experiments depend on."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagd_sdk.evaluation import FlagSet, FlagSetError, Reason, load_flag_set, murmur
from flagd_sdk.evaluation.murmur import murmur3_32, murmur3_32_pure
from flagd_sdk.evaluation.operators import fractional
from flagd_sdk.evaluation.operators.fractional import bucket_index


def split_flag(buckets: list[list[Any]], bucket_by: Any = None, key: str = "exp") -> FlagSet:
    names = sorted({b[0] for b in buckets})
    args: list[Any] = ([bucket_by] if bucket_by is not None else []) + buckets
    return load_flag_set(
        {
            "flags": {
                key: {
                    "state": "ENABLED",
                    "variants": {n: n for n in names},
                    "defaultVariant": names[0],
                    "targeting": {"fractional": args},
                }
            }
        },
        strict=False,
    )


def assign(flags: FlagSet, targeting_key: str, key: str = "exp") -> str | None:
    details = flags.resolve_string(key, "none", {"targetingKey": targeting_key})
    return details.variant


# --- the hash -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0), ("hello", 0x248BFA47), ("The quick brown fox jumps over the lazy dog", 0x2E4FF723)],
)
def test_should_hash_published_murmur3_vectors(text: str, expected: int) -> None:
    assert murmur3_32(text) == expected
    assert murmur3_32_pure(text.encode()) == expected


@given(st.text(max_size=64), st.integers(min_value=0, max_value=2**32 - 1), st.booleans())
def test_should_give_identical_hashes_with_and_without_the_c_extension(
    text: str, seed: int, signed: bool
) -> None:
    assert murmur._pure_hash(text, seed, signed) == mmh3.hash(text, seed, signed)
    assert murmur3_32_pure(text.encode("utf-8")) == mmh3.hash(text, 0, False) == murmur3_32(text)


def test_should_assign_identically_with_the_pure_python_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    flags = split_flag([["a", 30], ["b", 50], ["c", 20]])
    users = [f"user-{i}" for i in range(2000)]
    with_c_extension = [assign(flags, u) for u in users]
    monkeypatch.setattr(fractional, "hash_text", murmur._pure_hash)
    pure = split_flag([["a", 30], ["b", 50], ["c", 20]])
    assert [assign(pure, u) for u in users] == with_c_extension


# --- bucket arithmetic --------------------------------------------------------------------------


def test_should_split_the_hash_space_exactly_at_the_weight_boundary() -> None:
    cumulative = [50, 100]
    boundary = 2**31  # (2**31 * 100) >> 32 == 50: the first hash in the second half
    assert bucket_index(0, cumulative) == 0
    assert bucket_index(boundary - 1, cumulative) == 0
    assert bucket_index(boundary, cumulative) == 1
    assert bucket_index(2**32 - 1, cumulative) == 1


def test_should_never_choose_a_zero_weight_bucket() -> None:
    cumulative = [0, 10, 10, 20]  # weights 0, 10, 0, 10
    chosen = {bucket_index(h, cumulative) for h in (0, 2**31 - 1, 2**31, 2**32 - 1)}
    assert chosen == {1, 3}


def test_should_choose_nothing_when_every_weight_is_zero() -> None:
    assert bucket_index(12345, [0, 0]) is None
    assert bucket_index(12345, []) is None


# --- the operator -------------------------------------------------------------------------------


def test_should_bucket_by_flag_key_and_targeting_key_by_default() -> None:
    flags = split_flag([["a", 50], ["b", 50]])
    for user in ("u1", "u2", "u3", "u4", "u5"):
        expected = "a" if bucket_index(murmur3_32("exp" + user), [50, 100]) == 0 else "b"
        assert assign(flags, user) == expected


def test_should_bucket_by_the_given_expression() -> None:
    flags = split_flag([["a", 1], ["b", 1]], bucket_by={"var": "company"})
    details = [flags.resolve_string("exp", "none", {"company": c}) for c in ("acme", "initech")]
    expected = ["a" if murmur3_32(c) >> 31 == 0 else "b" for c in ("acme", "initech")]
    assert [d.variant for d in details] == expected
    assert {d.reason for d in details} == {Reason.SPLIT}


@pytest.mark.parametrize("context", [{}, {"targetingKey": ""}], ids=["absent", "empty"])
def test_should_fall_back_to_default_without_a_targeting_key(context: dict[str, Any]) -> None:
    details = split_flag([["a", 50], ["b", 50]]).resolve_string("exp", "none", context)
    assert (details.reason, details.variant) == (Reason.DEFAULT, "a")


@pytest.mark.parametrize("company", [7, None, ""], ids=["number", "missing", "empty"])
def test_should_fall_back_to_default_when_the_bucket_key_is_not_a_string(company: Any) -> None:
    flags = split_flag([["a", 50], ["b", 50]], bucket_by={"var": "company"})
    details = flags.resolve_string("exp", "none", {"company": company, "targetingKey": "u1"})
    assert details.reason == Reason.DEFAULT


def test_should_report_split_only_when_the_variant_came_from_a_bucket() -> None:
    flags = load_flag_set(
        {
            "flags": {
                "f": {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                    "targeting": {"if": [{"fractional": [[True, 0], [False, 100]]}, "on", "off"]},
                },
                "g": {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                    "targeting": {"if": [{"var": "beta"}, "on", {"fractional": [["on", 0], ["off", 1]]}]},
                },
            }
        }
    )
    assert flags.resolve_boolean("f", True, {"targetingKey": "u"}).reason == Reason.TARGETING_MATCH
    assert (
        flags.resolve_boolean("g", True, {"targetingKey": "u", "beta": True}).reason == Reason.TARGETING_MATCH
    )
    assert flags.resolve_boolean("g", True, {"targetingKey": "u"}).reason == Reason.SPLIT


def test_should_evaluate_weight_expressions_per_evaluation() -> None:
    flags = split_flag([["a", {"if": [{"var": "ramp"}, 100, 0]}], ["b", 1]])
    assert assign_with(flags, {"targetingKey": "u", "ramp": True}) == "a"
    assert assign_with(flags, {"targetingKey": "u", "ramp": False}) == "b"


def assign_with(flags: FlagSet, context: dict[str, Any]) -> str | None:
    return flags.resolve_string("exp", "none", context).variant


def test_should_fall_back_when_a_computed_weight_is_not_whole() -> None:
    flags = split_flag([["a", {"var": "w"}], ["b", 1]])
    assert flags.resolve_string("exp", "none", {"targetingKey": "u", "w": 0.5}).reason == Reason.DEFAULT


@pytest.mark.parametrize(
    ("fractional", "message"),
    [
        (
            [["a", 1.5], ["b", 1]],
            "flags.exp.targeting.fractional[0][1]: weight must be a whole number, got 1.5",
        ),
        (
            [["a", "1"], ["b", 1]],
            'flags.exp.targeting.fractional[0][1]: weight must be a whole number, got "1"',
        ),
        (
            [["a", True], ["b", 1]],
            "flags.exp.targeting.fractional[0][1]: weight must be a whole number, got true",
        ),
        ([["a", -1], ["b", 1]], "flags.exp.targeting.fractional[0][1]: weight must not be negative, got -1"),
        (
            [["a", 0], ["b", 0]],
            "flags.exp.targeting.fractional: every fractional weight is 0, so no variant can be chosen",
        ),
        (
            [["a", 2**31], ["b", 1]],
            "flags.exp.targeting.fractional: fractional weights add up to 2147483649, more than 2147483647",
        ),
        (
            [["a", 1, 2], ["b", 1]],
            "flags.exp.targeting.fractional[0]: a fractional bucket must be [variant] or [variant, weight]",
        ),
        (
            [{"var": "k"}],
            "flags.exp.targeting.fractional: fractional needs at least one bucket: [variant, weight]",
        ),
        (
            [["a", 1], ["c", 1]],
            'flags.exp.targeting.fractional[1][0]: "c" is not a variant of this flag (variants: a, b)',
        ),
    ],
)
def test_should_reject_malformed_buckets(fractional: list[Any], message: str) -> None:
    document = {
        "flags": {
            "exp": {
                "state": "ENABLED",
                "variants": {"a": "a", "b": "b"},
                "defaultVariant": "a",
                "targeting": {"fractional": fractional},
            }
        }
    }
    with pytest.raises(FlagSetError) as caught:
        load_flag_set(document)
    assert [str(p) for p in caught.value.problems] == [message]


# --- properties ---------------------------------------------------------------------------------

weights_strategy = st.lists(st.integers(min_value=1, max_value=100), min_size=2, max_size=5)


@settings(max_examples=30, deadline=None)
@given(weights=weights_strategy, keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50))
def test_should_assign_each_key_the_same_variant_every_time(weights: list[int], keys: list[str]) -> None:
    buckets = [[f"v{i}", w] for i, w in enumerate(weights)]
    first, second = split_flag(buckets), split_flag(buckets)
    assert (
        [assign(first, k) for k in keys]
        == [assign(second, k) for k in keys]
        == [assign(first, k) for k in keys]
    )


@settings(max_examples=8, deadline=None)
@given(weights=weights_strategy, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_should_give_each_variant_its_weighted_share_within_one_percent(
    weights: list[int], seed: int
) -> None:
    flags = split_flag([[f"v{i}", w] for i, w in enumerate(weights)])
    rng = random.Random(seed)
    n = 100_000
    counts = Counter(assign(flags, str(uuid.UUID(int=rng.getrandbits(128)))) for _ in range(n))
    total = sum(weights)
    for i, weight in enumerate(weights):
        assert abs(counts[f"v{i}"] / n - weight / total) <= 0.01, (weights, counts)


@settings(max_examples=40, deadline=None)
@given(
    weights=weights_strategy,
    position=st.integers(min_value=0, max_value=5),
    keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=200),
)
def test_should_move_no_one_when_a_zero_weight_variant_is_added(
    weights: list[int], position: int, keys: list[str]
) -> None:
    buckets: list[list[Any]] = [[f"v{i}", w] for i, w in enumerate(weights)]
    extended = [*buckets[:position], ["new", 0], *buckets[position:]]
    before, after = split_flag(buckets), split_flag(extended)
    assert [assign(before, k) for k in keys] == [assign(after, k) for k in keys]
