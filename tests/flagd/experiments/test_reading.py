"""Metrics, layers and experiments read from a flags-as-code document: good files load, bad ones are located."""

from __future__ import annotations

from typing import Any

import pytest

from flagd.experiments.reading import read_experiments, read_layers, read_metrics
from flagd_sdk.evaluation import Problem

FLAGS = {
    "new-checkout": {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"},
}

DOCUMENT: dict[str, Any] = {
    "flags": FLAGS,
    "metrics": {
        "checkout-rate": {
            "name": "Checkout rate",
            "type": "conversion",
            "event": "checkout",
            "direction": "increase",
        },
        "revenue": {
            "type": "sum",
            "event": "purchase",
            "direction": "increase",
            "winsorisation": {"percentile": 99},
        },
        "orders": {"type": "count", "event": "purchase", "direction": "increase", "window_seconds": 604800},
        "revenue-per-order": {
            "type": "ratio",
            "numerator": "revenue",
            "denominator": "orders",
            "direction": "increase",
        },
        "satisfaction": {"type": "csat", "event": "survey", "direction": "increase"},
    },
    "layers": {"checkout": {"holdout_bp": 500}},
    "experiments": {
        "one-page-checkout": {
            "flag": "new-checkout",
            "hypothesis": "One page lifts checkout by 2% without hurting revenue per order.",
            "variants": {"off": 50, "on": 50},
            "allocation_bp": 5000,
            "eligibility": {"==": [{"var": "country"}, "NL"]},
            "layer": "checkout",
            "metrics": [
                {"metric": "checkout-rate", "role": "primary"},
                {"metric": "revenue-per-order", "role": "guardrail"},
            ],
            "owner": "growth",
            "tags": ["checkout"],
        }
    },
}


def read(document: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    problems: list[Problem] = []
    metrics = read_metrics(document, problems)
    layers = read_layers(document, problems)
    experiments = read_experiments(document, document.get("flags", {}), metrics, layers, problems)
    return {"metrics": metrics, "layers": layers, "experiments": experiments}, problems


def test_should_read_a_valid_document() -> None:
    values, problems = read(DOCUMENT)
    assert problems == []
    experiment = values["experiments"]["one-page-checkout"]
    assert experiment.variants == (("off", 50), ("on", 50))
    assert experiment.allocation_bp == 5000
    assert [(m.metric, m.role) for m in experiment.metrics] == [
        ("checkout-rate", "primary"),
        ("revenue-per-order", "guardrail"),
    ]
    assert values["metrics"]["revenue"].winsorisation.percentile == 99
    assert values["layers"]["checkout"].holdout_bp == 500


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        (
            ("metrics", "orders", "type", "median"),
            "metrics.orders.type",
            'must be one of conversion, count, sum, mean, ratio, nps, csat, ces, funnel; got "median"',
        ),
        (
            ("metrics", "revenue-per-order", "denominator", "revenue"),
            "metrics.revenue-per-order",
            "over itself",
        ),
        (
            ("experiments", "one-page-checkout", "flag", "old-checkout"),
            "experiments.one-page-checkout.flag",
            "not a flag",
        ),
        (
            ("experiments", "one-page-checkout", "variants", {"off": 50, "maybe": 50}),
            "experiments.one-page-checkout.variants.maybe",
            "not a variant",
        ),
        (
            ("experiments", "one-page-checkout", "allocation_bp", 12000),
            "experiments.one-page-checkout.allocation_bp",
            "1 to 10000",
        ),
        (
            ("experiments", "one-page-checkout", "layer", "search"),
            "experiments.one-page-checkout.layer",
            "not a layer",
        ),
        (
            ("experiments", "one-page-checkout", "eligibility", {"sem_ver": [1]}),
            "experiments.one-page-checkout.eligibility.sem_ver",
            "sem_ver takes 3",
        ),
        (
            ("experiments", "one-page-checkout", "expected_units", 10.5),
            "experiments.one-page-checkout.expected_units",
            "whole number of units",
        ),
        (
            ("experiments", "one-page-checkout", "mde", 0),
            "experiments.one-page-checkout.mde",
            "relative change above 0",
        ),
        (
            ("metrics", "checkout-rate", "direction", "up"),
            "metrics.checkout-rate.direction",
            "must be increase or decrease",
        ),
    ],
)
def test_should_locate_each_mistake(change: tuple[str, str, str, Any], path: str, says: str) -> None:
    section, key, member, value = change
    document = {**DOCUMENT, section: {**DOCUMENT[section], key: {**DOCUMENT[section][key], member: value}}}
    _, problems = read(document)
    assert any(p.path == path and says in p.message for p in problems), problems


@pytest.mark.parametrize(
    ("section", "key", "member", "path"),
    [
        ("experiments", "one-page-checkout", "layer", "experiments.one-page-checkout.layer"),
        ("metrics", "checkout-rate", "numerator", "metrics.checkout-rate"),
    ],
)
@pytest.mark.parametrize("value", [{"a": 1}, ["checkout"]])
def test_should_report_names_of_the_wrong_type_instead_of_failing(
    section: str, key: str, member: str, path: str, value: Any
) -> None:
    # An object or a list where a name belongs used to raise TypeError (unhashable) in a membership test.
    entry = {**DOCUMENT[section][key], member: value}
    if member == "numerator":
        entry.update(type="ratio", denominator="revenue")
        entry.pop("event", None)
    document = {**DOCUMENT, section: {**DOCUMENT[section], key: entry}}
    _, problems = read(document)
    assert any(p.path.startswith(path) for p in problems), problems


def test_should_report_a_metric_reference_of_the_wrong_type_instead_of_failing() -> None:
    experiment = dict(DOCUMENT["experiments"]["one-page-checkout"])
    experiment["metrics"] = [{"metric": {"a": 1}, "role": "primary"}]
    document = {**DOCUMENT, "experiments": {"one-page-checkout": experiment}}
    _, problems = read(document)
    assert any(p.path == "experiments.one-page-checkout.metrics[0].metric" for p in problems), problems


def test_should_report_five_mistakes_at_once() -> None:
    document = {
        "flags": FLAGS,
        "metrics": {
            "a": {"type": "nope", "event": "x", "direction": "increase"},
            "r": {"type": "ratio", "numerator": "r", "denominator": "r", "direction": "up"},
        },
        "experiments": {
            "e": {
                "flag": "new-checkout",
                "variants": {"on": 0, "off": 1},
                "metrics": [{"metric": "missing", "role": "primary"}],
            }
        },
    }
    _, problems = read(document)
    assert len(problems) >= 5
    assert {p.path for p in problems} >= {
        "metrics.a.type",
        "metrics.r.direction",
        "metrics.r",
        "experiments.e.variants.on",
        "experiments.e.metrics[0].metric",
    }


def test_should_require_exactly_one_primary_metric() -> None:
    experiment = {
        **DOCUMENT["experiments"]["one-page-checkout"],
        "metrics": [{"metric": "checkout-rate", "role": "secondary"}],
    }
    _, problems = read({**DOCUMENT, "experiments": {"x": experiment}})
    assert [p.path for p in problems] == ["experiments.x.metrics"]
