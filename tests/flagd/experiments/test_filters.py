"""Event filters and value properties read from a metric definition: every problem located, nothing
half-applied."""

from __future__ import annotations

from typing import Any

import pytest

from flagd.experiments.filters import Condition, EventFilter, read_filter
from flagd.experiments.reading import read_metrics
from flagd_sdk.evaluation import FlagSetError, Problem


def metric(**members: Any) -> dict[str, Any]:
    return {"metrics": {"m": {"type": "sum", "event": "order_paid", "direction": "increase", **members}}}


def test_should_read_every_operator_into_sorted_conditions() -> None:
    read = read_filter(
        {
            "currency": {"equals": "EUR"},
            "country": {"in": ["NL", "DE"], "not_in": ["BE"]},
            "amount": {"gte": 10, "lt": 1000.5},
            "coupon": {"exists": True},
            "gift": {"equals": False},
        },
        "metrics.m.where",
    )
    assert read == EventFilter(
        (
            Condition("amount", "gte", 10.0),
            Condition("amount", "lt", 1000.5),
            Condition("country", "in", ("NL", "DE")),
            Condition("country", "not_in", ("BE",)),
            Condition("coupon", "exists", True),
            Condition("currency", "equals", "EUR"),
            Condition("gift", "equals", False),
        )
    )


def test_should_key_equal_filters_alike_whatever_their_order_and_different_filters_apart() -> None:
    one = read_filter({"a": {"equals": 1}, "b": {"gt": 2}}, "w")
    same = read_filter({"b": {"gt": 2.0}, "a": {"equals": 1}}, "w")
    other = read_filter({"a": {"equals": 2}, "b": {"gt": 2}}, "w")
    assert one.key == same.key != other.key
    assert len(one.key) == 16


@pytest.mark.parametrize(
    ("where", "path", "says"),
    [
        ("EUR", "metrics.m.where", "must be an object mapping event properties to conditions"),
        ({}, "metrics.m.where", "must be an object mapping event properties to conditions"),
        ({"": {"equals": 1}}, 'metrics.m.where[""]', "name a property of the event"),
        ({"x" * 201: {"equals": 1}}, "metrics.m.where", "name a property of the event"),
        ({"currency": "EUR"}, "metrics.m.where.currency", "must be an object of one or more of equals"),
        ({"currency": {}}, "metrics.m.where.currency", "must be an object of one or more of equals"),
        ({"currency": {"is": "EUR"}}, "metrics.m.where.currency.is", "unknown operator; use equals"),
        ({"currency": {"equals": None}}, "metrics.m.where.currency.equals", "must be text, a number"),
        ({"currency": {"equals": ["EUR"]}}, "metrics.m.where.currency.equals", "must be text, a number"),
        ({"country": {"in": []}}, "metrics.m.where.country.in", "must be a list of 1 to 1000 values"),
        ({"country": {"in": "NL"}}, "metrics.m.where.country.in", "must be a list of 1 to 1000 values"),
        ({"country": {"not_in": [{"a": 1}]}}, "metrics.m.where.country.not_in", "must be a list of"),
        ({"country": {"in": list(range(1001))}}, "metrics.m.where.country.in", "must be a list of"),
        ({"amount": {"gte": "10"}}, "metrics.m.where.amount.gte", "must be a finite number"),
        ({"amount": {"lt": True}}, "metrics.m.where.amount.lt", "must be a finite number"),
        ({"amount": {"gt": float("inf")}}, "metrics.m.where.amount.gt", "must be a finite number"),
        ({"coupon": {"exists": "yes"}}, "metrics.m.where.coupon.exists", "must be true or false"),
        ({f"p{i}": {"exists": True} for i in range(21)}, "metrics.m.where", "at most 20 are allowed"),
    ],
)
def test_should_refuse_a_bad_filter_with_a_located_problem_and_no_metric(
    where: Any, path: str, says: str
) -> None:
    problems: list[Problem] = []
    metrics = read_metrics(metric(where=where), problems)
    assert metrics == {}
    located = [p for p in problems if p.path.startswith(path)]
    assert located, problems
    assert says in located[0].message, problems
    with pytest.raises(FlagSetError) as raised:
        read_filter(where, "metrics.m.where")
    assert [str(p) for p in raised.value.problems] == [str(p) for p in problems]


@pytest.mark.parametrize(
    ("members", "path", "says"),
    [
        ({"value_property": ""}, "metrics.m.value_property", "name the numeric event property"),
        ({"value_property": 3}, "metrics.m.value_property", "name the numeric event property"),
        (
            {"type": "conversion", "value_property": "amount"},
            "metrics.m.value_property",
            "a conversion metric reads no value; value_property is for sum, mean, nps, csat, ces",
        ),
        (
            {"type": "count", "value_property": "amount"},
            "metrics.m.value_property",
            "a count metric reads no value",
        ),
    ],
)
def test_should_refuse_a_bad_value_property(members: dict[str, Any], path: str, says: str) -> None:
    problems: list[Problem] = []
    assert read_metrics(metric(**members), problems) == {}
    assert [p.path for p in problems] == [path]
    assert says in problems[0].message


def test_should_refuse_a_filter_on_a_ratio_which_reads_its_two_metrics() -> None:
    document = metric()
    document["metrics"]["r"] = {
        "type": "ratio",
        "numerator": "m",
        "denominator": "m2",
        "direction": "increase",
        "where": {"a": {"exists": True}},
    }
    document["metrics"]["m2"] = {"type": "count", "event": "visit", "direction": "increase"}
    problems: list[Problem] = []
    assert set(read_metrics(document, problems)) == {"m", "m2"}
    assert [(p.path, p.message) for p in problems] == [
        ("metrics.r.where", "a ratio reads its two metrics; filter their events there")
    ]


def test_should_keep_a_filtered_metric_with_its_value_property() -> None:
    problems: list[Problem] = []
    read = read_metrics(metric(where={"currency": {"equals": "EUR"}}, value_property="amount"), problems)
    assert problems == []
    assert read["m"].where == EventFilter((Condition("currency", "equals", "EUR"),))
    assert read["m"].value_property == "amount"
