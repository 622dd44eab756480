"""Experiments compiled into flag targeting: who is assigned what, checked over many units."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagd.experiments.compile import served_definition
from flagd.experiments.layers import place
from flagd.experiments.model import BASIS_POINTS, Experiment, Layer
from flagd_sdk.evaluation import FlagSet, FlagType, Reason, load_flag_set
from flagd_sdk.evaluation.murmur import murmur3_32

UNITS = [f"user-{i}" for i in range(100_000)]
SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def flag(variants: Sequence[str], targeting: Any = None) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {v: v for v in variants},
        "defaultVariant": variants[0],
    }
    if targeting is not None:
        definition["targeting"] = targeting
    return definition


def running(key: str, flag_key: str, variants: Sequence[tuple[str, int]], **fields: Any) -> Experiment:
    return Experiment(
        key=key,
        flag=flag_key,
        variants=tuple(variants),
        salt=fields.pop("salt", f"{key}-salt"),
        state="running",
        phase=fields.pop("phase", 1),
        **fields,
    )


def served(
    flags: dict[str, dict[str, Any]], experiments: Sequence[Experiment], layer: Layer | None = None
) -> FlagSet:
    by_flag = {e.flag: e for e in experiments}
    document = {
        "flags": {
            key: served_definition(definition, by_flag.get(key), layer, experiments)
            for key, definition in flags.items()
        }
    }
    return load_flag_set(document)


def layer_bucket(layer: Layer, unit: str) -> int:
    """The unit's basis point in its layer, computed the way flagd's fractional does, independently."""
    return (murmur3_32(f"{layer.salt}:layer:{unit}") * BASIS_POINTS) >> 32


VARIANT_WEIGHTS = st.lists(st.integers(1, 100), min_size=2, max_size=4)


@SETTINGS
@given(VARIANT_WEIGHTS, st.integers(1000, BASIS_POINTS))
def test_should_assign_shares_of_weight_times_allocation(weights: list[int], allocation: int) -> None:
    names = [f"v{i}" for i in range(len(weights))]
    experiment = running("exp", "f", list(zip(names, weights, strict=True)), allocation_bp=allocation)
    flags = served({"f": flag(["off", *names])}, [experiment])
    seen = Counter(flags.resolve(FlagType.ANY, "f", None, {"targetingKey": unit}).variant for unit in UNITS)
    for name, weight in zip(names, weights, strict=True):
        expected = allocation / BASIS_POINTS * weight / sum(weights)
        assert abs(seen[name] / len(UNITS) - expected) < 0.01
    assert abs(seen["off"] / len(UNITS) - (1 - allocation / BASIS_POINTS)) < 0.01
    again = served({"f": flag(["off", *names])}, [experiment])
    sample = UNITS[:2000]
    assert [flags.resolve(FlagType.ANY, "f", None, {"targetingKey": u}).variant for u in sample] == [
        again.resolve(FlagType.ANY, "f", None, {"targetingKey": u}).variant for u in sample
    ]


@SETTINGS
@given(st.lists(st.integers(500, 3000), min_size=2, max_size=3), st.integers(0, 2000))
def test_should_keep_experiments_of_one_layer_apart_and_the_holdout_out(
    allocations: list[int], holdout: int
) -> None:
    layer = Layer("checkout", "layer-salt", holdout_bp=holdout)
    experiments: list[Experiment] = []
    for i, allocation in enumerate(allocations):
        start = place(layer, experiments, allocation)
        if isinstance(start, str):
            break  # over-allocated: refused (tested separately)
        experiments.append(
            running(
                f"e{i}",
                f"f{i}",
                [("a", 1), ("b", 1)],
                layer="checkout",
                allocation_bp=allocation,
                slot_start=start,
            )
        )
    flags = served({e.flag: flag(["off", "a", "b"]) for e in experiments}, experiments, layer)
    shares: Counter[str] = Counter()
    for unit in UNITS:
        inside = [
            e.key
            for e in experiments
            if flags.resolve(FlagType.ANY, e.flag, None, {"targetingKey": unit}).reason is Reason.SPLIT
        ]
        assert len(inside) <= 1, (unit, inside)
        if layer_bucket(layer, unit) < holdout:
            assert inside == []
        shares.update(inside)
    for e in experiments:
        assert abs(shares[e.key] / len(UNITS) - e.allocation_bp / BASIS_POINTS) < 0.01


def test_should_refuse_to_over_allocate_a_layer_with_the_numbers() -> None:
    layer = Layer("l", "s", holdout_bp=1000)
    first = running("a", "fa", [("x", 1)], layer="l", allocation_bp=6000, slot_start=1000)
    refused = place(layer, [first], 4000)
    assert isinstance(refused, str)
    assert "3000 of 10000 basis points free" in refused
    assert "needs 4000" in refused
    assert place(layer, [first], 3000) == 7000


def test_should_give_units_outside_the_experiment_the_flags_own_targeting() -> None:
    own = {"if": [{"==": [{"var": "country"}, "NL"]}, "b", None]}
    definition = flag(["off", "a", "b"], own)
    experiment = running(
        "exp", "f", [("a", 1), ("b", 1)], allocation_bp=3000, eligibility={"==": [{"var": "plan"}, "pro"]}
    )
    with_experiment = served({"f": definition}, [experiment])
    alone = load_flag_set({"flags": {"f": definition}})
    outside = 0
    for i, unit in enumerate(UNITS[:20_000]):
        context = {
            "targetingKey": unit,
            "country": "NL" if i % 3 else "DE",
            "plan": "pro" if i % 2 else "free",
        }
        details = with_experiment.resolve(FlagType.ANY, "f", None, context)
        if details.reason is not Reason.SPLIT:
            outside += 1
            assert details.variant == alone.resolve(FlagType.ANY, "f", None, context).variant
        else:
            assert context["plan"] == "pro"  # only eligible units enter
    assert outside > 10_000


def test_should_move_no_unit_when_another_experiment_starts_or_stops_in_the_layer() -> None:
    layer = Layer("l", "layer-salt", holdout_bp=500)
    first = running("a", "fa", [("x", 1), ("y", 1)], layer="l", allocation_bp=3000, slot_start=500)
    start = place(layer, [first], 2500)
    assert isinstance(start, int)
    second = running("b", "fb", [("x", 1), ("y", 1)], layer="l", allocation_bp=2500, slot_start=start)
    flags = {"fa": flag(["off", "x", "y"]), "fb": flag(["off", "x", "y"])}
    alone, together = served(flags, [first], layer), served(flags, [first, second], layer)
    for unit in UNITS[:20_000]:
        context = {"targetingKey": unit}
        assert alone.resolve(FlagType.ANY, "fa", None, context) == together.resolve(
            FlagType.ANY, "fa", None, context
        )


def test_should_re_randomize_in_a_new_phase() -> None:
    flags = {"f": flag(["off", "a", "b"])}
    phase_1 = running("exp", "f", [("a", 1), ("b", 1)], salt="salt-1", phase=1)
    phase_2 = running("exp", "f", [("a", 1), ("b", 1)], salt="salt-2", phase=2)
    first, second = served(flags, [phase_1]), served(flags, [phase_2])
    moved = sum(
        first.resolve(FlagType.ANY, "f", None, {"targetingKey": u}).variant
        != second.resolve(FlagType.ANY, "f", None, {"targetingKey": u}).variant
        for u in UNITS[:20_000]
    )
    assert abs(moved / 20_000 - 0.5) < 0.02  # independent 50/50 splits disagree half the time
    assert second.flags["f"].metadata["experimentPhase"] == 2


def test_should_randomize_by_a_context_attribute_and_skip_units_without_it() -> None:
    experiment = running("exp", "f", [("a", 1), ("b", 1)], unit="company_id")
    flags = served({"f": flag(["off", "a", "b"])}, [experiment])
    same_company = {
        flags.resolve(FlagType.ANY, "f", None, {"targetingKey": u, "company_id": 42}).variant
        for u in UNITS[:200]
    }
    assert len(same_company) == 1  # everyone at one company gets one variant
    missing = flags.resolve(FlagType.ANY, "f", None, {"targetingKey": "u"})
    assert (missing.variant, missing.reason) == ("off", Reason.DEFAULT)


def test_should_match_openfeature_flagd_core_unit_for_unit() -> None:
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    layer = Layer("l", "layer-salt", holdout_bp=700)
    in_layer = running("a", "fa", [("x", 30), ("y", 70)], layer="l", allocation_bp=4000, slot_start=700)
    allocated = running("b", "fb", [("x", 1), ("y", 1), ("z", 2)], allocation_bp=6500)
    own = {"if": [{"==": [{"var": "country"}, "NL"]}, "y", None]}
    flags = {"fa": flag(["off", "x", "y"], own), "fb": flag(["off", "x", "y", "z"])}
    document = {
        "flags": {
            "fa": served_definition(flags["fa"], in_layer, layer, [in_layer]),
            "fb": served_definition(flags["fb"], allocated),
        }
    }
    ours = load_flag_set(document)
    agreed: Counter[bool] = Counter()
    logging.disable(logging.CRITICAL)
    try:
        core = FlagdCore()
        core.set_flags(document)
        for i, unit in enumerate(UNITS[:10_000]):
            context = {"targetingKey": unit, "country": "NL" if i % 4 == 0 else "SE"}
            for key in ("fa", "fb"):
                theirs = core.resolve_string_value(
                    key, "default", EvaluationContext(unit, {"country": context["country"]})
                )
                mine = ours.resolve(FlagType.STRING, key, "default", context)
                assert (mine.variant, mine.value) == (theirs.variant, theirs.value), (key, unit)
                agreed[mine.reason is Reason.SPLIT] += 1
    finally:
        logging.disable(logging.NOTSET)
    assert agreed[True] > 5000  # both paths exercised: in the experiments and outside them
    assert agreed[False] > 5000
