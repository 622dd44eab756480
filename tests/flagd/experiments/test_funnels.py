"""Funnel metrics read from a definition: steps, windows and the deciding step, every problem located."""

from __future__ import annotations

from typing import Any

import pytest

from flagd.experiments.filters import Condition, EventFilter
from flagd.experiments.model import FunnelStep
from flagd.experiments.reading import read_metrics
from flagd_sdk.evaluation import Problem

STEPS = [{"event": "viewed"}, {"event": "cart", "within_seconds": 3600}, {"event": "paid"}]


def funnel(**members: Any) -> dict[str, Any]:
    return {"metrics": {"f": {"type": "funnel", "direction": "increase", "steps": STEPS, **members}}}


def test_should_read_the_steps_in_order_and_decide_on_the_last_by_default() -> None:
    problems: list[Problem] = []
    document = funnel(window_seconds=86400)
    document["metrics"]["f"]["steps"] = [
        *STEPS[:2],
        {"event": "paid", "where": {"currency": {"equals": "EUR"}}},
    ]
    metric = read_metrics(document, problems)["f"]
    assert problems == []
    assert metric.steps == (
        FunnelStep("viewed"),
        FunnelStep("cart", within_seconds=3600),
        FunnelStep("paid", EventFilter((Condition("currency", "equals", "EUR"),))),
    )
    assert (metric.decide_on, metric.window_seconds, metric.event) == (3, 86400, None)
    assert metric.event_names == {"viewed", "cart", "paid"}
    assert read_metrics(funnel(decide_on=2), [])["f"].decide_on == 2


@pytest.mark.parametrize(
    ("members", "path", "says"),
    [
        ({"steps": None}, "metrics.f.steps", "give 2 to 10 steps in order"),
        ({"steps": [{"event": "a"}]}, "metrics.f.steps", "give 2 to 10 steps in order"),
        ({"steps": [{"event": "a"}] * 11}, "metrics.f.steps", "give 2 to 10 steps in order"),
        ({"steps": ["a", {"event": "b"}]}, "metrics.f.steps[0]", "must be an object {event, where?"),
        ({"steps": [{"event": ""}, {"event": "b"}]}, "metrics.f.steps[0].event", "name the event"),
        (
            {"steps": [{"event": "a", "name": "x"}, {"event": "b"}]},
            "metrics.f.steps[0].name",
            "unknown member",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b", "within_seconds": 0}]},
            "metrics.f.steps[1].within_seconds",
            "must be a whole number of seconds",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b", "within_seconds": 1.5}]},
            "metrics.f.steps[1].within_seconds",
            "must be a whole number of seconds",
        ),
        (
            {"steps": [{"event": "a"}, {"event": "b", "where": {"x": {"gt": "1"}}}]},
            "metrics.f.steps[1].where.x.gt",
            "must be a finite number",
        ),
        ({"decide_on": 4}, "metrics.f.decide_on", "must be a step number from 1 to 3"),
        ({"decide_on": 0}, "metrics.f.decide_on", "must be a step number from 1 to 3"),
        ({"decide_on": True}, "metrics.f.decide_on", "must be a step number from 1 to 3"),
        ({"event": "viewed"}, "metrics.f.event", "a funnel reads its steps' events"),
        ({"where": {"x": {"exists": True}}}, "metrics.f.where", "a funnel reads its steps; filter"),
        ({"value_property": "amount"}, "metrics.f.value_property", "a funnel metric reads no value"),
        ({"window_seconds": 0}, "metrics.f.window_seconds", "must be a whole number of seconds"),
        ({"winsorisation": {"value": 1}}, "metrics.f.winsorisation", "nothing to cap"),
    ],
)
def test_should_refuse_a_bad_funnel_with_a_located_problem_and_no_metric(
    members: dict[str, Any], path: str, says: str
) -> None:
    problems: list[Problem] = []
    assert read_metrics(funnel(**members), problems) == {}
    assert [p.path for p in problems] == [path], problems
    assert says in problems[0].message


@pytest.mark.parametrize("member", [{"steps": STEPS}, {"decide_on": 1}])
def test_should_refuse_funnel_members_on_another_type(member: dict[str, Any]) -> None:
    problems: list[Problem] = []
    document = {"metrics": {"m": {"type": "count", "event": "x", "direction": "increase", **member}}}
    assert read_metrics(document, problems) == {}
    assert [(p.path, p.message) for p in problems] == [
        ("metrics.m", "steps and decide_on are for funnel metrics (type: funnel)")
    ]


def test_should_refuse_a_funnel_as_a_part_of_a_ratio() -> None:
    document = funnel()
    document["metrics"]["r"] = {
        "type": "ratio",
        "numerator": "f",
        "denominator": "v",
        "direction": "increase",
    }
    document["metrics"]["v"] = {"type": "count", "event": "visit", "direction": "increase"}
    problems: list[Problem] = []
    assert set(read_metrics(document, problems)) == {"f", "v"}
    assert [(p.path, p.message) for p in problems] == [
        ("metrics.r.numerator", '"f" is a funnel; a ratio divides two plain metrics')
    ]
