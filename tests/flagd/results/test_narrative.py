"""The results in words: numbers, plurals, durations, and the headline of each decision, on typed values."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from flagd.experiments.model import Metric
from flagd.results.decision import decide
from flagd.results.model import (
    Check,
    Decision,
    ExperimentResults,
    Freshness,
    Impact,
    MetricResult,
    NoEstimate,
    Progress,
    Projection,
    SampleRatio,
    StatisticProblem,
    VariantUnits,
)
from flagd.results.narrative import Names, chance, headline, humane, impact, next_step, verdict
from flagd.results.words import MINUS, Change, number, percent, plural, remaining, unit_noun
from tests.flagd.results.test_core import CONVERSION, ERRORS, NOW, REVENUE, estimate, metric_result

NAMES = Names({"checkout": "Checkout rate", "revenue": "Revenue", "errors": "Errors"}, ("user", "users"))
NPS = Metric("nps", "NPS", "nps", "increase", event="survey")


def results(
    metrics: list[MetricResult],
    checks: tuple[Check, ...] = (),
    progress: Progress | None = None,
    units: tuple[int, int] = (1_000, 1_000),
) -> ExperimentResults:
    """Results of an experiment with control "a" and treatment "b", decided as `decide` does."""
    return ExperimentResults(
        experiment="exp",
        phase=1,
        state="running",
        as_of=NOW,
        freshness=Freshness(NOW, NOW),
        control="a",
        alpha=0.05,
        correction="holm",
        units=(VariantUnits("a", units[0]), VariantUnits("b", units[1])),
        units_in_several_variants=0,
        sample_ratio=SampleRatio(0.5, False, 0.4),
        decision=decide(metrics, checks, progress),
        health=checks,
        guardrails=(),
        progress=progress,
        units_per_day=100.0,
        metrics=tuple(metrics),
    )


# --- words ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.13684, "0.137"),
        (442_705.2, "442,705"),
        (1_107.4, "1,107"),
        (12.345, "12.3"),
        (2.5, "2.5"),
        (0.0, "0"),
        (-228.4, f"{MINUS}228"),
        (math.inf, "unbounded"),
    ],
)
def test_should_write_numbers_with_three_significant_digits_and_separators(value: float, text: str) -> None:
    assert number(value) == text


def test_should_write_percentages_without_needless_digits() -> None:
    assert [percent(v) for v in (0.1532, 0.0244, 0.0035, 56.27, -0.03)] == [
        "15.3%",
        "2.4%",
        "0.35%",
        "5,627%",
        f"{MINUS}3%",
    ]


def test_should_say_one_unit_and_many_units() -> None:
    assert [plural(n, "user") for n in (0, 1, 2, 1_204)] == ["0 users", "1 user", "2 users", "1,204 users"]
    assert plural(1, "company", "companies") == "1 company"
    assert plural(3, "company", "companies") == "3 companies"


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (0.4, "less than a day"),
        (1.0, "about 1 more day"),
        (12.2, "about 13 more days"),
        (16, "about 2 more weeks"),
        (100, "about 3 more months"),
        (442_705, "more than a year"),
        (math.inf, "more than a year"),
        (None, "more than a year"),
    ],
)
def test_should_say_how_long_in_days_weeks_or_months(days: float | None, text: str) -> None:
    assert remaining(days) == text


def test_should_call_units_what_the_experiment_randomises() -> None:
    assert unit_noun("targetingKey") == ("user", "users")
    assert unit_noun("userId") == ("user", "users")
    assert unit_noun("session_id") == ("session", "sessions")
    assert unit_noun("companyId") == ("company", "companies")
    assert unit_noun("cart") == ("unit", "units")
    assert humane("order-value") == "Order value"


def test_should_quote_an_unbounded_relative_change_on_the_absolute_scale() -> None:
    bounded = metric_result(CONVERSION, "primary", estimate(0.012, 0.004, 0.02), estimate(0.15, 0.02, 0.3))
    assert Change.of(bounded.comparisons[0], "conversion").by() == "15% (between 2% and 30%)"  # type: ignore[union-attr]
    open_ended = metric_result(
        CONVERSION, "primary", estimate(0.012, -0.004, 0.02), estimate(0.1, -0.1, math.inf)
    )
    change = Change.of(open_ended.comparisons[0], "conversion")
    assert change is not None
    assert change.span("Classic") == (
        "between 0.4 percentage points lower and 2 percentage points higher than Classic"
    )
    assert change.signed() == f"+1.2 percentage points ({MINUS}0.4 to +2)"


# --- headlines -----------------------------------------------------------------------------------------


def test_should_headline_a_ship_with_the_variant_metric_change_and_interval() -> None:
    winner = metric_result(CONVERSION, "primary", estimate(0.012, 0.002, 0.022), estimate(0.15, 0.02, 0.3))
    shipped = results([winner])
    assert shipped.decision.action == "ship"
    assert headline(shipped, NAMES) == "B raised Checkout rate by 15% (between 2% and 30%). Ship B."
    assert next_step(shipped, NAMES).startswith("No guardrail got worse.")


def test_should_headline_a_ship_of_a_metric_that_should_fall() -> None:
    fewer = metric_result(ERRORS, "primary", estimate(-0.3, -0.5, -0.1), estimate(-0.2, -0.3, -0.05))
    assert headline(results([fewer]), NAMES) == "B lowered Errors by 20% (between 5% and 30%). Ship B."


@pytest.mark.parametrize(
    ("metric", "absolute", "words"),
    [
        (REVENUE, estimate(1.5, 0.5, 2.5), "by 1.5 per user (between 0.5 and 2.5)"),
        (CONVERSION, estimate(0.012, 0.004, 0.02), "by 1.2 percentage points (between 0.4 and 2)"),
        (NPS, estimate(36.7, 12.0, 61.4), "by 36.7 NPS points (between 12 and 61.4)"),
    ],
    ids=["value per user", "percentage points", "NPS points"],
)
def test_should_headline_on_the_metrics_own_scale_when_the_relative_interval_is_unbounded(
    metric: Metric, absolute: object, words: str
) -> None:
    winner = metric_result(metric, "primary", absolute, estimate(3.0, 0.2, math.inf))  # type: ignore[arg-type]
    said = headline(results([winner]), NAMES)
    assert words in said
    assert "unbounded" not in said
    assert "inf" not in said


def test_should_headline_keep_running_with_both_ends_and_the_time_it_needs() -> None:
    unclear = metric_result(
        CONVERSION, "primary", estimate(0.003, -0.004, 0.01), estimate(0.025, -0.03, 0.08)
    )
    running = results([unclear], progress=Progress(0.05, 10_000, 2_000, 11.5))
    assert running.decision.action == "keep running"
    assert headline(running, NAMES) == (
        "No clear difference yet in Checkout rate: B is between 3% lower and 8% higher than A. "
        "Keep running for about 12 more days."
    )
    assert next_step(running, NAMES) == (
        "2,000 of the 10,000 users needed to detect a 5% change in Checkout rate: "
        "about 12 more days at current traffic."
    )
    slow = results([unclear], progress=Progress(0.05, 10_000_000, 2_000, 442_705.0))
    assert headline(slow, NAMES).endswith("it would take more than a year to be sure.")
    assert "more than a year at current traffic" in next_step(slow, NAMES)
    unknown = results([unclear])
    assert headline(unknown, NAMES).endswith("Keep running to collect more data.")


def test_should_headline_keep_running_when_there_is_nothing_to_compare_yet() -> None:
    none = metric_result(CONVERSION, "primary", NoEstimate(StatisticProblem("too_few_units", "too few")))
    said = headline(results([none], units=(0, 3)), NAMES)
    assert said == "No clear difference yet in Checkout rate: too few users yet to compare B with A. " + (
        "Keep running to collect more data."
    )


def test_should_headline_a_stop_with_the_guardrail_it_harms() -> None:
    winner = metric_result(CONVERSION, "primary", estimate(0.012, 0.002, 0.022), estimate(0.15, 0.02, 0.3))
    harmed = metric_result(ERRORS, "guardrail", estimate(0.3, 0.1, 0.5), estimate(0.25, 0.08, 0.42))
    stopped = results([winner, harmed])
    assert stopped.decision.action == "stop"
    assert headline(stopped, NAMES) == (
        "B is hurting Errors: it raised it by 25% (between 8% and 42%). Stop B and find out why."
    )


def test_should_headline_investigate_with_the_first_failed_check_in_plain_words() -> None:
    winner = metric_result(CONVERSION, "primary", estimate(0.012, 0.002, 0.022), estimate(0.15, 0.02, 0.3))
    failed = Check(
        "sample ratio",
        False,
        "The split of users between variants is off (49,100 vs 51,900 where 50/50 was planned): "
        "a split this uneven happens by chance in fewer than 1 in 1,000 experiments.",
        "Look for bots.",
    )
    checked = results(
        [winner], (Check("units in several variants", True, "No user saw more than one variant."), failed)
    )
    assert checked.decision.action == "investigate"
    assert headline(checked, NAMES) == (
        "Investigate before deciding: the split of users between variants is off (49,100 vs 51,900 where 50/50 "
        "was planned): a split this uneven happens by chance in fewer than 1 in 1,000 experiments."
    )
    assert next_step(checked, NAMES) == "Look for bots."
    days = Check(
        "volume: exposures",
        False,
        "Fewer users than usual were exposed on Nov 24 (412, against a typical 1,100); "
        "More users than usual were exposed on Nov 26 (2,400, against a typical 1,100).",
        "Check the rollout.",
    )
    assert headline(results([winner], (days,)), NAMES) == (
        "Investigate before deciding: fewer users than usual were exposed on Nov 24 (412, against a typical "
        "1,100), and on 1 more day."
    )


def test_should_headline_no_data_and_no_primary_metric() -> None:
    revenue = metric_result(REVENUE, "secondary", estimate(1.5, -0.5, 2.5))
    assert headline(results([revenue], units=(0, 0)), NAMES) == (
        "No data yet: no users have been exposed to this experiment."
    )
    assert (
        headline(results([revenue]), NAMES)
        == "There is no primary metric to decide on: give the experiment one."
    )


# --- per metric -----------------------------------------------------------------------------------------


def test_should_give_a_plain_verdict_per_metric_in_its_direction() -> None:
    def of(metric: Metric, low: float, high: float) -> str:
        result = metric_result(metric, "secondary", estimate((low + high) / 2, low, high))
        return verdict(result, result.comparisons[0])

    assert of(CONVERSION, 0.01, 0.02) == "better"
    assert of(ERRORS, 0.01, 0.02) == "worse"
    assert of(ERRORS, -0.02, -0.01) == "better"
    assert of(CONVERSION, -0.01, 0.02) == "no clear difference yet"
    missing = metric_result(CONVERSION, "primary", NoEstimate(StatisticProblem("too_few_units", "too few")))
    assert verdict(missing, missing.comparisons[0]) == "not enough data"


def test_should_show_the_chance_to_beat_control_only_with_enough_units() -> None:
    comparison = metric_result(CONVERSION, "primary", estimate(0.01, -0.01, 0.03)).comparisons[0]
    sure = replace(comparison, chance_to_beat_control=1.0)
    assert chance(sure, 0, 3) == "not enough data"
    assert chance(sure, 99, 5_000) == "not enough data"
    assert chance(sure, 5_000, 5_000) == "over 99%"
    assert chance(replace(comparison, chance_to_beat_control=0.0), 5_000, 5_000) == "under 1%"
    assert chance(replace(comparison, chance_to_beat_control=0.684), 5_000, 5_000) == "68%"
    assert chance(replace(comparison, chance_to_beat_control=None), 5_000, 5_000) == "not enough data"


def test_should_project_impact_in_the_metrics_unit() -> None:
    def with_impact(metric: Metric, effect: float, low: float | None, high: float | None) -> str | None:
        """The impact a day as one line."""
        result = metric_result(metric, "primary", estimate(0.01, -0.01, 0.03))
        projected = Impact(1_000.0, None, Projection(effect, low, high), Projection(effect * 365, None, None))
        said = impact(result, replace(result.comparisons[0], impact=projected))
        return None if said is None else f"{said[0]} ({said[1]})"

    assert with_impact(CONVERSION, 136.8, -228.4, 502.1) == (
        f"+137 conversions a day (between {MINUS}228 and +502)"
    )
    assert with_impact(CONVERSION, 1.0, -0.8, 2.8) == f"+1 conversion a day (between {MINUS}0.8 and +2.8)"
    assert with_impact(REVENUE, 412.0, 10.0, 900.0) == "+412 in value a day (between +10 and +900)"
    assert (
        with_impact(ERRORS, -3.0, -5.5, None) == f"{MINUS}3 events a day (between {MINUS}5.5 and unbounded)"
    )
    result = metric_result(NPS, "primary", estimate(1.0, -1.0, 3.0))
    assert impact(result, result.comparisons[0]) is None


def test_should_never_leak_python_values_into_a_headline() -> None:
    for decision in (Decision("keep running", "x"),):
        said = headline(replace(results([]), decision=decision), NAMES)
        for leak in ("None", "nan", "inf", "1 units"):
            assert leak not in said
