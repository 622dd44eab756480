"""The SDK and the server (OFREP) agree on every exposure: which evaluations are exposures, and of what.

The flag set goes through the server's real compile path (StoredConfig -> ConfigSnapshot), the SDK
reads the bytes GET /v1/flags sends, and 10,000 random contexts are evaluated on both sides. An
independent oracle (murmur3 buckets and the eligibility rules, computed here) says which category
each evaluation is in, so the test fails if both sides agree on a wrong answer too.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson

from flagd.config.repository import StoredConfig
from flagd.config.snapshot import ConfigSnapshot
from flagd.experiments.model import BASIS_POINTS, Layer
from flagd.experiments.serving import Lifecycle
from flagd_sdk.core import Core
from flagd_sdk.evaluation import FlagType, Reason
from flagd_sdk.evaluation.murmur import murmur3_32
from flagd_sdk.units import unit_text
from tests.flagd.experiments.test_compile import flag as definition
from tests.flagd.experiments.test_compile import layer_bucket


def _split(*variants: str) -> dict[str, Any]:
    return {"fractional": [[v, 1] for v in variants]}


FLAGS = {
    # In a layer with a holdout, eligibility by a shared evaluator, the author's own targeting a fractional.
    "search": definition(["classic", "semantic"], _split("classic", "semantic")),
    # The same layer, unit a nested attribute.
    "recs": definition(
        ["popular", "personal"], {"if": [{"==": [{"var": "country"}, "NL"]}, "personal", None]}
    ),
    # No layer: 25% of eligible units, unit another attribute, the author's fallback a keyed fractional.
    "pricing": definition(
        ["standard", "discount"], {"fractional": [{"var": "account.id"}, ["standard", 9], ["discount", 1]]}
    ),
    "banner": definition(["a", "b"], _split("a", "b")),
    # A running experiment on a disabled flag: the condition holds, but nothing is assigned.
    "legacy": {**definition(["old", "new"]), "state": "DISABLED"},
    "onboarding": definition(["short", "long"], _split("short", "long")),
    # An author's metadata that looks like a compiled experiment's: served without it.
    "theme": {
        **definition(["dark", "light"], {"if": [True, _split("dark", "light"), None]}),
        "metadata": {"experimentKey": "theme-test", "experimentPhase": 1, "experimentUnit": "targetingKey"},
    },
}
EVALUATORS = {"mobile": {"in": [{"var": "platform"}, ["ios", "android"]]}}
COUNTRIES = ["NL", "BE", "DE"]
EXPERIMENTS = {
    "ranking": {
        "flag": "search",
        "variants": {"classic": 1, "semantic": 1},
        "allocation_bp": 3000,
        "layer": "discovery",
        "eligibility": {"$ref": "mobile"},
    },
    "recs-model": {
        "flag": "recs",
        "variants": {"popular": 1, "personal": 3},
        "allocation_bp": 4000,
        "layer": "discovery",
        "unit": "account.id",
    },
    "price": {
        "flag": "pricing",
        "variants": {"standard": 1, "discount": 1},
        "allocation_bp": 2500,
        "eligibility": {"in": [{"var": "country"}, COUNTRIES]},
        "unit": "deviceId",
    },
    "banner-copy": {"flag": "banner", "variants": {"a": 1, "b": 1}},
    "legacy-test": {"flag": "legacy", "variants": {"old": 1, "new": 1}},
    "onboarding-flow": {"flag": "onboarding", "variants": {"short": 1, "long": 1}},
}
LIFECYCLES = {
    "ranking": Lifecycle("running", 2, "ranking-phase-2", 2000),
    "recs-model": Lifecycle("running", 1, "recs-phase-1", 5000),
    "price": Lifecycle("running", 3, "price-phase-3", None),
    "banner-copy": Lifecycle("stopped", 1, "banner-phase-1", None),
    "legacy-test": Lifecycle("running", 1, "legacy-phase-1", None),
    "onboarding-flow": Lifecycle("draft", 0, "", None),
}
HOLDOUT_BP = 2000
LAYER = Layer("discovery", "layer:discovery", HOLDOUT_BP)  # as read: the default salt of layer "discovery"
SLOTS = {"ranking": (2000, 5000), "recs-model": (5000, 9000)}
UNITS = {"search": "targetingKey", "recs": "account.id", "pricing": "deviceId"}
EXPERIMENT_OF = {"search": "ranking", "recs": "recs-model", "pricing": "price"}


def snapshot() -> ConfigSnapshot:
    stored = StoredConfig(
        version=7,
        flags=FLAGS,
        evaluators=EVALUATORS,
        metadata={},
        updated_at=datetime.now(UTC),
        layers={LAYER.key: {"holdout_bp": HOLDOUT_BP}},
        experiments=EXPERIMENTS,
        lifecycles=LIFECYCLES,
    )
    built = ConfigSnapshot.build(stored)
    assert built.problems == ()
    return built


def random_context(rng: random.Random, i: int) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if rng.random() < 0.9:
        context["targetingKey"] = f"user-{i}"
    for name, values in (("platform", ["ios", "android", "web"]), ("country", [*COUNTRIES, "FR", "US"])):
        if rng.random() < 0.85:
            context[name] = rng.choice(values)
    account = rng.random()
    if account < 0.6:
        context["account"] = {"id": f"acct-{i}"}
    elif account < 0.7:
        context["account"] = {"id": i}  # a number: its unit text is "42"
    elif account < 0.75:
        context["account"] = {"id": ""}
    elif account < 0.8:
        context["account"] = {}
    if rng.random() < 0.8:
        context["deviceId"] = f"dev-{i}"
    return context


def category(flag: str, context: dict[str, Any]) -> str:
    """Why an evaluation is or is not an exposure, computed independently of the compiled rules."""
    if flag == "legacy":
        return "flag disabled"
    if flag not in EXPERIMENT_OF:
        return "no running experiment"
    experiment = EXPERIMENT_OF[flag]
    unit = unit_text(context, UNITS[flag])
    if unit is None:
        return "no unit"
    if flag == "search" and context.get("platform") not in ("ios", "android"):
        return "ineligible"
    if flag == "pricing":
        if context.get("country") not in COUNTRIES:
            return "ineligible"
        in_allocation = (murmur3_32(f"price-phase-3:allocation:{unit}") * BASIS_POINTS) >> 32 < 2500
        return "exposed" if in_allocation else "outside the allocation"
    point = layer_bucket(LAYER, unit)
    start, end = SLOTS[experiment]
    if point < HOLDOUT_BP:
        return "layer holdout"
    if start <= point < end:
        return "exposed"
    return "another slot" if any(s <= point < e for s, e in SLOTS.values()) else "free layer traffic"


def test_should_agree_between_sdk_and_ofrep_on_every_exposure_over_10000_contexts() -> None:
    served = snapshot()
    core = Core(max_queue=10**6, exposure_cache=10**6, batch_size=10**6)
    core.apply(orjson.loads(served.body), version=served.version, etag=served.etag)
    rng = random.Random(20_240_611)
    seen: Counter[tuple[str, str, bool]] = Counter()
    split_not_exposed: Counter[str] = Counter()
    for i in range(10_000):
        context = random_context(rng, i)
        unit = context.get("targetingKey")
        attributes = {k: v for k, v in context.items() if k != "targetingKey"}
        for flag in FLAGS:
            # The server, as OFREP evaluates and records.
            remote = served.flag_set.resolve(FlagType.ANY, flag, None, context)
            assert remote.error_code is None
            on_server = served.exposure(flag, remote, context)
            # The SDK, as a client evaluates in process and queues its exposure event.
            local = core.evaluate(FlagType.ANY, flag, None, unit, attributes)
            events = [msgpack.unpackb(packed) for packed in core.take()]
            assert len(events) <= 1
            in_sdk = (
                (events[0]["experiment"], events[0]["phase"], events[0]["unit"], events[0]["variant"])
                if events
                else None
            )
            assert (local.variant, local.reason) == (remote.variant, remote.reason)
            expected = None
            if on_server is not None:
                expected = (on_server.experiment, on_server.phase, on_server.unit, on_server.variant)
            assert in_sdk == expected, (flag, context)
            why = category(flag, context)
            assert (on_server is not None) == (why == "exposed"), (flag, why, context)
            seen[(flag, why, on_server is not None)] += 1
            if remote.reason is Reason.SPLIT and on_server is None:
                split_not_exposed[flag] += 1
            if on_server is not None:
                assert on_server.experiment == EXPERIMENT_OF[flag]
                assert on_server.unit == unit_text(context, UNITS[flag])
                assert on_server.variant == remote.variant
    # Every category happens, so a rule that got one wrong would have been caught.
    for flag, categories in {
        "search": ["exposed", "no unit", "ineligible", "layer holdout", "another slot", "free layer traffic"],
        "recs": ["exposed", "no unit", "layer holdout", "another slot", "free layer traffic"],
        "pricing": ["exposed", "no unit", "ineligible", "outside the allocation"],
        "banner": ["no running experiment"],
        "legacy": ["flag disabled"],
        "onboarding": ["no running experiment"],
        "theme": ["no running experiment"],
    }.items():
        for why in categories:
            assert seen[(flag, why, why == "exposed")] > 50, (flag, why, seen)
    # Reason SPLIT alone would be wrong: the author's own fractional, a stopped or draft experiment's flag,
    # and a flag whose author wrote experiment metadata all split without exposing.
    for flag in ("search", "pricing", "banner", "onboarding", "theme"):
        assert split_not_exposed[flag] > 50, (flag, split_not_exposed)
    assert served.experiments.keys() == {"search", "recs", "pricing", "legacy"}
    assert "experimentKey" not in served.document["flags"]["theme"].get("metadata", {})
