"""A reduction as stored JSON (results_days, results_sums, results_reductions): its cap, per-variant sums,
quantiles, a funnel's units per step and a retention's maturing units, in the order of the fields of
VariantSums and QuantileSums."""

from __future__ import annotations

from typing import Any

import orjson

from flagd.results.model import QuantileSums, Reduction, VariantSums


def encode(reduction: Reduction) -> str:
    return orjson.dumps(fields(reduction)).decode()


def decode(metric: str, raw: str) -> Reduction:
    return from_fields(metric, orjson.loads(raw))


def fields(reduction: Reduction) -> dict[str, object]:
    """The reduction as the JSON object stored (to nest in a larger document)."""
    stored: dict[str, object] = {
        "cap": reduction.cap,
        "variants": {v: [getattr(s, f) for f in VariantSums.FIELDS] for v, s in reduction.variants.items()},
        "quantiles": {
            v: [getattr(q, f) for f in QuantileSums.FIELDS] for v, q in reduction.quantiles.items()
        },
    }
    if reduction.reached is not None:
        stored["reached"] = {v: list(steps) for v, steps in reduction.reached.items()}
    if reduction.maturing is not None:
        stored["maturing"] = reduction.maturing
    return stored


def from_fields(metric: str, stored: dict[str, Any]) -> Reduction:
    """The reduction of `metric` from its stored JSON object, parsed."""
    variants = {
        v: VariantSums(int(values[0]), *(float(x) for x in values[1:]))
        for v, values in stored["variants"].items()
    }
    quantiles = {
        v: QuantileSums(int(values[0]), int(values[1]), *(float(x) for x in values[2:]))
        for v, values in stored.get("quantiles", {}).items()
    }
    reached = stored.get("reached")
    maturing = stored.get("maturing")
    return Reduction(
        metric,
        variants,
        stored["cap"],
        quantiles,
        maturing={v: int(n) for v, n in maturing.items()} if maturing is not None else None,
        reached={v: tuple(int(c) for c in steps) for v, steps in reached.items()}
        if reached is not None
        else None,
    )
