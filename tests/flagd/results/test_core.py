"""The pure core of results, without PostgreSQL: judgments, decisions, adjustment, impact, progress, the
segment bound and the wire casing, on typed values built by hand."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from flagd.experiments.catalog import AnalysedMetric, ExperimentPlan, ResolvedMetric
from flagd.experiments.model import Experiment, Metric, Role
from flagd.experiments.serving import Lifecycle
from flagd.results import wire
from flagd.results.analysis import Options, adjust, analyse_metric, impact, progress, units_per_day
from flagd.results.decision import decide, guardrail_verdicts
from flagd.results.judgments import (
    health_checks,
    judge_arrived,
    judge_exposures_arrive,
    judge_multiple,
    judge_srm,
    judge_volume,
)
from flagd.results.model import (
    ZERO,
    Check,
    Estimate,
    ExposureTally,
    Freshness,
    MetricResult,
    NoEstimate,
    PhaseData,
    Progress,
    Reduction,
    SampleRatio,
    SegmentData,
    StatisticProblem,
    VariantSums,
)
from flagd.results.report import MAX_SEGMENT_COMPARISONS, analyse_phase
from stats import benjamini_hochberg, holm

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TODAY = NOW.date()
CONVERSION = Metric("checkout", "Checkout", "conversion", "increase", event="checkout")
REVENUE = Metric("revenue", "Revenue", "sum", "increase", event="order")
ERRORS = Metric("errors", "Errors", "count", "decrease", event="error")
MEAN = Metric("order-value", "Order value", "mean", "increase", event="order")
OPTIONS = Options()


def conversions(n: int, converted: int, pre: int = 0) -> VariantSums:
    """n units of which `converted` converted (y in {0, 1}), `pre` of them converted before exposure."""
    return VariantSums(n=n, y=converted, y2=converted, d=n, d2=n, yd=converted, x=pre, x2=pre, xy=0)


def values(n: int, mean: float, sd: float) -> VariantSums:
    """n units whose values have this mean and sample standard deviation."""
    total = n * mean
    return VariantSums(n=n, y=total, y2=sd * sd * (n - 1) + total * total / n, d=n, d2=n, yd=total)


def estimate(effect: float, low: float, high: float, p: float = 0.01) -> Estimate:
    return Estimate(effect, low, high, p)


def metric_result(
    metric: Metric, role: Role, absolute: Estimate | NoEstimate, relative: Estimate | NoEstimate | None = None
) -> MetricResult:
    """A metric result with one treatment "b" whose sequential estimates are given."""
    base = analyse_metric(metric, role, Reduction(metric.key, {}), "a", ["b"], OPTIONS)
    comparison = base.comparisons[0]
    return replace(
        base,
        comparisons=(
            replace(
                comparison,
                absolute=replace(comparison.absolute, sequential=absolute),
                relative=replace(
                    comparison.relative, sequential=relative if relative is not None else absolute
                ),
            ),
        ),
    )


def plan(*metrics: tuple[Role, Metric], variants: int = 2, allocation_bp: int = 10_000) -> ExperimentPlan:
    names = [chr(ord("a") + i) if variants <= 26 else f"v{i}" for i in range(variants)]
    experiment = Experiment(
        key="exp",
        flag="flag",
        variants=tuple((name, 1) for name in names),
        salt="s",
        allocation_bp=allocation_bp,
        state="running",
        phase=1,
    )
    started = (NOW - timedelta(days=10)).isoformat()
    return ExperimentPlan(
        experiment,
        Lifecycle("running", 1, "s", None, started),
        tuple(AnalysedMetric(role, ResolvedMetric(m, (m,))) for role, m in metrics),
    )


def phase_data(
    units: dict[str, int], reductions: dict[str, Reduction], *, segments: SegmentData | None = None
) -> PhaseData:
    daily = {TODAY - timedelta(days=d): sum(units.values()) // 10 for d in range(10, 0, -1)}
    return PhaseData(
        phase=1,
        now=NOW,
        tally=ExposureTally(units, 0, daily, since_start=sum(units.values())),
        reductions=reductions,
        volumes={"checkout": {day: 100 for day in daily}},
        never_arrived=(),
        phase_start=min(daily),
        freshness=Freshness(NOW, NOW),
        segments=segments,
        started_at=NOW - timedelta(days=10),
    )


# --- typed values ------------------------------------------------------------------------------------


def test_should_add_variant_sums_field_by_field_and_start_from_zero() -> None:
    a, b = conversions(10, 3, 1), values(5, 2.0, 1.0)
    total = a + b
    for field in VariantSums.FIELDS:
        assert getattr(total, field) == getattr(a, field) + getattr(b, field)
    assert ZERO + a == a
    assert a.with_units_without_events(4, 1.0) == replace(a, n=14, d=14, d2=14)


# --- health judgments ------------------------------------------------------------------------------


def test_should_flag_a_day_below_half_of_its_trailing_median() -> None:
    daily = {TODAY - timedelta(days=d): 100 for d in range(6, 0, -1)}
    assert judge_volume("exposures", daily, TODAY).ok
    daily[TODAY - timedelta(days=1)] = 40
    check = judge_volume("exposures", daily, TODAY)
    assert not check.ok
    yesterday = TODAY - timedelta(days=1)
    assert check.found == (
        f"Fewer units than usual were exposed on {yesterday:%b} {yesterday.day} (40, against a typical 100)."
    )
    assert check.todo.startswith("Check the rollout and the SDK logs for that day")
    spiked = judge_volume("exposures", {**daily, yesterday: 250}, TODAY, "users")
    assert spiked.found.count("More users than usual were exposed") == 1
    events = judge_volume("purchase events", {**daily, yesterday: 40}, TODAY)
    assert events.found.startswith("Fewer “purchase” events than usual arrived on")


def test_should_not_judge_volume_without_three_trailing_days_or_on_today() -> None:
    daily = {TODAY - timedelta(days=2): 100, TODAY - timedelta(days=1): 1, TODAY: 0}
    check = judge_volume("exposures", daily, TODAY)
    assert check.ok
    assert check.found.startswith("Too few days yet to spot an unusual one")


def test_should_fail_units_in_several_variants_above_one_percent() -> None:
    assert judge_multiple(1, 99).ok
    check = judge_multiple(2, 98)
    assert not check.ok
    assert check.found == "2 units (2.0%) saw more than one variant and are left out of the results."
    assert judge_multiple(1, 99, ("user", "users")).found.startswith(
        "1 user (1.0%) saw more than one variant and is"
    )
    assert judge_multiple(0, 99, ("user", "users")).found == "No user saw more than one variant."


def test_should_judge_the_sample_ratio() -> None:
    untestable = judge_srm(NoEstimate(StatisticProblem("too_few_units", "needs units")))
    assert untestable.ok
    assert untestable.found.startswith("Too few units yet to test")
    assert judge_srm(SampleRatio(0.4, False, 0.7)).ok
    failed = judge_srm(
        SampleRatio(1e-6, True, 24.0), {"old": 49_100, "new": 51_900}, {"old": 1, "new": 1}, "users"
    )
    assert not failed.ok
    assert failed.found == (
        "The split of users between variants is off (49,100 vs 51,900 where 50/50 was planned): "
        "a split this uneven happens by chance in fewer than 1 in 1,000 experiments."
    )
    assert "about 1 in 50 experiments" in judge_srm(SampleRatio(0.02, True, 5.0)).found


def test_should_name_metric_events_that_never_arrived() -> None:
    assert judge_arrived([]).ok
    check = judge_arrived(["checkout", "order"])
    assert not check.ok
    assert check.found == "No “checkout” or “order” event has arrived yet."
    assert judge_arrived(["checkout"]).found == "No “checkout” event has arrived yet."


def test_should_fail_when_metric_events_arrive_but_no_exposure() -> None:
    assert judge_exposures_arrive(0, 0).ok
    assert judge_exposures_arrive(5, 100).ok
    assert judge_exposures_arrive(1, 100, ("user", "users")).found == "1 user exposed in this phase so far."
    assert not judge_exposures_arrive(0, 100).ok


def test_should_count_only_events_received_since_the_phase_began_in_the_exposure_check() -> None:
    data = phase_data({}, {})
    # Events on the start day, but before the start, are not "since the phase started".
    before = replace(data, volumes={"checkout": {data.phase_start: 500}}, events_since_start=0)
    assert {c.check: c for c in health_checks(before, SampleRatio(0.5, False, 0.1))}["exposures arrive"].ok
    after = replace(data, events_since_start=12)
    check = {c.check: c for c in health_checks(after, SampleRatio(0.5, False, 0.1))}["exposures arrive"]
    assert not check.ok
    assert check.found.startswith("12 metric events arrived since the phase started")
    unrecorded = replace(data, started_at=None, volumes={"checkout": {data.phase_start: 500}})
    assert not {c.check: c for c in health_checks(unrecorded, SampleRatio(0.5, False, 0.1))}[
        "exposures arrive"
    ].ok


# --- decisions -------------------------------------------------------------------------------------

FAILED_CHECKS = [
    Check("sample ratio", False, "chi-squared p = 1e-06", "look for exposures logged only in some variants"),
    Check("units in several variants", False, "5 units (5.0%)", "use the same unit id"),
    Check("volume: exposures", False, "2026-11-30: 10 (dropped)", "check the tracking"),
    Check("volume: checkout events", False, "2026-11-30: 400 (spiked)", "check the tracking"),
    Check("metric events arrive", False, "no event named 'checkout'", "check the event name"),
    Check("exposures arrive", False, "100 metric events, but no exposure", "log an exposure"),
]


@pytest.mark.parametrize("failed", FAILED_CHECKS, ids=lambda c: c.check)
def test_should_say_investigate_for_each_failed_check_whatever_the_metrics_say(failed: Check) -> None:
    winner = metric_result(CONVERSION, "primary", estimate(0.05, 0.02, 0.08), estimate(0.5, 0.2, 0.8))
    checks = [Check("sample ratio", True, "ok"), failed, Check("other", False, "also", "fix")]
    decision = decide([winner], checks, None)
    assert decision.action == "investigate"
    assert decision.reason.startswith("Investigate before deciding: ")
    assert failed.found[1:] in decision.reason
    assert "check failed" not in decision.reason
    assert decision.failed_checks == (failed.check, "other")
    assert decision.variant is None


def test_should_say_stop_when_a_guardrail_is_harmed_even_if_the_primary_wins() -> None:
    winner = metric_result(CONVERSION, "primary", estimate(0.05, 0.02, 0.08))
    harmed = metric_result(ERRORS, "guardrail", estimate(0.3, 0.1, 0.5))  # errors up: bad
    decision = decide([winner, harmed], [], None)
    assert decision.action == "stop"
    assert decision.variant == "b"
    assert decision.reason == (
        "Stop variant b: it harms the guardrail errors, which it raises by 30% (between 10% and 50%). "
        "Stop the experiment (or the variant) and find out why."
    )
    assert [v.verdict for v in guardrail_verdicts([winner, harmed])] == ["harmed"]


def test_should_judge_guardrails_by_their_direction() -> None:
    better = metric_result(ERRORS, "guardrail", estimate(-0.3, -0.5, -0.1))
    unclear = metric_result(REVENUE, "guardrail", estimate(0.1, -0.5, 0.7))
    missing = metric_result(REVENUE, "guardrail", NoEstimate(StatisticProblem("no_variance", "no variance")))
    assert [v.verdict for v in guardrail_verdicts([better, unclear, missing])] == [
        "not harmed",
        "inconclusive",
        "inconclusive",
    ]


def test_should_say_ship_with_the_relative_change_and_its_always_valid_interval() -> None:
    winner = metric_result(CONVERSION, "primary", estimate(0.05, 0.02, 0.08), estimate(0.25, 0.1, 0.4))
    decision = decide([winner], [Check("sample ratio", True, "ok")], None)
    assert decision.action == "ship"
    assert decision.variant == "b"
    assert decision.reason == (
        "Ship variant b: it raises checkout by 25% (between 10% and 40%) and harms no guardrail."
    )


def test_should_quote_the_absolute_change_when_the_relative_one_cannot_be_estimated() -> None:
    problem = NoEstimate(StatisticProblem("control_mean_zero", "control is zero"))
    winner = metric_result(REVENUE, "primary", estimate(1.5, 0.5, 2.5), problem)
    assert decide([winner], [], None).reason == (
        "Ship variant b: it raises revenue by 1.5 per unit (between 0.5 and 2.5) and harms no guardrail."
    )


def test_should_quote_the_absolute_scale_when_the_relative_interval_is_unbounded() -> None:
    winner = metric_result(REVENUE, "primary", estimate(1.5, 0.5, 2.5), estimate(3.0, 0.2, math.inf))
    reason = decide([winner], [], None).reason
    assert "unbounded" not in reason
    assert "by 1.5 per unit (between 0.5 and 2.5)" in reason
    nps = Metric("nps", "NPS", "nps", "increase", event="survey")
    survey = metric_result(nps, "primary", estimate(36.7, 12.0, 61.4), estimate(6.2, -math.inf, math.inf))
    assert "by 36.7 NPS points (between 12 and 61.4)" in decide([survey], [], None).reason
    share = metric_result(CONVERSION, "primary", estimate(0.012, 0.004, 0.02), estimate(0.1, 0.0, math.inf))
    assert "by 1.2 percentage points (between 0.4 and 2)" in decide([share], [], None).reason


def test_should_analyse_nps_in_points_mean_and_lift_alike() -> None:
    nps = Metric("nps", "NPS", "nps", "increase", event="survey")

    def answers(promoters: int, passives: int, detractors: int) -> VariantSums:
        n = promoters + passives + detractors
        y = promoters - detractors
        return VariantSums(n=n, y=y, y2=promoters + detractors, d=n, d2=n, yd=y)

    result = analyse_metric(
        nps,
        "primary",
        Reduction("nps", {"a": answers(300, 400, 300), "b": answers(500, 300, 200)}),
        "a",
        ["b"],
        OPTIONS,
    )
    means = [v.mean for v in result.variants]
    assert means == pytest.approx([0.0, 30.0])
    absolute = result.comparisons[0].absolute.fixed_horizon
    assert isinstance(absolute, Estimate)
    assert absolute.effect == pytest.approx(30.0)
    assert absolute.ci_low < 30.0 < absolute.ci_high
    assert absolute.ci_high - absolute.ci_low > 1.0  # in points, not on the -1..1 scale


def test_should_say_keep_running_with_the_days_it_needs_or_more_data() -> None:
    unclear = metric_result(CONVERSION, "primary", estimate(0.01, -0.02, 0.04))
    with_estimate = decide([unclear], [], Progress(0.05, 10_000, 2_000, 12.2))
    assert with_estimate.action == "keep running"
    assert with_estimate.reason == (
        "No variant is a clear winner on checkout yet and no guardrail is harmed: "
        "keep running for about 13 more days at the current traffic."
    )
    for progress_value in (None, Progress(0.05, None, 2_000, None), Progress(0.05, 1_000, 2_000, 0.0)):
        assert decide([unclear], [], progress_value).reason.endswith("keep running to collect more data.")


# --- analysis ----------------------------------------------------------------------------------------


def two_metrics() -> list[MetricResult]:
    reductions = {
        "a": conversions(1000, 100),
        "b": conversions(1000, 130),
        "c": conversions(1000, 104),
    }
    revenue = {"a": values(1000, 10.0, 4.0), "b": values(1000, 10.6, 4.0), "c": values(1000, 10.1, 4.0)}
    return [
        analyse_metric(CONVERSION, "primary", Reduction("checkout", reductions), "a", ["b", "c"], OPTIONS),
        analyse_metric(REVENUE, "secondary", Reduction("revenue", revenue), "a", ["b", "c"], OPTIONS),
    ]


@pytest.mark.parametrize(("correction", "method"), [("holm", holm), ("bh", benjamini_hochberg)])
def test_should_adjust_relative_p_values_across_metrics_and_variants(correction: Any, method: Any) -> None:
    metrics = two_metrics()
    adjusted = adjust(metrics, correction)
    for test in ("fixed_horizon", "sequential"):
        raw = [getattr(c.relative, test).p_value for m in metrics for c in m.comparisons]
        expected = method(raw).p_values
        got = [getattr(c.relative, test).p_value_adjusted for m in adjusted for c in m.comparisons]
        assert got == pytest.approx(list(expected), rel=1e-12)
        assert all(
            getattr(c.absolute, test).p_value_adjusted is None for m in adjusted for c in m.comparisons
        )


def test_should_leave_p_values_unadjusted_with_no_correction_and_skip_missing_estimates() -> None:
    metrics = two_metrics()
    adjusted = adjust(metrics, "none")
    for before, after in zip(metrics, adjusted, strict=True):
        for c0, c1 in zip(before.comparisons, after.comparisons, strict=True):
            assert isinstance(c0.relative.sequential, Estimate)
            assert isinstance(c1.relative.sequential, Estimate)
            assert c1.relative.sequential.p_value_adjusted == c0.relative.sequential.p_value
    empty = analyse_metric(REVENUE, "secondary", Reduction("revenue", {}), "a", ["b"], OPTIONS)
    assert isinstance(empty.comparisons[0].relative.sequential, NoEstimate)
    assert adjust([empty], "holm") == (empty,)


def test_should_project_impact_per_unit_per_event_and_not_for_ratios() -> None:
    comparison = two_metrics()[1].comparisons[0]
    absolute = comparison.absolute.sequential
    assert isinstance(absolute, Estimate)
    per_unit = impact(REVENUE, comparison, 200.0, 0.5, values(1000, 10.0, 4.0))
    assert per_unit is not None
    assert per_unit.eligible_units_per_day == 400.0
    assert per_unit.events_per_unit is None
    assert per_unit.per_day.effect == pytest.approx(absolute.effect * 400)
    assert per_unit.per_year.low == pytest.approx(absolute.ci_low * 400 * 365)
    control = VariantSums(n=100, y=500.0, y2=3000.0, d=250.0, d2=700.0, yd=1300.0)
    per_event = impact(MEAN, comparison, 200.0, 0.5, control)
    assert per_event is not None
    assert per_event.events_per_unit == 2.5
    assert per_event.per_day.effect == pytest.approx(absolute.effect * 400 * 2.5)
    ratio = Metric("rpv", "RPV", "ratio", "increase", numerator="revenue", denominator="visits")
    assert impact(ratio, comparison, 200.0, 0.5, control) is None
    assert impact(REVENUE, comparison, None, 0.5, control) is None


def test_should_compute_progress_for_per_unit_metrics_only() -> None:
    weights = {"a": 1, "b": 1}
    done = progress(CONVERSION, conversions(2000, 200), weights, 4000, 400.0, OPTIONS)
    assert done.needed_units is not None
    assert done.needed_units > 4000
    assert done.days_remaining == pytest.approx((done.needed_units - 4000) / 400.0)
    skewed = progress(CONVERSION, conversions(2000, 200), {"a": 1, "b": 3}, 4000, 400.0, OPTIONS)
    assert skewed.needed_units is not None
    assert skewed.needed_units == pytest.approx(done.needed_units * 2, rel=1e-3)
    assert progress(MEAN, conversions(2000, 200), weights, 4000, 400.0, OPTIONS).needed_units is None
    assert progress(CONVERSION, conversions(1, 1), weights, 1, 400.0, OPTIONS).needed_units is None
    assert progress(REVENUE, values(2000, 10.0, 4.0), weights, 4000, None, OPTIONS).days_remaining is None


def test_should_ship_a_large_effect_and_report_every_part_of_the_phase() -> None:
    experiment = plan(("primary", CONVERSION), ("guardrail", REVENUE))
    units = {"a": 5000, "b": 5000}
    data = phase_data(
        units,
        {
            "checkout": Reduction("checkout", {"a": conversions(5000, 500), "b": conversions(5000, 700)}),
            "revenue": Reduction("revenue", {"a": values(5000, 10.0, 3.0), "b": values(5000, 10.0, 3.0)}),
        },
    )
    results = analyse_phase(experiment, data, OPTIONS)
    assert results.decision.action == "ship", results.decision
    assert [c.check for c in results.health][:2] == ["sample ratio", "units in several variants"]
    assert all(c.ok for c in results.health)
    assert results.progress is not None
    assert results.units_per_day == pytest.approx(1000.0)  # 10,000 units over the 10 days it ran
    assert [g.verdict for g in results.guardrails] == ["inconclusive"]
    assert results.metrics[0].comparisons[0].impact is not None


def test_should_estimate_traffic_from_units_that_arrived_in_the_phase() -> None:
    started = NOW - timedelta(days=2)
    backdated = {TODAY - timedelta(days=9): 1, TODAY: 2000}
    tally = ExposureTally({"a": 1000, "b": 1001}, 0, backdated, since_start=2000)
    assert units_per_day(tally, started, None, NOW) == pytest.approx(1000.0)
    assert units_per_day(tally, started, NOW - timedelta(days=1), NOW) == pytest.approx(2000.0)
    assert units_per_day(replace(tally, since_start=0), started, None, NOW) is None
    minutes_in = units_per_day(tally, NOW - timedelta(minutes=5), None, NOW)
    assert minutes_in == pytest.approx(2000 * 24)  # over an hour at least
    # A phase whose start was not recorded: over the complete days, as before.
    assert units_per_day(tally, None, None, NOW) == 1.0


def test_should_bound_a_breakdown_to_its_comparison_budget_largest_values_first() -> None:
    experiment = plan(("primary", CONVERSION), ("secondary", REVENUE), variants=301)
    names = experiment.variant_names
    population = {f"seg{i:02}": {v: 10 + i for v in names} for i in range(30)}
    reductions = {
        m: {
            s: Reduction(m, {v: conversions(n, n // 10) for v, n in counts.items()})
            for s, counts in population.items()
        }
        for m in ("checkout", "revenue")
    }
    data = phase_data({v: 300 for v in names}, {}, segments=SegmentData("seg", population, reductions))
    segments = analyse_phase(experiment, data, OPTIONS).segments
    assert segments is not None
    per_value = 2 * 300
    assert len(segments.values) == MAX_SEGMENT_COMPARISONS // per_value == 3
    assert segments.omitted == 27
    assert "27 smaller segment value(s) are left out" in segments.warning
    assert [v.value for v in segments.values] == ["seg29", "seg28", "seg27"]
    assert len(wire.dumps(segments)) < 2_000_000


# --- the wire ----------------------------------------------------------------------------------------

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


def test_should_write_results_in_camel_case_with_null_for_unbounded_ends() -> None:
    experiment = plan(("primary", CONVERSION), ("secondary", REVENUE))
    data = phase_data(
        {"a": 50, "b": 50},
        {"checkout": Reduction("checkout", {"a": conversions(50, 0), "b": conversions(50, 5)})},
    )
    body = wire.to_wire(analyse_phase(experiment, data, OPTIONS))
    assert all(CAMEL.match(k) for k in keys(body) - {"(none)"}), sorted(
        k for k in keys(body) if not CAMEL.match(k)
    )
    assert {"asOf", "unitsInSeveralVariants", "sampleRatio", "unitsPerDay"} <= set(body)
    relative = body["metrics"][0]["comparisons"][0]["relative"]["sequential"]
    assert relative.get("problem") or relative["ciHigh"] is None or math.isfinite(relative["ciHigh"])
    assert "failedChecks" not in body["decision"] or body["decision"]["action"] == "investigate"
    assert "variant" not in wire.to_wire(decide([], [], None))
    assert wire.to_wire(Estimate(1.0, -math.inf, math.inf, 0.5)) == {
        "effect": 1.0,
        "ciLow": None,
        "ciHigh": None,
        "pValue": 0.5,
    }
    assert wire.to_wire({"day": date(2026, 12, 1)}) == {"day": date(2026, 12, 1)}  # orjson writes it
