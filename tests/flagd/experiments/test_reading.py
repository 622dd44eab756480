"""Metrics, layers and experiments read from a flags-as-code document: good files load, bad ones are located."""

from __future__ import annotations

from typing import Any

import pytest

from flagd.experiments.model import RetentionEvent
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
        "load-p90": {
            "type": "quantile",
            "event": "page_load",
            "quantile": 0.9,
            "level": "event",
            "direction": "decrease",
        },
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
    load = values["metrics"]["load-p90"]
    assert (load.type, load.quantile, load.level) == ("quantile", 0.9, "event")


def test_should_read_a_quantile_of_the_unit_level_by_default() -> None:
    document = {
        **DOCUMENT,
        "metrics": {"p50": {"type": "quantile", "event": "x", "quantile": 0.5, "direction": "increase"}},
    }
    values, problems = read({**document, "experiments": {}})
    assert problems == []
    assert values["metrics"]["p50"].level == "unit"


@pytest.mark.parametrize(
    ("member", "value", "path", "says"),
    [
        ("quantile", 1.5, "metrics.load-p90.quantile", "from 0.01 to 0.99"),
        ("quantile", True, "metrics.load-p90.quantile", "from 0.01 to 0.99"),
        ("quantile", None, "metrics.load-p90.quantile", "e.g. 0.9 for the p90"),
        ("level", "session", "metrics.load-p90.level", "must be unit"),
        ("winsorisation", {"percentile": 99}, "metrics.load-p90.winsorisation", "remove winsorisation"),
    ],
)
def test_should_locate_each_mistake_of_a_quantile_metric(
    member: str, value: Any, path: str, says: str
) -> None:
    metric = {**DOCUMENT["metrics"]["load-p90"], member: value}
    if value is None:
        del metric[member]
    _, problems = read({**DOCUMENT, "metrics": {**DOCUMENT["metrics"], "load-p90": metric}})
    assert any(p.path == path and says in p.message for p in problems), problems


def test_should_refuse_quantile_members_on_other_types_and_a_ratio_of_a_quantile() -> None:
    metrics = {
        **DOCUMENT["metrics"],
        "orders": {**DOCUMENT["metrics"]["orders"], "quantile": 0.5},
        "revenue-per-order": {**DOCUMENT["metrics"]["revenue-per-order"], "numerator": "load-p90"},
    }
    _, problems = read({**DOCUMENT, "metrics": metrics})
    assert any(
        p.path == "metrics.orders.quantile" and "only a metric of type quantile" in p.message
        for p in problems
    )
    assert any(
        p.path == "metrics.revenue-per-order.numerator"
        and "is a quantile metric; a ratio divides two plain metrics" in p.message
        for p in problems
    ), problems


@pytest.mark.parametrize(
    ("change", "path", "says"),
    [
        (
            ("metrics", "orders", "type", "median"),
            "metrics.orders.type",
            'must be one of conversion, count, sum, mean, ratio, nps, csat, ces, quantile, retention, funnel; got "median"',
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


def test_should_read_a_retention_metric_and_locate_each_mistake_in_one() -> None:
    good = {
        "type": "retention",
        "events": ["app_opened", "order_paid"],
        "from_day": 7,
        "to_day": 14,
        "direction": "increase",
    }
    problems: list[Problem] = []
    metrics = read_metrics({"metrics": {"week-2": good}}, problems)
    assert problems == []
    metric = metrics["week-2"]
    assert (metric.events, metric.from_day, metric.to_day) == (
        (RetentionEvent("app_opened"), RetentionEvent("order_paid")),
        7,
        14,
    )
    assert metric.event_names == ("app_opened", "order_paid")
    filtered = {**good, "events": ["app_opened", {"event": "app_opened", "where": {"os": {"equals": "ios"}}}]}
    read = read_metrics({"metrics": {"f": filtered}}, problems)
    assert problems == []
    first, second = read["f"].events
    assert (first.where, second.event, second.where is not None) == (None, "app_opened", True)
    assert read["f"].event_names == ("app_opened",)
    bad = {
        "empty": {**good, "events": []},
        "twice": {**good, "events": ["a", "a"]},
        "not-a-name": {**good, "events": ["a", 3]},
        "too-many": {**good, "events": [f"e{i}" for i in range(21)]},
        "backwards": {**good, "from_day": 14, "to_day": 7},
        "too-late": {**good, "to_day": 366},
        "negative": {**good, "from_day": -1},
        "fraction": {**good, "to_day": 7.5},
        "single-event": {**good, "event": "app_opened"},
        "windowed": {**good, "window_seconds": 60},
        "capped": {**good, "winsorisation": {"value": 1}},
        "conversion-with-days": {"type": "conversion", "event": "x", "direction": "increase", "to_day": 3},
        "bad-filter": {**good, "events": [{"event": "a", "where": {"n": {"gte": "10"}}}]},
        "odd-event": {**good, "events": [{"event": "a", "when": 1}, {"where": {}}]},
        "top-where": {**good, "where": {"n": {"exists": True}}},
        "ratio-of-retention": {
            "type": "ratio",
            "numerator": "week-2",
            "denominator": "x",
            "direction": "increase",
        },
        "week-2": good,
        "x": {"type": "count", "event": "x", "direction": "increase"},
    }
    problems = []
    read = read_metrics({"metrics": bad}, problems)
    assert set(read) == {"week-2", "x"}
    found = {(p.path, p.message) for p in problems}
    assert {path for path, _ in found} == {
        "metrics.empty.events",
        "metrics.twice.events[1]",
        "metrics.not-a-name.events[1]",
        "metrics.too-many.events",
        "metrics.backwards.to_day",
        "metrics.too-late.to_day",
        "metrics.negative.from_day",
        "metrics.fraction.to_day",
        "metrics.single-event.event",
        "metrics.windowed.window_seconds",
        "metrics.capped.winsorisation",
        "metrics.conversion-with-days.to_day",
        "metrics.ratio-of-retention.numerator",
        "metrics.bad-filter.events[0].where.n.gte",
        "metrics.odd-event.events[0].when",
        "metrics.odd-event.events[1]",
        "metrics.top-where.where",
    }
    assert (
        "metrics.backwards.to_day",
        "must be after from_day (14): a unit is active in [from_day, to_day) days after exposure",
    ) in found
    assert ("metrics.twice.events[1]", '"a" is listed twice') in found
