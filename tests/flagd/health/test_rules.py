"""The data-health rules (flagd.health.rules, flagd.health.judging): pure, on hand-made counts."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

from flagd.health.judging import HOUR, WEEK, EventHistory, judge_event
from flagd.health.rules import (
    MIN_EVENTS,
    PropertyCounts,
    Share,
    judge_property,
    judge_stopped,
    judge_volume,
    seasonal_baseline,
    share_verdict,
    volume_clear,
)

HOUR_JUDGED = datetime(2026, 11, 30, 14, tzinfo=UTC)


def test_should_take_the_median_of_the_same_hour_with_the_noise_of_chance_and_of_the_weeks() -> None:
    baseline = seasonal_baseline([100, 104, 400])  # one outlier week
    assert baseline is not None
    assert baseline.expected == 104
    assert baseline.noise == math.sqrt(104 * (1 + math.pi / 6))
    assert baseline.variation == 1.4826 * statistics.median([4, 0, 296])
    assert seasonal_baseline([100]) is None  # under two weeks: no baseline
    # Weeks that differ a lot: half the usual count is one of their swings, not an alarm.
    erratic = seasonal_baseline([400, 1000, 1600, 1000])
    assert erratic is not None
    assert judge_volume("batch", HOUR_JUDGED, 450, erratic) is None


def test_should_call_a_70_percent_drop_on_a_busy_hour_and_not_ordinary_noise() -> None:
    baseline = seasonal_baseline([140, 150, 160])
    drop = judge_volume("signup", HOUR_JUDGED, 45, baseline)
    assert drop is not None
    assert (drop.rule, drop.expected, drop.observed) == ("drop", 150, 45)
    assert "-70%" in drop.summary
    assert judge_volume("signup", HOUR_JUDGED, 120, baseline) is None
    spike = judge_volume("signup", HOUR_JUDGED, 301, baseline)
    assert spike is not None
    assert spike.rule == "spike"
    # Quiet events: 70% fewer of 10 is within what chance does; no alarm.
    assert judge_volume("rare", HOUR_JUDGED, 3, seasonal_baseline([10, 10, 10])) is None
    assert volume_clear(140, baseline)
    assert not volume_clear(80, baseline)  # neither alarm nor clear: an open alarm stays open


def test_should_say_an_event_stopped_once_its_silence_was_unlikely() -> None:
    hours = [HOUR_JUDGED - k * HOUR for k in (2, 1, 0)]
    assert judge_stopped("signup", [(h, 3.0) for h in hours]) is None  # 9 expected: e^-9 is not yet enough
    stopped = judge_stopped("signup", [(h, 5.0) for h in hours])
    assert stopped is not None
    assert (stopped.rule, stopped.since, stopped.expected) == ("stopped", hours[0], 15.0)


def test_should_need_both_the_jump_and_the_evidence_for_a_share() -> None:
    assert share_verdict(Share(30, 100), Share(100, 10_000), 0.2) == "fire"
    assert share_verdict(Share(5, 100), Share(100, 10_000), 0.2) == "clear"
    assert share_verdict(Share(15, 100), Share(100, 10_000), 0.2) == "unsure"  # between half the jump and it
    assert share_verdict(Share(3, 5), Share(0, 10_000), 0.2) == "unsure"  # too few events to judge
    assert MIN_EVENTS > 5


def test_should_name_the_type_a_property_took_and_its_null_share() -> None:
    before = PropertyCounts(1000, {"number": 1000})
    string = judge_property("purchase", "amount", HOUR_JUDGED, PropertyCounts(40, {"string": 40}), before)
    assert string is not None
    assert (string.rule, string.subject, string.observed) == ("type_change", "amount", 1.0)
    assert "usually a number" in string.summary
    missing = judge_property("purchase", "amount", HOUR_JUDGED, PropertyCounts(40, {"number": 10}), before)
    assert missing is not None
    assert (missing.rule, missing.observed) == ("null_share", 0.75)
    assert (
        judge_property("purchase", "amount", HOUR_JUDGED, PropertyCounts(40, {"number": 40}), before) is None
    )


def test_should_judge_an_hour_with_every_rule_and_hold_what_it_cannot_judge() -> None:
    counts = {HOUR_JUDGED - k * WEEK: 150 for k in range(1, 4)}
    counts[HOUR_JUDGED] = 150
    history = EventHistory(
        "page_view",
        HOUR_JUDGED - 4 * WEEK,
        counts,
        repeats=Share(40, 150),
        baseline_repeats=Share(10, 20_000),
        properties={
            "source": (PropertyCounts(150, {"string": 150}), PropertyCounts(20_000, {"string": 20_000}))
        },
    )
    judged = judge_event(history, HOUR_JUDGED)
    assert [(f.kind, f.rule) for f in judged.findings] == [("duplicate_burst", "duplicate_share")]
    assert judged.undecided == set()
    quiet = EventHistory("page_view", HOUR_JUDGED - timedelta(days=1), {HOUR_JUDGED: 4}, repeats=Share(0, 4))
    held = judge_event(quiet, HOUR_JUDGED)
    assert held.findings == []
    assert held.undecided == {("volume_anomaly", "page_view", ""), ("duplicate_burst", "page_view", "")}
